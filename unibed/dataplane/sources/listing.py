"""Generic listing reader: a CSV, TSV or whitespace-separated text names each
image's path and label (recipe block `listing`, unibed/schemas/reader_specs.py).
Stanford Online Products, Food-101 and Shopee are configurations of it
(sources/named.py). Layouts: `files` (images under the root), `zip` or `tar`
(images inside that archive, the listing naming its members).

Image id = the image's path under the root (or its member name):
path_prefix + the listed path + path_suffix. Label = the label column, or the
listed path's first folder. The listing files give `index.listed` and each
image's split (the `files` key); the folder listing, the zip's central
directory or the tar's headers are matched against it.

Bad metadata policy (docs/layouts.md "Bad metadata policy"), as the seed readers:
- a missing listing file, a header without the named columns, an archive
  that is not there or does not open -> SourceLayoutError naming the file;
- a row with the wrong field count (or, without a header, no field at a named
  position), an empty path, an empty or over-long label, a path with no folder
  to take the label from -> MALFORMED_ROW at path:line;
- a listed path that is absolute or has a '..' component -> UNSAFE_MEMBER_PATH
  at path:line (never opened);
- a path listed twice -> the first row wins, later rows DUPLICATE_ID;
- a listed image with no bytes -> MISSING_IMAGE (base.iter_source);
- an image file or member no row lists -> UNLABELLED_IMAGE (files and members
  that are not images by extension are no inputs);
- unsafe archive members, links, devices -> UNSAFE_MEMBER_PATH; names that are
  not UTF-8 -> MALFORMED_NAME; too large -> TOO_LARGE; a damaged tar or zip
  member -> DAMAGED_ARCHIVE (archives.py), as for the seed readers.
"""

from __future__ import annotations

import posixpath
import sys
from collections import Counter
from collections.abc import Iterator

from unibed.dataplane import storage
from unibed.dataplane.sources.archives import iter_tar_members, open_zip, unsafe_member_reason
from unibed.dataplane.sources.base import (
    DEFAULT_MAX_INPUT_BYTES,
    ClassInfo,
    ReadItem,
    ReadUnit,
    SourceIndex,
)
from unibed.dataplane.sources.common import (
    CsvRow,
    Listing,
    batched,
    check_layout,
    is_image_name,
    iter_csv,
    iter_lines,
    iter_words,
    quoted,
    read_file_batch,
    read_zip_batch,
    relative_to,
    require_file,
    unnamed_file,
)
from unibed.schemas.errors import SourceLayoutError
from unibed.schemas.reader_specs import ListingSpec
from unibed.schemas.source_record import (
    Location,
    LocationKind,
    Rejection,
    RejectReason,
    SourceImage,
    SourceRecord,
)

LAYOUTS = ("files", "zip", "tar")
FILES_PER_UNIT = 1000
MAX_LABEL_CHARS = 200
MAX_PATH_CHARS = 1024


def open_index(source: str, root: str, spec: ListingSpec, layout: str | None = None) -> SourceIndex:
    detected = spec.archive.rsplit(".", 1)[1] if spec.archive else "files"
    if layout is not None:  # the recipe's block decides the layout; a layout: must agree
        check_layout(source, layout, (detected,), root)
    rejections: list[Rejection] = []
    listing, splits, names = _read_listings(source, root, spec, rejections)
    classes = _classes(listing, names, _named_classes(root, spec))
    if detected == "files":
        units = _file_units(source, root, spec, listing, rejections)
    else:
        archive = storage.join(root, spec.archive)
        require_file(archive, detected)
        units = (_zip_units if detected == "zip" else _tar_units)(source, archive, listing, rejections)
    return SourceIndex(source, detected, root, classes, units, listed=listing.labels, splits=splits,
                       rejections=rejections + listing.rejections, reader="listing")


def read_unit(
    unit: ReadUnit, index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    if unit.kind == "zip_members":
        return read_zip_batch(unit, index, _same, max_input_bytes)
    if unit.kind == "tar":
        return _read_tar(unit, index, max_input_bytes)
    return read_file_batch(unit, index, _same, max_input_bytes)


def _same(name: str) -> str:
    return name


# --- the listing files -------------------------------------------------------------


def _rows(source: str, path: str, spec: ListingSpec) -> Iterator[CsvRow | Rejection]:
    columns = [str(c) for c in (spec.path_column, spec.label_column, spec.name_column) if c is not None]
    if spec.separator == "whitespace":
        return iter_words(path, columns, source, header=spec.header)
    return iter_csv(path, columns, source, delimiter=spec.separator, header=spec.header)


def _read_listings(
    source: str, root: str, spec: ListingSpec, rejections: list[Rejection]
) -> tuple[Listing, dict[str, str], dict[str, str]]:
    """The listing (image id -> label), each id's split, and label -> name of its first row."""
    listing, splits, names = Listing(source), {}, {}
    for split, file in spec.files.items():
        for row in _rows(source, storage.join(root, file), spec):
            entry = row if isinstance(row, Rejection) else _entry(source, row, spec)
            if isinstance(entry, Rejection):
                rejections.append(entry)
                continue
            image_id, label, name = entry
            if listing.add(image_id, sys.intern(label), row.where):
                splits[image_id] = split
                if name:
                    names.setdefault(label, name)
    return listing, splits, names


def _entry(source: str, row: CsvRow, spec: ListingSpec) -> tuple[str, str, str] | Rejection:
    """(image id, label, class name or "") of a row, or why it names no image."""
    path = row.values[str(spec.path_column)]
    image_id = posixpath.normpath(f"{spec.path_prefix}{path}{spec.path_suffix}") if path else ""
    if not path or len(image_id) > MAX_PATH_CHARS:
        return row.malformed(source, f"the path must be 1 to {MAX_PATH_CHARS} characters: {quoted(path)}")
    if unsafe := unsafe_member_reason(path) or unsafe_member_reason(image_id):
        return Rejection(source, "", RejectReason.UNSAFE_MEMBER_PATH, f"listed {unsafe}", row.where)
    if spec.label_column is None:
        label = path.split("/", 1)[0] if "/" in path else ""
        what = "the path's first folder (the label)"
    else:
        label = row.values[str(spec.label_column)]
        what = f"the label ({spec.label_column})"
    if not label or len(label) > MAX_LABEL_CHARS:
        return row.malformed(source, f"{what} must be 1 to {MAX_LABEL_CHARS} characters: {quoted(label)}",
                             image_id)
    name = row.values.get(str(spec.name_column), "") if spec.name_column is not None else ""
    return image_id, label, name[:MAX_LABEL_CHARS]


def _named_classes(root: str, spec: ListingSpec) -> dict[str, str]:
    """label -> name from two parallel line lists (Food-101: meta/classes.txt, meta/labels.txt)."""
    if spec.class_list is None:
        return {}
    labels_path, names_path = storage.join(root, spec.class_list), storage.join(root, spec.class_names)
    for path in (labels_path, names_path):
        require_file(path, "listing (class_list / class_names)")
    labels = [text.strip() for _, text, _ in iter_lines(labels_path) if text.strip()]
    names = [text.strip() for _, text, _ in iter_lines(names_path) if text.strip()]
    if len(labels) != len(names):
        raise SourceLayoutError(names_path, f"{len(names)} names for the {len(labels)} labels of {labels_path}")
    return dict(zip(labels, names))


def _label_order(label: str) -> tuple:
    return (0, int(label), "") if label.isdigit() else (1, 0, label)


def _classes(listing: Listing, row_names: dict[str, str], list_names: dict[str, str]) -> dict[str, ClassInfo]:
    counts = Counter(listing.labels.values())
    return {
        label: ClassInfo(label, list_names.get(label) or row_names.get(label) or label, counts[label])
        for label in sorted(counts, key=_label_order)
    }


# --- where the images are ------------------------------------------------------------


def _unlabelled(source: str, name: str, where: str) -> Rejection:
    return Rejection(source, name, RejectReason.UNLABELLED_IMAGE, f"no listing row names {name!r}", where)


def _file_units(
    source: str, root: str, spec: ListingSpec, listing: Listing, rejections: list[Rejection]
) -> list[ReadUnit]:
    """Listed image files under the root (below the prefix's folder); the rest are unlabelled."""
    folder = spec.path_prefix.rsplit("/", 1)[0] if "/" in spec.path_prefix else ""
    names = []
    for path, _ in storage.list_files(storage.join(root, folder, "**") if folder else storage.join(root, "**")):
        name = relative_to(root, path)
        if not is_image_name(name):
            continue
        if bad_name := unnamed_file(source, path, _same):
            rejections.append(bad_name)
        elif name in listing.labels:
            names.append(name)
        else:
            rejections.append(_unlabelled(source, name, path))
    return [ReadUnit(source, "files", root, items=batch) for batch in batched(names, FILES_PER_UNIT)]


def _zip_units(source: str, zip_path: str, listing: Listing, rejections: list[Rejection]) -> list[ReadUnit]:
    with storage.open_read(zip_path) as raw:
        archive, bad_names = open_zip(raw, zip_path)
        with archive:
            infos = archive.infolist()  # the central directory only
    members: dict[str, None] = {}  # listed, safe members in zip order
    for info in infos:
        if info.is_dir() or not is_image_name(info.filename):
            continue
        problem = _zip_member_problem(source, zip_path, info.filename, bad_names, listing, members)
        if problem:
            rejections.append(problem)
        else:
            members[info.filename] = None
    return [ReadUnit(source, "zip_members", zip_path, items=batch) for batch in batched(list(members), FILES_PER_UNIT)]


def _zip_member_problem(
    source: str, zip_path: str, member: str, bad_names: dict[str, str], listing: Listing, taken: dict
) -> Rejection | None:
    """Why a zip member is no image to read, or None for a listed one seen first."""
    where = f"{zip_path}!{member}"
    if member in bad_names:  # flagged UTF-8 but not: the bytes escaped
        detail = f"member name is flagged UTF-8 but is not valid UTF-8: '{bad_names[member]}'"
        return Rejection(source, "", RejectReason.MALFORMED_NAME, detail, f"{zip_path}!{bad_names[member]}")
    if unsafe := unsafe_member_reason(member):
        return Rejection(source, member, RejectReason.UNSAFE_MEMBER_PATH, unsafe, where)
    if member not in listing.labels:
        return _unlabelled(source, member, where)
    if member in taken:
        return Rejection(source, member, RejectReason.DUPLICATE_ID, f"{member} is in the zip again; the first wins",
                         where)
    return None


def _tar_units(source: str, tar_path: str, listing: Listing, rejections: list[Rejection]) -> list[ReadUnit]:
    """One unit: a tar streams front to back (its members are matched while reading)."""
    return [ReadUnit(source, "tar", tar_path)]


def _read_tar(unit: ReadUnit, index: SourceIndex, max_bytes: int) -> Iterator[ReadItem]:
    """The tar's listed images in one pass; unlisted images, a name met twice,
    unsafe or damaged members become rejections."""
    seen: set[str] = set()
    with storage.open_read(unit.uri) as raw:
        for member in iter_tar_members(raw, max_bytes=max_bytes, want=is_image_name):
            where = f"{unit.uri}!{member.name}" if member.name else unit.uri
            if member.rejected and (is_image_name(member.name) or member.rejected is not RejectReason.TOO_LARGE):
                yield Rejection(unit.source, member.name, member.rejected, member.detail, where)
            elif not is_image_name(member.name):
                continue
            elif member.name not in index.listed:
                yield _unlabelled(unit.source, member.name, where)
            elif member.name in seen:
                detail = f"{member.name} is in the tar again; the first wins"
                yield Rejection(unit.source, member.name, RejectReason.DUPLICATE_ID, detail, where)
            else:
                seen.add(member.name)
                location = Location(LocationKind.TAR_MEMBER, unit.uri, (member.name,), member.offset, member.size)
                split = index.splits.get(member.name, "train")
                record = SourceRecord(unit.source, member.name, index.listed[member.name], location, split)
                yield SourceImage(record, member.data)
