"""What is searched: a build's shards (local or gs://) or a local folder of images.

A gallery lists `GalleryItem`s (id, label, source, and where its bytes are) and
reads any item back by that address, so a server maps ids to images through
the listing it made at start and never takes a path from a request.

- A build (a folder with manifest.json): every record of the chosen splits, keyed
  by `image/id`, labelled through label_map.csv. An item's address is its shard
  and the byte range of its TFRecord frame, read back with one range read.
- A folder: every image file below it (sorted, symlinks not followed). Images in
  sub-folders are labelled by their top-level folder ("cats/x.jpg" -> "cats");
  files at the top level have no label (-1). Unreadable files are skipped and
  listed in `skipped` with the reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from PIL import Image

from unibed.dataplane import storage
from unibed.dataplane.records.codec import decode_example
from unibed.dataplane.records.framing import iter_records
from unibed.retrieval.images import BadImage, decode_stored, decode_untrusted
from unibed.schemas import features
from unibed.schemas.heldout import HeldOutMap
from unibed.schemas.label_map import LabelMap
from unibed.schemas.manifest import SPLITS, Manifest
from unibed.schemas.recipe import ImageSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_FRAME_OVERHEAD = 16  # TFRecord frame: 8-byte length + 4-byte crc, data, 4-byte crc


class GalleryError(ValueError):
    """A gallery that cannot be opened; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class GalleryItem:
    image_id: str
    label: int  # unified class id (-1: unlabelled)
    label_name: str
    source: str  # imagenet | products10k | gldv2 | folder
    source_label: str
    split: str  # train | validation | retrieval-query | retrieval-index | folder
    where: str  # shard path relative to the build, or file path relative to the folder
    offset: int = -1  # of the TFRecord frame in the shard (-1 for files)
    length: int = -1


def items_to_columns(items: list[GalleryItem]) -> dict[str, list]:
    """Column lists: compact JSON for the cache's sidecar."""
    names = list(GalleryItem.__slots__)
    return {name: [getattr(item, name) for item in items] for name in names}


def items_from_columns(columns: dict[str, list]) -> list[GalleryItem]:
    names = list(GalleryItem.__slots__)
    return [GalleryItem(*values) for values in zip(*(columns[n] for n in names))]


class BuildGallery:
    kind = "build"

    def __init__(self, root: str, splits: tuple[str, ...] = SPLITS):
        self.root = root.rstrip("/")
        manifest_path = storage.join(self.root, "manifest.json")
        self.manifest_bytes = storage.read_bytes(manifest_path)
        self.manifest = Manifest.from_json(self.manifest_bytes.decode("utf-8"), where=manifest_path)
        unknown = sorted(set(splits) - set(self.manifest.splits))
        if unknown:
            raise GalleryError(f"{self.root}: no split {unknown}; the build has {sorted(self.manifest.splits)}")
        self.splits = tuple(splits)
        label_map_path = storage.join(self.root, self.manifest.label_map)
        self.label_map = LabelMap.from_csv(storage.read_text(label_map_path), where=label_map_path)
        self.heldout = self._heldout_map()
        self.image_spec: ImageSpec = self.manifest.recipe.image
        self.skipped: list[tuple[str, str]] = []

    def _heldout_map(self) -> HeldOutMap | None:
        """The evaluation split's classes (labels of the retrieval-* splits), if the build has one."""
        info = self.manifest.evaluation
        if info is None:
            return None
        path = storage.join(self.root, info.label_map)
        return HeldOutMap.from_csv(storage.read_text(path), info.first_id, where=path)

    def label_name(self, label: int) -> str:
        if self.heldout is not None and label >= self.heldout.first_id:
            return self.heldout.name_of(label)
        return self.label_map.entries[label].name

    def fingerprint(self) -> dict:
        # the manifest holds every shard's sha256, so its digest pins the records
        return {"kind": self.kind, "manifest_sha256": hashlib.sha256(self.manifest_bytes).hexdigest(),
                "splits": list(self.splits)}

    def iter_images(self) -> Iterator[tuple[GalleryItem, Image.Image]]:
        for split in self.splits:
            for shard in self.manifest.splits[split].shards:
                path = storage.join(self.root, shard.path)
                offset = 0
                with storage.open_read(path) as f:
                    for record in iter_records(f, where=path):
                        values = decode_example(record)
                        label = int(values[features.LABEL])
                        item = GalleryItem(
                            image_id=_text(values[features.IMAGE_ID]), label=label,
                            label_name=self.label_name(label), source=_text(values[features.SOURCE]),
                            source_label=_text(values[features.SOURCE_LABEL]), split=split,
                            where=shard.path, offset=offset, length=len(record) + _FRAME_OVERHEAD)
                        offset += item.length
                        yield item, decode_stored(values[features.ENCODED])

    def read_image(self, item: GalleryItem) -> Image.Image:
        path = storage.join(self.root, item.where)
        frame = storage.read_range(path, item.offset, item.length)
        record = next(iter_records(io.BytesIO(frame), where=f"{path}@{item.offset}"))
        return decode_stored(decode_example(record)[features.ENCODED])


class FolderGallery:
    kind = "folder"

    def __init__(self, root: str):
        if storage.is_remote(root):
            raise GalleryError(f"{root}: a folder gallery must be local (a build may be on gs://)")
        if not os.path.isdir(root):
            raise GalleryError(f"{root}: not a folder")
        self.root = os.path.abspath(root)
        self.image_spec = ImageSpec()
        self.files = _list_images(self.root)  # (relative path, size, mtime_ns)
        if not self.files:
            raise GalleryError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        classes = sorted({rel.split("/", 1)[0] for rel, _, _ in self.files if "/" in rel})
        self.class_ids = {name: i for i, name in enumerate(classes)}
        self.skipped: list[tuple[str, str]] = []
        self.manifest = None

    def fingerprint(self) -> dict:
        listing = json.dumps(self.files, separators=(",", ":")).encode("utf-8")
        return {"kind": self.kind, "root": self.root, "listing_sha256": hashlib.sha256(listing).hexdigest()}

    def iter_images(self) -> Iterator[tuple[GalleryItem, Image.Image]]:
        self.skipped = []
        for rel, _, _ in self.files:
            try:
                with open(os.path.join(self.root, rel), "rb") as f:
                    image = decode_untrusted(f.read(), self.image_spec)
            except (OSError, BadImage) as e:
                self.skipped.append((rel, str(e)))
                continue
            folder = rel.split("/", 1)[0] if "/" in rel else ""
            yield GalleryItem(image_id=rel, label=self.class_ids.get(folder, -1), label_name=folder,
                              source="folder", source_label=folder, split="folder", where=rel), image

    def read_image(self, item: GalleryItem) -> Image.Image:
        with open(os.path.join(self.root, item.where), "rb") as f:
            return decode_untrusted(f.read(), self.image_spec)


class RetrievalSetGallery:
    """An outside retrieval set's index images (unibed/schemas/retrieval_set.py: a CSV or a
    folder of query/<label>/... and index/<label>/...), labelled with the set's label ids;
    `queries()` gives its labelled queries. Local only, like a folder gallery."""

    kind = "retrieval-set"

    def __init__(self, location: str):
        from unibed.schemas.retrieval_set import parse_csv, parse_folder

        if storage.is_remote(location) or not os.path.exists(location):
            raise GalleryError(f"{location}: an outside retrieval set must be a local CSV file or folder")
        if os.path.isdir(location):
            self.root = os.path.abspath(location)
            self.listing = parse_folder([rel for rel, _, _ in _list_images(self.root)], location)
        else:
            self.root = os.path.dirname(os.path.abspath(location))
            with open(location, encoding="utf-8") as f:
                self.listing = parse_csv(f.read(), location)
        self.ids = self.listing.label_ids()
        self.image_spec, self.skipped, self.manifest = ImageSpec(), [], None

    def fingerprint(self) -> dict:
        entries = [(e.path, e.label, e.domain) for e in self.listing.index]
        listing = json.dumps([self.root, entries], separators=(",", ":")).encode("utf-8")
        return {"kind": self.kind, "listing_sha256": hashlib.sha256(listing).hexdigest()}

    def _item(self, entry, role: str) -> GalleryItem:
        return GalleryItem(image_id=entry.path, label=self.ids[entry.label], label_name=entry.label,
                           source=entry.domain, source_label=entry.label, split=role, where=entry.path)

    def _open(self, entry) -> Image.Image:
        path = entry.path if os.path.isabs(entry.path) else os.path.join(self.root, entry.path)
        with open(path, "rb") as f:
            return decode_untrusted(f.read(), self.image_spec)

    def iter_images(self) -> Iterator[tuple[GalleryItem, Image.Image]]:
        self.skipped = []
        for entry in self.listing.index:
            try:
                yield self._item(entry, "index"), self._open(entry)
            except (OSError, BadImage) as e:
                self.skipped.append((entry.path, str(e)))

    def queries(self) -> list[tuple[GalleryItem, Image.Image]]:
        return [(self._item(e, "query"), self._open(e)) for e in self.listing.queries]

    def read_image(self, item: GalleryItem) -> Image.Image:
        return self._open(next(e for e in self.listing.index if e.path == item.where))


Gallery = BuildGallery | FolderGallery | RetrievalSetGallery


def open_gallery(location: str, splits: tuple[str, ...] | None = None) -> Gallery:
    """A build if `location` holds manifest.json, else a local folder of images."""
    if storage.exists(storage.join(location, "manifest.json")):
        return BuildGallery(location, splits or SPLITS)
    if splits:
        raise GalleryError(f"{location}: splits apply to a build, and it has no manifest.json")
    return FolderGallery(location)


def _list_images(root: str) -> list[tuple[str, int, int]]:
    out = []
    for folder, dirs, files in os.walk(root):  # followlinks=False: stay inside the gallery
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.lower().endswith(IMAGE_SUFFIXES) and not os.path.islink(path):
                st = os.stat(path)
                out.append((os.path.relpath(path, root).replace(os.sep, "/"), st.st_size, st.st_mtime_ns))
    return out


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def item_dict(item: GalleryItem) -> dict:
    return asdict(item)
