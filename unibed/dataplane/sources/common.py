"""Helpers the three readers share: CSV rows with line numbers, listings where
the first row wins, md5 while streaming, and files read with a size limit
(archive members: unibed/dataplane/sources/archives.py).

Everything reads through `unibed.dataplane.storage`, so local paths and gs:// URLs take
the same path.
"""

from __future__ import annotations

import csv
import hashlib
import io
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from unibed.dataplane import storage
from unibed.dataplane.sources.archives import escaped, name_problem, too_large
from unibed.dataplane.sources.base import ReadUnit, SourceIndex
from unibed.schemas.errors import SourceLayoutError
from unibed.schemas.source_record import (
    Location,
    LocationKind,
    Rejection,
    RejectReason,
    SourceImage,
    SourceRecord,
)

_DIGITS = re.compile(r"[0-9]+")


# --- layouts -----------------------------------------------------------------


def check_layout(source: str, layout: str, layouts: Sequence[str], root: str) -> None:
    if layout not in layouts:
        raise SourceLayoutError(
            root, f"{source} has no layout {layout!r}; its layouts are {', '.join(layouts)}"
        )


def no_layout_found(source: str, root: str, looked_for: dict[str, str]) -> SourceLayoutError:
    """The error for a root where none of a source's layouts is present."""
    tried = "; ".join(f"{layout}: {what}" for layout, what in looked_for.items())
    return SourceLayoutError(root, f"no {source} layout found here (looked for {tried})")


def require_file(path: str, layout: str) -> None:
    if not storage.exists(path):
        raise SourceLayoutError(path, f"missing file (the {layout} layout needs it)")


def batched(items: Sequence[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def file_stem(path: str) -> str:
    """`a/b/n01440764_10026.JPEG` -> `n01440764_10026`."""
    return posixpath.splitext(posixpath.basename(path))[0]


def int_text(value: str) -> str | None:
    """A non-negative integer id in canonical text form, or None when `value` is not one."""
    return str(int(value)) if _DIGITS.fullmatch(value) else None


# --- CSV -----------------------------------------------------------------------


@dataclass(frozen=True)
class CsvRow:
    path: str
    line: int
    values: dict[str, str]  # column -> stripped text

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def malformed(self, source: str, detail: str, image_id: str = "") -> Rejection:
        return Rejection(source, image_id, RejectReason.MALFORMED_ROW, detail, self.where)


def iter_csv(path: str, required: Sequence[str], source: str) -> Iterator[CsvRow | Rejection]:
    """Rows of a CSV with a header, by column name, each with its line number.

    A missing file, an empty file or a header without a required column makes
    the file unusable (SourceLayoutError); a row with the wrong number of
    fields is a MALFORMED_ROW rejection and the rest goes on.
    """
    if not storage.exists(path):
        raise SourceLayoutError(path, f"missing file (needs columns {','.join(required)})")
    with storage.open_read(path) as raw:
        # utf-8-sig: spreadsheet exports often start with a BOM
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text)
        # GLDv2's train_clean.csv lists every image of a landmark in one field
        # (megabytes for the largest); the csv module's default cap is 128 KiB.
        csv.field_size_limit(2**31 - 1)
        header = [column.strip() for column in next(reader, [])]
        missing = [column for column in required if column not in header]
        if missing:
            raise SourceLayoutError(
                path,
                f"header {','.join(header)!r} lacks required column(s) {', '.join(missing)}",
                line=1,
            )
        for fields in _checked(reader, path):
            if not fields:
                continue  # blank line
            if len(fields) != len(header):
                yield Rejection(
                    source,
                    "",
                    RejectReason.MALFORMED_ROW,
                    f"expected {len(header)} fields ({','.join(header)}), "
                    f"got {len(fields)}: {','.join(fields)!r}",
                    f"{path}:{reader.line_num}",
                )
                continue
            values = {column: value.strip() for column, value in zip(header, fields)}
            yield CsvRow(path, reader.line_num, values)


def _checked(reader, path: str) -> Iterator[list[str]]:
    """The reader's rows; a row the csv module cannot parse names its line."""
    try:
        yield from reader
    except csv.Error as e:
        raise SourceLayoutError(path, f"unreadable CSV: {e}", line=reader.line_num) from None


class Listing:
    """image_id -> label as the metadata lists it. The first listing of an id
    wins; each later one becomes a DUPLICATE_ID rejection."""

    def __init__(self, source: str):
        self.source = source
        self.labels: dict[str, str] = {}
        self.rejections: list[Rejection] = []
        self._first_where: dict[str, str] = {}

    def add(self, image_id: str, label: str, where: str) -> bool:
        """Record a listing; False when the id was already listed."""
        first_label = self.labels.get(image_id)
        if first_label is not None:
            self.rejections.append(
                Rejection(
                    self.source,
                    image_id,
                    RejectReason.DUPLICATE_ID,
                    f"{image_id} listed again with label {label!r}; the first listing at "
                    f"{self._first_where[image_id]} with label {first_label!r} wins",
                    where,
                )
            )
            return False
        self.labels[image_id] = label
        self._first_where[image_id] = where
        return True


# --- md5 while streaming ---------------------------------------------------------


class Md5Reader(io.RawIOBase):
    """A forward-only reader that hashes every byte it passes on."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._md5 = hashlib.md5(usedforsecurity=False)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._md5.update(data)
        return len(data)

    def hexdigest(self) -> str:
        """The md5 of the whole stream: reads (and hashes) whatever is left first,
        e.g. the zero padding after a tar's end-of-archive marker."""
        for chunk in storage.iter_chunks(self._raw):
            self._md5.update(chunk)
        return self._md5.hexdigest()


# --- folders -------------------------------------------------------------------


def read_file_batch(
    unit: ReadUnit, index: SourceIndex, image_id_of: Callable[[str], str], max_bytes: int
) -> Iterator[SourceImage | Rejection]:
    """The files `unit.items` (names inside the folder `unit.uri`), labelled
    from the index; open_index only puts listed files with UTF-8 names into
    such units. A file over `max_bytes` is a TOO_LARGE rejection, never read."""
    for name in unit.items:
        path = storage.join(unit.uri, name)
        image_id = image_id_of(name)
        data, size = read_limited(path, max_bytes)
        if data is None:
            detail = too_large("file", size, max_bytes)
            yield Rejection(unit.source, image_id, RejectReason.TOO_LARGE, detail, path)
            continue
        record = SourceRecord(
            unit.source,
            image_id,
            index.listed[image_id],
            Location(LocationKind.FILE, path),
            index.splits.get(image_id, "train"),
        )
        yield SourceImage(record, data)


def read_limited(path: str, max_bytes: int) -> tuple[bytes | None, int]:
    """(a file's bytes, its size); bytes None when it has more than `max_bytes`,
    which the size tells before reading (and a file that grows meanwhile still
    gives at most max_bytes + 1)."""
    with storage.open_read(path) as f:
        size = f.seek(0, io.SEEK_END)
        if size > max_bytes:
            return None, size
        f.seek(0)
        data = f.read(max_bytes + 1)
    return (None, len(data)) if len(data) > max_bytes else (data, len(data))


def unnamed_file(source: str, path: str, image_id_of: Callable[[str], str]) -> Rejection | None:
    """A MALFORMED_NAME rejection for a file whose path is not UTF-8 (its bytes
    shown escaped), or None when the path is fine."""
    problem = name_problem(path)
    if not problem:
        return None
    safe = escaped(path)
    return Rejection(source, image_id_of(safe), RejectReason.MALFORMED_NAME, f"file {problem}", safe)
