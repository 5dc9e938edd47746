"""Generic Parquet reader, layout `parquet`: files (recipe glob
`parquet.files`, `*.parquet` by default) whose rows hold an image's bytes and
its label - img2dataset's parquet output (`jpg` column) and Hugging Face
datasets' exports (an Image column is a struct {bytes, path}; a ClassLabel
column stores integers whose names the file's `huggingface` metadata lists,
and those become the class names). Read with pyarrow, one unit per row group,
only the columns needed: open_index reads the label (and id) columns alone.

Image id = the `parquet.id_column` value, else `<file name>:<row>` (row
0-based over the file); label = the label column as text (string or integer).

Bad metadata policy (docs/layouts.md), one row being one input:
- no file matches, a file that is not Parquet or lacks the named columns ->
  SourceLayoutError naming the file;
- a label that is no string or integer, or over 200 characters; an id that is
  empty -> MALFORMED_ROW at `file:row N` (the row's image is that input);
- a null label -> UNLABELLED_IMAGE; a null or empty image -> MISSING_IMAGE
  (read_unit yields nothing for it, so the listing's check reports it, as for
  a listed file that is not there);
- an id listed twice -> the first row wins, later rows DUPLICATE_ID;
- an image over max_input_bytes -> TOO_LARGE (a row group is read whole:
  Parquet compresses a column chunk as one, so img2dataset and Hugging Face
  write row groups of a few hundred MB at most);
- Parquet rows have no member paths, so nothing can be unsafe.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Iterator

from unibed.dataplane import storage
from unibed.dataplane.sources.base import (
    DEFAULT_MAX_INPUT_BYTES,
    ClassInfo,
    ReadItem,
    ReadUnit,
    SourceIndex,
)
from unibed.dataplane.sources.common import check_layout, no_layout_found, quoted
from unibed.schemas.errors import SourceLayoutError
from unibed.schemas.reader_specs import ParquetSpec
from unibed.schemas.source_record import (
    Location,
    LocationKind,
    Rejection,
    RejectReason,
    SourceImage,
    SourceRecord,
)

LAYOUTS = ("parquet",)
MAX_LABEL_CHARS = 200


def _pyarrow():
    import pyarrow.parquet

    return pyarrow.parquet


def open_index(source: str, root: str, spec: ParquetSpec, layout: str | None = None) -> SourceIndex:
    check_layout(source, layout or "parquet", LAYOUTS, root)
    files = [path for path, _ in storage.list_files(storage.join(root, spec.files))]
    if not files:
        raise no_layout_found(source, root, {"parquet": spec.files})
    listed: dict[str, str] = {}  # the first row of an id wins; read_unit reports the rest
    names: dict[str, str] = {}
    units = []
    for path in files:
        for group, rows in _label_groups(path, spec, names):
            owned = []
            for image_id, label in rows:
                if image_id not in listed:
                    listed[image_id] = label
                    owned.append(image_id)
            units.append(ReadUnit(source, "row_group", path, items=(str(group), *owned)))
    counts = Counter(listed.values())
    classes = {label: ClassInfo(label, names.get(label, label), counts[label])
               for label in sorted(counts, key=_label_order)}
    return SourceIndex(source, "parquet", root, classes, units, listed=listed, reader="parquet", options=spec)


def read_unit(
    unit: ReadUnit, index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    spec: ParquetSpec = index.options
    group, owned, seen = int(unit.items[0]), set(unit.items[1:]), set()
    with storage.open_read(unit.uri) as raw:
        parquet = _open(unit.uri, raw, spec)
        first_row = sum(parquet.metadata.row_group(g).num_rows for g in range(group))
        table = parquet.read_row_group(group, columns=_columns(spec, image=True))
    ids = _ids(unit.uri, spec, table, first_row)
    labels, images = table.column(spec.label_column).to_pylist(), table.column(spec.image_column)
    for row, (image_id, value) in enumerate(zip(ids, labels)):
        if image_id not in owned or image_id in seen:
            yield _not_listed(unit.source, image_id, value, f"{unit.uri}:row {first_row + row}")
            continue
        seen.add(image_id)
        yield from _image(unit, index, image_id, images[row].as_py(), (group, row), max_input_bytes)


def _image(unit: ReadUnit, index: SourceIndex, image_id: str, cell, at: tuple[int, int], max_bytes: int):
    data = cell.get("bytes") if isinstance(cell, dict) else cell
    where = f"{unit.uri}:row group {at[0]} row {at[1]}"
    if not data:
        # no image: like a listed file that is not there, yield nothing; iter_source (and the
        # build's ResolveKeys) report the listed id as MISSING_IMAGE, counted once
        return
    if len(data) > max_bytes:
        detail = f"image is {len(data)} bytes, more than max_input_bytes ({max_bytes})"
        yield Rejection(unit.source, image_id, RejectReason.TOO_LARGE, detail, where)
    else:
        location = Location(LocationKind.PARQUET_ROW, unit.uri, tuple(map(str, at)))
        yield SourceImage(SourceRecord(unit.source, image_id, index.listed[image_id], location), bytes(data))


def read_row(location: Location, spec: ParquetSpec) -> bytes:
    """The image bytes of one PARQUET_ROW location."""
    group, row = map(int, location.members)
    with storage.open_read(location.uri) as raw:
        table = _open(location.uri, raw, spec).read_row_group(group, columns=[spec.image_column])
    cell = table.column(spec.image_column)[row].as_py()
    return cell.get("bytes") if isinstance(cell, dict) else cell


# --- metadata ---------------------------------------------------------------------


def _open(path: str, raw, spec: ParquetSpec):
    try:
        parquet = _pyarrow().ParquetFile(raw)
    except Exception as error:  # noqa: BLE001 - pyarrow raises its own ArrowInvalid and OSErrors
        raise SourceLayoutError(path, f"not a readable Parquet file: {error}") from None
    missing = [c for c in _columns(spec, image=True) if c not in parquet.schema_arrow.names]
    if missing:
        raise SourceLayoutError(path, f"no column(s) {', '.join(missing)} (has {', '.join(parquet.schema_arrow.names)})")
    return parquet


def _columns(spec: ParquetSpec, image: bool) -> list[str]:
    columns = [spec.label_column] + ([spec.id_column] if spec.id_column else [])
    return [spec.image_column, *columns] if image else columns


def _ids(path: str, spec: ParquetSpec, table, first_row: int) -> list[str]:
    if spec.id_column:
        return ["" if v is None else str(v) for v in table.column(spec.id_column).to_pylist()]
    name = posixpath.basename(path)
    return [f"{name}:{first_row + row}" for row in range(table.num_rows)]


def _label_groups(path: str, spec: ParquetSpec, names: dict[str, str]):
    """Per row group: (its index, [(image id, label) of each row with an id and a good label])."""
    with storage.open_read(path) as raw:
        parquet = _open(path, raw, spec)
        names.update(_class_names(parquet, spec.label_column))
        first_row = 0
        for group in range(parquet.metadata.num_row_groups):
            table = parquet.read_row_group(group, columns=_columns(spec, image=False))
            labels = [_label(value) for value in table.column(spec.label_column).to_pylist()]
            ids = _ids(path, spec, table, first_row)
            yield group, [(i, label) for i, (label, problem) in zip(ids, labels) if i and not problem]
            first_row += table.num_rows


def _label(value) -> tuple[str, str]:
    """(label text, "") or ("", why the value is no label); a null label is ("", "null")."""
    if value is None:
        return "", "null"
    if isinstance(value, bool) or not isinstance(value, str | int):
        return "", f"the label must be a string or an integer, got {quoted(repr(value))}"
    label = str(value).strip()
    if not label or len(label) > MAX_LABEL_CHARS:
        return "", f"the label must be 1 to {MAX_LABEL_CHARS} characters: {quoted(label)}"
    return label, ""


def _not_listed(source: str, image_id: str, value, where: str) -> Rejection:
    """Why a row is no image: no id, a bad or null label, or its id's first row came earlier."""
    label, problem = _label(value)
    if not image_id:
        return Rejection(source, "", RejectReason.MALFORMED_ROW, "the id is null or empty", where)
    if problem == "null":
        return Rejection(source, image_id, RejectReason.UNLABELLED_IMAGE, "the row's label is null", where)
    if problem:
        return Rejection(source, image_id, RejectReason.MALFORMED_ROW, problem, where)
    return Rejection(source, image_id, RejectReason.DUPLICATE_ID,
                     f"{image_id} is listed again with label {label!r}; the first row wins", where)


def _class_names(parquet, label_column: str) -> dict[str, str]:
    """Hugging Face ClassLabel names from the file's `huggingface` metadata: {"0": "cat", ...}."""
    metadata = parquet.schema_arrow.metadata or {}
    try:
        features = json.loads(metadata.get(b"huggingface", b"{}"))["info"]["features"]
        names = features[label_column]["names"]
    except (ValueError, KeyError, TypeError):
        return {}
    return {str(i): str(name) for i, name in enumerate(names) if isinstance(name, str | int)}


def _label_order(label: str) -> tuple:
    return (0, int(label), "") if label.isdigit() else (1, 0, label)
