"""ImageNet ILSVRC2012 reader, layouts `official_tar` and `kaggle_folder`
(see docs/layouts.md). Image id = file stem; label = wnid.

official_tar: one unit per inner synset tar, found from the outer tar's
headers; the inner tar streams through a byte-range window of the outer file,
and every image is located by its absolute byte range in the outer tar.
The outer tar lists nothing up front (`index.listed` is None).

kaggle_folder: one unit per train class folder (label = folder name) and
val in batches (labels and split "val" from LOC_val_solution.csv); the folder
listing and the CSV together are `index.listed`.

Bad metadata policy (docs/layouts.md "Bad metadata policy"):
- no train tar and no LOC_synset_mapping.txt, or (kaggle_folder) a missing
  LOC_synset_mapping.txt / LOC_val_solution.csv or a CSV header without
  ImageId, PredictionString -> SourceLayoutError naming the file;
- a mapping line that is not `<wnid> <description>`, a repeated wnid there,
  a val row with the wrong field count, an empty ImageId or a
  PredictionString not starting with a wnid -> MALFORMED_ROW at path:line;
- an image id listed twice (a val row, or the same stem in two files) ->
  the first wins, later ones DUPLICATE_ID;
- a val row with no file -> MISSING_IMAGE (base.iter_source);
- a val file no row lists, a file outside the class folders, an outer tar
  member that is not a synset tar -> UNLABELLED_IMAGE;
- absolute or `..` member paths, links and devices -> UNSAFE_MEMBER_PATH;
  directories are skipped;
- a file or member name that is not UTF-8 -> MALFORMED_NAME, the bytes shown
  escaped (every image of a synset tar so named, one by one);
- a damaged outer or synset tar (a bad header, truncated, no end-of-archive
  marker) -> DAMAGED_ARCHIVE naming the byte offset, the members after a bad
  header still read (archives.iter_tar_members: in the outer tar this scan
  meets the lost synset tar's own image headers, each then UNLABELLED_IMAGE);
  a synset tar the outer tar ends inside is one DAMAGED_ARCHIVE;
- an image over the recipe's max_input_bytes -> TOO_LARGE, never read.
"""

from __future__ import annotations

import re
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
    MAX_RECORD_CHARS,
    Listing,
    batched,
    check_layout,
    file_stem,
    iter_csv,
    iter_lines,
    no_layout_found,
    quoted,
    read_file_batch,
    require_file,
    unnamed_file,
)
from unibed.schemas.source_record import (
    Location,
    LocationKind,
    Rejection,
    RejectReason,
    SourceImage,
    SourceRecord,
)

SOURCE = "imagenet"
LAYOUTS = ("official_tar", "kaggle_folder")
TRAIN_TAR = "ILSVRC2012_img_train.tar"
SYNSET_MAPPING = "LOC_synset_mapping.txt"
VAL_SOLUTION = "LOC_val_solution.csv"
KAGGLE_DATA = "ILSVRC/Data/CLS-LOC"
FILES_PER_UNIT = 1000  # val images per unit
_WNID = re.compile(r"n[0-9]{8}")


def open_index(root: str, layout: str | None = None) -> SourceIndex:
    layout = layout or _detect_layout(root)
    check_layout(SOURCE, layout, LAYOUTS, root)
    if layout == "official_tar":
        return _open_official_tar(root)
    return _open_kaggle_folder(root)


def read_unit(
    unit: ReadUnit, index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    if unit.kind == "inner_tar":
        return _read_inner_tar(unit, max_input_bytes)
    return read_file_batch(unit, index, file_stem, max_input_bytes)


def _detect_layout(root: str) -> str:
    if storage.exists(storage.join(root, TRAIN_TAR)):
        return "official_tar"
    if storage.exists(storage.join(root, SYNSET_MAPPING)):
        return "kaggle_folder"
    raise no_layout_found(
        SOURCE,
        root,
        {
            "official_tar": TRAIN_TAR,
            "kaggle_folder": f"{SYNSET_MAPPING} beside {KAGGLE_DATA}/train and val",
        },
    )


def _read_synset_mapping(path: str) -> tuple[dict[str, str], list[Rejection]]:
    """wnid -> description, in file order, and the lines that are not `wnid description`."""
    names: dict[str, str] = {}
    rejections: list[Rejection] = []
    for line_no, line, length in iter_lines(path):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if length > MAX_RECORD_CHARS:
            detail = f"line is {length} characters long (limit {MAX_RECORD_CHARS}): {quoted(line)}"
        elif len(fields) != 2 or not _WNID.fullmatch(fields[0]):
            detail = f"expected '<wnid> <description>', got {quoted(line.strip())}"
        elif fields[0] in names:
            detail = f"wnid {fields[0]} listed again; its first line wins"
        else:
            names[fields[0]] = fields[1].strip()
            continue
        rejections.append(
            Rejection(SOURCE, "", RejectReason.MALFORMED_ROW, detail, f"{path}:{line_no}")
        )
    return names, rejections


def _classes(names: dict[str, str], counts: dict[str, int] | None) -> dict[str, ClassInfo]:
    """Classes of the mapping in its order, then labels the data uses that it lacks
    (named by their wnid). `counts` None: image counts unknown before reading."""
    labels = list(names) + sorted((counts or {}).keys() - names.keys())
    return {
        wnid: ClassInfo(
            wnid, names.get(wnid, wnid), None if counts is None else counts.get(wnid, 0)
        )
        for wnid in labels
    }


# --- official_tar ---------------------------------------------------------------


def _open_official_tar(root: str) -> SourceIndex:
    tar_path = storage.join(root, TRAIN_TAR)
    require_file(tar_path, "official_tar")
    mapping_path = storage.join(root, SYNSET_MAPPING)
    names, rejections = (
        _read_synset_mapping(mapping_path) if storage.exists(mapping_path) else ({}, [])
    )
    units: list[ReadUnit] = []
    # headers only: the stream seeks over each synset tar's bytes
    with storage.open_read(tar_path) as raw:
        for member in iter_tar_members(raw, read_data=False):
            unit_or_rejection = _outer_member(tar_path, member)
            if isinstance(unit_or_rejection, ReadUnit):
                units.append(unit_or_rejection)
            else:
                rejections.append(unit_or_rejection)
    names.update((u.label, u.label) for u in units if u.label and u.label not in names)
    return SourceIndex(
        SOURCE, "official_tar", root, _classes(names, None), units, rejections=rejections
    )


def _outer_member(tar_path: str, member: TarMember) -> ReadUnit | Rejection:
    """A synset tar of the outer tar as a unit, or why the member is not one.
    A synset tar whose name is not UTF-8 is still read, its images rejected one
    by one (label ""), so each counts; a truncated one is one rejection."""
    where = f"{tar_path}!{member.name}" if member.name else tar_path
    named_badly = member.rejected is RejectReason.MALFORMED_NAME
    if member.rejected and not (named_badly and member.name.endswith(".tar")):
        return Rejection(SOURCE, "", member.rejected, member.detail, where)
    if not member.name.endswith(".tar"):
        detail = "not inside a per-synset tar, so it has no label"
        return Rejection(SOURCE, file_stem(member.name), RejectReason.UNLABELLED_IMAGE, detail, where)
    return ReadUnit(
        SOURCE,
        "inner_tar",
        tar_path,
        offset=member.offset,
        size=member.size,
        items=(member.name,),
        label="" if named_badly else file_stem(member.name),
    )


def _read_inner_tar(unit: ReadUnit, max_bytes: int) -> Iterator[ReadItem]:
    inner_name = unit.items[0]
    with storage.RangeReader(storage.open_read(unit.uri), unit.offset, unit.size) as stream:
        for member in iter_tar_members(stream, base_offset=unit.offset, max_bytes=max_bytes):
            image_id = file_stem(member.name)
            where = f"{unit.uri}!{inner_name}" + (f"!{member.name}" if member.name else "")
            if member.rejected:
                yield Rejection(SOURCE, image_id, member.rejected, member.detail, where)
            elif not unit.label:
                detail = f"its synset tar's name is not valid UTF-8: '{inner_name}'"
                yield Rejection(SOURCE, image_id, RejectReason.MALFORMED_NAME, detail, where)
            else:
                location = Location(
                    LocationKind.TAR_MEMBER,
                    unit.uri,
                    (inner_name, member.name),
                    member.offset,
                    member.size,
                )
                record = SourceRecord(SOURCE, image_id, unit.label, location)
                yield SourceImage(record, member.data)


# --- kaggle_folder --------------------------------------------------------------


def _open_kaggle_folder(root: str) -> SourceIndex:
    mapping_path = storage.join(root, SYNSET_MAPPING)
    require_file(mapping_path, "kaggle_folder")
    names, rejections = _read_synset_mapping(mapping_path)
    listing = Listing(SOURCE)
    train_units = _list_train_folders(storage.join(root, KAGGLE_DATA, "train"), listing, rejections)
    val_ids = _read_val_solution(storage.join(root, VAL_SOLUTION), listing, rejections)
    val_units = _list_val_folder(
        storage.join(root, KAGGLE_DATA, "val"), listing, val_ids, rejections
    )
    rejections.extend(listing.rejections)
    return SourceIndex(
        SOURCE,
        "kaggle_folder",
        root,
        _classes(names, Counter(listing.labels.values())),
        train_units + val_units,
        listed=listing.labels,
        splits=dict.fromkeys(val_ids, "val"),
        rejections=rejections,
    )


def _unlabelled(path: str, why: str) -> Rejection:
    return Rejection(SOURCE, file_stem(path), RejectReason.UNLABELLED_IMAGE, why, path)


def _relative_parts(path: str, folder: str) -> list[str]:
    return path[len(folder) :].lstrip("/").split("/")


def _list_train_folders(
    train_dir: str, listing: Listing, rejections: list[Rejection]
) -> list[ReadUnit]:
    """One unit per class folder `train/<wnid>/`, labelled by the folder name."""
    by_folder: dict[str, list[str]] = {}
    for path, _ in storage.list_files(storage.join(train_dir, "**")):
        parts = _relative_parts(path, train_dir)
        if bad_name := unnamed_file(SOURCE, path, file_stem):
            rejections.append(bad_name)
        elif len(parts) != 2:
            rejections.append(_unlabelled(path, "not directly inside a class folder train/<wnid>/"))
        elif listing.add(file_stem(path), parts[0], path):
            by_folder.setdefault(parts[0], []).append(parts[1])
    return [
        ReadUnit(SOURCE, "files", storage.join(train_dir, wnid), items=tuple(files), label=wnid)
        for wnid, files in by_folder.items()
    ]


def _read_val_solution(path: str, listing: Listing, rejections: list[Rejection]) -> list[str]:
    """Lists the val ids LOC_val_solution.csv labels; returns them."""
    val_ids = []
    for row in iter_csv(path, ("ImageId", "PredictionString"), SOURCE):
        if isinstance(row, Rejection):
            rejections.append(row)
            continue
        image_id = row.values["ImageId"]
        wnid = (row.values["PredictionString"].split() or [""])[0]
        if not image_id:
            rejections.append(row.malformed(SOURCE, f"empty ImageId: {quoted(str(row.values))}"))
        elif not _WNID.fullmatch(wnid):
            detail = (
                f"PredictionString does not start with a wnid: {quoted(row.values['PredictionString'])}"
            )
            rejections.append(row.malformed(SOURCE, detail, image_id))
        elif listing.add(image_id, wnid, row.where):
            val_ids.append(image_id)
    return val_ids


def _list_val_folder(
    val_dir: str, listing: Listing, val_ids: list[str], rejections: list[Rejection]
) -> list[ReadUnit]:
    """Batches of the flat val folder's files that LOC_val_solution.csv labels."""
    labelled = set(val_ids)
    first_file: dict[str, str] = {}  # image id -> the file that has it
    for path, _ in storage.list_files(storage.join(val_dir, "**")):
        image_id = file_stem(path)
        if bad_name := unnamed_file(SOURCE, path, file_stem):
            rejections.append(bad_name)
        elif len(_relative_parts(path, val_dir)) != 1 or image_id not in labelled:
            rejections.append(_unlabelled(path, f"{VAL_SOLUTION} does not label it"))
        elif image_id in first_file:
            detail = f"another file has id {image_id}; the first, {first_file[image_id]}, wins"
            rejections.append(Rejection(SOURCE, image_id, RejectReason.DUPLICATE_ID, detail, path))
        else:
            first_file[image_id] = path
    names = [storage.basename(path) for path in first_file.values()]
    return [
        ReadUnit(SOURCE, "files", val_dir, items=batch) for batch in batched(names, FILES_PER_UNIT)
    ]
