"""Products-10K reader (train split), layouts `folder` and `zip` (see
docs/layouts.md). Image id = the `name` column (`0.jpg`); label = `class`.

train.csv is the listing (`index.listed`); the folder listing or the zip's
central directory is matched against it in open_index, so units hold only
listed images: batches of up to FILES_PER_UNIT files or zip members.

Bad metadata policy (docs/layouts.md "Bad metadata policy"):
- neither train/ files nor train.zip, a missing train.csv or a header
  without name, class, group -> SourceLayoutError naming the file;
- a row with the wrong field count, an empty name, one with a path in it or
  over 255 characters, a class or group that is not an integer of at most 18
  digits -> MALFORMED_ROW at path:line (details quote at most 200 characters);
- a name listed twice -> the first row wins, later rows DUPLICATE_ID;
  likewise a zip holding the same name twice (`train/x` and `x`);
- a listed name with no file -> MISSING_IMAGE (base.iter_source);
- a file or member train.csv does not list (or not directly in train/)
  -> UNLABELLED_IMAGE;
- zip members with an absolute or `..` path -> UNSAFE_MEMBER_PATH;
  directories are skipped;
- a file name that is not UTF-8, or a zip member name flagged UTF-8 that is
  not -> MALFORMED_NAME, the bytes shown escaped (the rest of the zip is read);
- a file or member over the recipe's max_input_bytes (the file size or the
  zip's stated size, and inflation stops past it) -> TOO_LARGE, never held;
  a member whose bytes do not inflate or fail their CRC -> DAMAGED_ARCHIVE;
- a train.zip that does not open as a zip -> SourceLayoutError naming it.
"""

from __future__ import annotations

import posixpath
import sys
from collections import Counter
from collections.abc import Iterator

from unibed.dataplane import storage
from unibed.dataplane.sources.archives import open_zip, unsafe_member_reason
from unibed.dataplane.sources.base import (
    DEFAULT_MAX_INPUT_BYTES,
    ClassInfo,
    ReadItem,
    ReadUnit,
    SourceIndex,
)
from unibed.dataplane.sources.common import (
    MAX_ID_DIGITS,
    Listing,
    batched,
    check_layout,
    int_text,
    iter_csv,
    no_layout_found,
    quoted,
    read_file_batch,
    read_zip_batch,
    require_file,
    unnamed_file,
)
from unibed.schemas.source_record import Rejection, RejectReason

SOURCE = "products10k"
LAYOUTS = ("folder", "zip")
TRAIN_CSV = "train.csv"
TRAIN_DIR = "train"
TRAIN_ZIP = "train.zip"
FILES_PER_UNIT = 1000
MAX_NAME_CHARS = 255  # a file name's limit on common file systems


def open_index(root: str, layout: str | None = None) -> SourceIndex:
    if layout is not None:
        check_layout(SOURCE, layout, LAYOUTS, root)
    train_dir = storage.join(root, TRAIN_DIR)
    zip_path = storage.join(root, TRAIN_ZIP)
    # the folder listing doubles as layout detection (the folder layout wins)
    files = [] if layout == "zip" else [p for p, _ in storage.list_files(f"{train_dir}/**")]
    if layout is None:
        if files:
            layout = "folder"
        elif storage.exists(zip_path):
            layout = "zip"
        else:
            raise no_layout_found(
                SOURCE, root, {"folder": f"files in {TRAIN_DIR}/", "zip": TRAIN_ZIP}
            )
    listing, classes, rejections = _read_train_csv(storage.join(root, TRAIN_CSV))
    if layout == "folder":
        units = _folder_units(train_dir, files, listing, rejections)
    else:
        require_file(zip_path, "zip")
        units = _zip_units(zip_path, listing, rejections)
    return SourceIndex(
        SOURCE,
        layout,
        root,
        classes,
        units,
        listed=listing.labels,
        rejections=rejections + listing.rejections,
    )


def read_unit(
    unit: ReadUnit, index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    if unit.kind == "zip_members":
        return read_zip_batch(unit, index, _image_name, max_input_bytes)
    return read_file_batch(unit, index, _same, max_input_bytes)


def _same(name: str) -> str:
    return name


def _read_train_csv(path: str) -> tuple[Listing, dict[str, ClassInfo], list[Rejection]]:
    listing = Listing(SOURCE)
    groups: dict[str, str] = {}  # class -> the group of its first row
    rejections = []
    for row in iter_csv(path, ("name", "class", "group"), SOURCE):
        if isinstance(row, Rejection):
            rejections.append(row)
            continue
        name = row.values["name"]
        label, group = int_text(row.values["class"]), int_text(row.values["group"])
        if not _plain_file_name(name):
            rejections.append(row.malformed(SOURCE, f"name must be a plain file name: {quoted(name)}"))
        elif label is None or group is None:
            detail = (
                f"class and group must be integers of at most {MAX_ID_DIGITS} digits: "
                f"{quoted(row.values['class'])}, {quoted(row.values['group'])}"
            )
            rejections.append(row.malformed(SOURCE, detail, name))
        elif listing.add(name, sys.intern(label), row.where):
            groups.setdefault(label, group)
    counts = Counter(listing.labels.values())
    classes = {
        label: ClassInfo(label, f"sku {label} (group {group})", counts[label])
        for label, group in sorted(groups.items(), key=lambda item: int(item[0]))
    }
    return listing, classes, rejections


def _plain_file_name(name: str) -> bool:
    return (
        0 < len(name) <= MAX_NAME_CHARS
        and name == posixpath.basename(name)
        and "\\" not in name
        and name not in (".", "..")
    )


def _unlabelled(name: str, where: str, why: str) -> Rejection:
    return Rejection(SOURCE, posixpath.basename(name), RejectReason.UNLABELLED_IMAGE, why, where)


def _folder_units(
    train_dir: str, files: list[str], listing: Listing, rejections: list[Rejection]
) -> list[ReadUnit]:
    names = []
    for path in files:
        name = path[len(train_dir) :].lstrip("/")
        if bad_name := unnamed_file(SOURCE, path, posixpath.basename):
            rejections.append(bad_name)
        elif name in listing.labels:
            names.append(name)
        else:
            rejections.append(_unlabelled(name, path, f"{TRAIN_CSV} does not list {name!r}"))
    return [
        ReadUnit(SOURCE, "files", train_dir, items=batch)
        for batch in batched(names, FILES_PER_UNIT)
    ]


def _image_name(member: str) -> str:
    """`train/0.jpg` or `0.jpg` -> `0.jpg`; what train.csv calls the image."""
    return member.removeprefix(f"{TRAIN_DIR}/")


def _zip_units(zip_path: str, listing: Listing, rejections: list[Rejection]) -> list[ReadUnit]:
    with storage.open_read(zip_path) as raw:
        archive, bad_names = open_zip(raw, zip_path)
        with archive:
            infos = archive.infolist()  # the central directory only
    first_member: dict[str, str] = {}  # image name -> the member that has it
    for info in infos:
        if info.is_dir():
            continue
        rejection = _zip_member_rejection(zip_path, info.filename, bad_names, listing, first_member)
        if rejection:
            rejections.append(rejection)
        else:
            first_member[_image_name(info.filename)] = info.filename
    return [
        ReadUnit(SOURCE, "zip_members", zip_path, items=batch)
        for batch in batched(list(first_member.values()), FILES_PER_UNIT)
    ]


def _zip_member_rejection(
    zip_path: str,
    member: str,
    bad_names: dict[str, str],
    listing: Listing,
    first_member: dict[str, str],
) -> Rejection | None:
    """Why a zip member is not read, or None when it is a listed image seen first."""
    if member in bad_names:  # flagged UTF-8 but not: the bytes escaped
        name = bad_names[member]
        detail = f"member name is flagged UTF-8 but is not valid UTF-8: '{name}'"
        where = f"{zip_path}!{name}"
        return Rejection(SOURCE, posixpath.basename(name), RejectReason.MALFORMED_NAME, detail, where)
    where = f"{zip_path}!{member}"
    name = _image_name(member)
    if unsafe := unsafe_member_reason(member):
        basename = posixpath.basename(member)
        return Rejection(SOURCE, basename, RejectReason.UNSAFE_MEMBER_PATH, unsafe, where)
    if name not in listing.labels:
        return _unlabelled(name, where, f"{TRAIN_CSV} does not list {name!r}")
    if name in first_member:
        detail = f"another member has name {name}; the first, {first_member[name]}, wins"
        return Rejection(SOURCE, name, RejectReason.DUPLICATE_ID, detail, where)
    return None
