"""Google Landmarks v2 reader (train), layout `tars` (see docs/layouts.md).
Image id = the 16-hex id; label = landmark_id as text.

train.csv is the listing (`index.listed`); train_clean.csv gives
`index.subsets["clean"]` (the GLDv2-clean ids); train_label_to_category.csv
names the classes. One unit per `images_NNN.tar`; the tar streams front to
back through an md5 hasher when `md5.images_NNN.txt` lists its checksum, and
a mismatch raises ChecksumError at the end of the unit (in Beam the failed
bundle's outputs are discarded, so nothing from a corrupt tar is kept).

Bad metadata policy (docs/layouts.md "Bad metadata policy"):
- no images_*.tar, a missing CSV, a header without its required columns, or
  an md5 file without a `<md5> <tar name>` line -> SourceLayoutError naming the file;
- a row with the wrong field count, an id that is not 16 lowercase hex
  characters, a landmark_id that is not an integer of at most 18 digits
  -> MALFORMED_ROW at path:line (for
  train_clean.csv and train_label_to_category.csv too: the row, or the one
  bad id of a clean row, is left out);
- an id listed twice in train.csv -> the first row wins, later rows DUPLICATE_ID;
- a listed id in no tar -> MISSING_IMAGE (base.iter_source);
- a tar member not named `a/b/c/<id>.jpg` with a, b, c = id[:3] -> MALFORMED_NAME;
  a well-named member train.csv does not list -> UNLABELLED_IMAGE;
- absolute or `..` member paths, links and devices -> UNSAFE_MEMBER_PATH;
  directories are skipped; a member name that is not UTF-8 -> MALFORMED_NAME,
  the bytes shown escaped;
- a damaged tar (a bad header mid-tar, truncated, no end-of-archive marker)
  -> DAMAGED_ARCHIVE naming the byte offset (and the damaged header's image id
  when legible), the members after a bad header still read;
- a member over the recipe's max_input_bytes -> TOO_LARGE, never read;
- a tar whose md5 differs from its md5 file -> ChecksumError at the end of
  the unit (the download is corrupt and must be fetched again), after any
  damage was reported.
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from collections import Counter
from collections.abc import Iterator

from unibed.dataplane import storage
from unibed.dataplane.sources.archives import TarMember, iter_tar_members
from unibed.dataplane.sources.base import (
    DEFAULT_MAX_INPUT_BYTES,
    ClassInfo,
    ReadItem,
    ReadUnit,
    SourceIndex,
)
from unibed.dataplane.sources.common import (
    MAX_ID_DIGITS,
    CsvRow,
    Listing,
    Md5Reader,
    check_layout,
    file_stem,
    int_text,
    iter_csv,
    no_layout_found,
    quoted,
)
from unibed.schemas.errors import ChecksumError, SourceLayoutError
from unibed.schemas.source_record import (
    Location,
    LocationKind,
    Rejection,
    RejectReason,
    SourceImage,
    SourceRecord,
)

SOURCE = "gldv2"
LAYOUTS = ("tars",)
TRAIN_CSV = "train.csv"
CLEAN_CSV = "train_clean.csv"
CATEGORY_CSV = "train_label_to_category.csv"
TAR_PATTERN = "images_*.tar"
_ID = re.compile(r"[0-9a-f]{16}")
_MD5 = re.compile(r"[0-9a-fA-F]{32}")


def open_index(root: str, layout: str | None = None) -> SourceIndex:
    layout = layout or "tars"
    check_layout(SOURCE, layout, LAYOUTS, root)
    tars = [path for path, _ in storage.list_files(storage.join(root, TAR_PATTERN))]
    if not tars:
        raise no_layout_found(SOURCE, root, {"tars": f"{TAR_PATTERN} beside {TRAIN_CSV}"})
    listing, rejections = _read_train_csv(storage.join(root, TRAIN_CSV))
    clean = _read_clean_csv(storage.join(root, CLEAN_CSV), rejections)
    names = _read_category_csv(storage.join(root, CATEGORY_CSV), rejections)
    counts = Counter(listing.labels.values())
    classes = {
        label: ClassInfo(label, names.get(label, label), counts[label])
        for label in sorted(counts, key=int)
    }
    units = [ReadUnit(SOURCE, "tar", path, checksum=_listed_md5(path)) for path in tars]
    return SourceIndex(
        SOURCE,
        "tars",
        root,
        classes,
        units,
        listed=listing.labels,
        rejections=rejections + listing.rejections,
        subsets={"clean": clean},
    )


def read_unit(
    unit: ReadUnit, index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    with storage.open_read(unit.uri) as raw:
        stream = Md5Reader(raw) if unit.checksum else raw
        for member in iter_tar_members(stream, max_bytes=max_input_bytes):
            yield _image_or_rejection(unit.uri, member, index)
        if unit.checksum:
            _verify(unit, stream)


def _verify(unit: ReadUnit, stream: Md5Reader) -> None:
    actual = stream.hexdigest()
    if actual != unit.checksum:
        raise ChecksumError(
            f"{unit.uri}: md5 is {actual} but its md5 file lists {unit.checksum}; "
            "the download is corrupt, fetch it again"
        )


def _member_path(image_id: str) -> str:
    """Where the published tars keep an image: `a/b/c/<id>.jpg`."""
    return f"{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg"


def _image_or_rejection(tar_path: str, member: TarMember, index: SourceIndex) -> ReadItem:
    where = f"{tar_path}!{member.name}" if member.name else tar_path
    stem = file_stem(member.name)
    image_id = stem if _ID.fullmatch(stem) else ""
    if member.rejected:
        return Rejection(SOURCE, image_id, member.rejected, member.detail, where)
    if not image_id or member.name != _member_path(image_id):
        detail = f"expected a/b/c/<16 hex id>.jpg with a, b, c the id's first characters: {member.name!r}"
        return Rejection(SOURCE, image_id, RejectReason.MALFORMED_NAME, detail, where)
    label = index.listed.get(image_id)
    if label is None:
        detail = f"{TRAIN_CSV} does not list {image_id}"
        return Rejection(SOURCE, image_id, RejectReason.UNLABELLED_IMAGE, detail, where)
    location = Location(
        LocationKind.TAR_MEMBER, tar_path, (member.name,), member.offset, member.size
    )
    return SourceImage(SourceRecord(SOURCE, image_id, label, location), member.data)


def _landmark(row: CsvRow, rejections: list[Rejection], image_id: str = "") -> str | None:
    label = int_text(row.values["landmark_id"])
    if label is None:
        detail = (
            f"landmark_id is not an integer of at most {MAX_ID_DIGITS} digits: "
            f"{quoted(row.values['landmark_id'])}"
        )
        rejections.append(row.malformed(SOURCE, detail, image_id))
    return label


def _rows(path: str, required: tuple[str, ...], rejections: list[Rejection]) -> Iterator[CsvRow]:
    """The well-formed rows; the others go to `rejections`."""
    for row in iter_csv(path, required, SOURCE):
        if isinstance(row, Rejection):
            rejections.append(row)
        else:
            yield row


def _read_train_csv(path: str) -> tuple[Listing, list[Rejection]]:
    listing, rejections = Listing(SOURCE), []
    for row in _rows(path, ("id", "url", "landmark_id"), rejections):
        image_id = row.values["id"]
        if not _ID.fullmatch(image_id):
            rejections.append(row.malformed(SOURCE, f"id is not 16 lowercase hex: {quoted(image_id)}"))
        elif (label := _landmark(row, rejections, image_id)) is not None:
            listing.add(image_id, sys.intern(label), row.where)
    return listing, rejections


def _read_clean_csv(path: str, rejections: list[Rejection]) -> frozenset[str]:
    clean: set[str] = set()
    for row in _rows(path, ("landmark_id", "images"), rejections):
        if _landmark(row, rejections) is None:
            continue
        for image_id in row.values["images"].split():
            if _ID.fullmatch(image_id):
                clean.add(image_id)
            else:
                detail = f"id is not 16 lowercase hex: {quoted(image_id)}; the rest of the row is used"
                rejections.append(row.malformed(SOURCE, detail))
    return frozenset(clean)


def _read_category_csv(path: str, rejections: list[Rejection]) -> dict[str, str]:
    """landmark_id -> name: `...Category:Caf%C3%A9_X` -> `Café X` (URL-decoded, `_` -> space)."""
    names: dict[str, str] = {}
    for row in _rows(path, ("landmark_id", "category"), rejections):
        if (label := _landmark(row, rejections)) is not None:
            title = row.values["category"].rpartition("Category:")[2]
            names.setdefault(label, urllib.parse.unquote(title).replace("_", " "))
    return names


def _listed_md5(tar_path: str) -> str:
    """The md5 `md5.images_NNN.txt` lists for `images_NNN.tar`; "" without that file."""
    tar_name = storage.basename(tar_path)
    md5_path = tar_path.removesuffix(tar_name) + f"md5.{tar_name.removesuffix('.tar')}.txt"
    if not storage.exists(md5_path):
        return ""
    for line_no, line in enumerate(storage.read_text(md5_path).splitlines(), 1):
        fields = line.split()
        if (
            len(fields) == 2
            and _MD5.fullmatch(fields[0])
            and storage.basename(fields[1].lstrip("*")) == tar_name
        ):
            return fields[0].lower()
    raise SourceLayoutError(md5_path, f"no '<md5>  {tar_name}' line")
