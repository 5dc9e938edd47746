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
from unibed.dataplane.sources.archives import (
    escaped,
    name_problem,
    open_zip,
    read_zip_member,
    too_large,
)
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


# --- CSV -----------------------------------------------------------------------

MAX_ID_DIGITS = 18  # any 18 digits fit an int64; real class/landmark ids have at most 6
# One CSV record's text. GLDv2's largest train_clean.csv row (one landmark's ids,
# 17 characters each) is well under 1 MB; a bigger record is a broken file, and
# must not cost memory.
MAX_RECORD_CHARS = 4 << 20
# A quoted field may span lines; one still open after this many is an unclosed quote.
MAX_RECORD_LINES = 16
QUOTE_CHARS = 200  # how much of an offending text a rejection's detail quotes


def quoted(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` for a rejection's detail: its repr, cut to `limit` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def int_text(value: str) -> str | None:
    """A non-negative integer id of at most MAX_ID_DIGITS digits in canonical text
    form, or None when `value` is not one. Never calls int(): Python refuses to
    convert over 4,300 digits, and no dataset has an id anywhere near that long."""
    if not _DIGITS.fullmatch(value):
        return None
    digits = value.lstrip("0") or "0"
    return digits if len(digits) <= MAX_ID_DIGITS else None


@dataclass(frozen=True)
class CsvRow:
    path: str
    line: int  # the record's first line
    values: dict[str, str]  # column -> stripped text

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def malformed(self, source: str, detail: str, image_id: str = "") -> Rejection:
        return Rejection(source, image_id, RejectReason.MALFORMED_ROW, detail, self.where)


def iter_csv(
    path: str, required: Sequence[str], source: str, *, delimiter: str = ",", header: bool = True
) -> Iterator[CsvRow | Rejection]:
    """Rows of a CSV with a header, by column name, each with its first line number
    (`header` False: no header, columns named by 0-based position "0", "1", ...).

    A missing file, an empty file or a header without a required column makes
    the file unusable (SourceLayoutError). A record that is not a row - the
    wrong number of fields, a quote never closed, a record over
    MAX_RECORD_CHARS characters or MAX_RECORD_LINES lines - is a MALFORMED_ROW
    at its first line, and reading resumes on the line after that one, so an
    unclosed quote costs one row, not the rest of the file. Without a header,
    a row lacking a `required` position is a MALFORMED_ROW.
    """
    if not storage.exists(path):
        raise SourceLayoutError(path, f"missing file (needs columns {','.join(map(str, required))})")
    with storage.open_read(path) as raw:
        # utf-8-sig: spreadsheet exports often start with a BOM
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        # the reader's own cap on a field; the feed already bounds each record
        csv.field_size_limit(MAX_RECORD_CHARS)
        records = _records(_LineFeed(text), delimiter, header)
        columns = _header(path, next(records, None), required) if header else None
        for line, fields, problem in records:
            if problem:
                yield Rejection(source, "", RejectReason.MALFORMED_ROW, problem, f"{path}:{line}")
            elif fields:  # else a blank line
                yield _row(path, line, columns, fields, required, source)


def _row(
    path: str, line: int, columns: list[str] | None, fields: list[str], required: Sequence[str],
    source: str,
) -> CsvRow | Rejection:
    if columns is not None:
        return CsvRow(path, line, {column: value.strip() for column, value in zip(columns, fields)})
    values = {str(i): value.strip() for i, value in enumerate(fields)}
    if missing := [str(c) for c in required if str(c) not in values]:
        detail = f"no field at position(s) {', '.join(missing)}: {quoted(' '.join(fields))}"
        return Rejection(source, "", RejectReason.MALFORMED_ROW, detail, f"{path}:{line}")
    return CsvRow(path, line, values)


def iter_words(path: str, required: Sequence[str], source: str, *, header: bool = True
               ) -> Iterator[CsvRow | Rejection]:
    """Rows of a whitespace-separated text file (Stanford Online Products'
    Ebay_train.txt, Food-101's meta/train.txt), like iter_csv: by column name
    with a header (its first non-blank line), else by position; a line with
    another field count than the header, or over MAX_RECORD_CHARS, is a
    MALFORMED_ROW at path:line; blank lines are skipped."""
    if not storage.exists(path):
        raise SourceLayoutError(path, f"missing file (needs columns {','.join(map(str, required))})")
    columns: list[str] | None = None
    for line_no, text, length in iter_lines(path):
        fields = text.split()
        if not fields:
            continue
        if length > MAX_RECORD_CHARS:
            detail = f"line is {length} characters long (limit {MAX_RECORD_CHARS}): {quoted(text)}"
            yield Rejection(source, "", RejectReason.MALFORMED_ROW, detail, f"{path}:{line_no}")
        elif header and columns is None:
            columns = _header(path, (line_no, fields, ""), required)
        elif columns is not None and len(fields) != len(columns):
            detail = f"expected {len(columns)} fields ({' '.join(columns)}), got {len(fields)}: {quoted(text.strip())}"
            yield Rejection(source, "", RejectReason.MALFORMED_ROW, detail, f"{path}:{line_no}")
        else:
            yield _row(path, line_no, columns, fields, required, source)
    if header and columns is None:
        raise SourceLayoutError(path, "empty file (no header)", line=1)


def _header(
    path: str, record: tuple[int, list[str], str] | None, required: Sequence[str]
) -> list[str]:
    line, fields, problem = record or (1, [], "")
    if problem:
        raise SourceLayoutError(path, f"unreadable header: {problem}", line=line)
    header = [column.strip() for column in fields]
    missing = [column for column in required if column not in header]
    if missing:
        raise SourceLayoutError(
            path,
            f"header {quoted(','.join(header))} lacks required column(s) {', '.join(missing)}",
            line=line,
        )
    return header


def _records(
    feed: _LineFeed, delimiter: str = ",", has_header: bool = True
) -> Iterator[tuple[int, list[str], str]]:
    """The header's record (when `has_header`), then per record (first line,
    fields, "") or (first line, [], why it is no row)."""
    reader = csv.reader(feed, delimiter=delimiter)
    # without a header, field counts are not compared (an empty header is never set)
    header: list[str] | tuple[()] | None = None if has_header else ()
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield feed.reject(f"unreadable CSV record ({e}): {feed.quoted()}")
            continue
        except _RecordTooLong as e:
            yield feed.reject(str(e))
            continue
        if feed.ran_out:
            yield feed.reject(
                f"a quote opened here is never closed (it runs to the end of the file): "
                f"{feed.quoted()}"
            )
        elif header and fields and len(fields) != len(header):
            yield feed.reject(
                f"expected {len(header)} fields ({','.join(header)}), "
                f"got {len(fields)}: {quoted(','.join(fields))}"
            )
        else:
            if header is None:
                header = [column.strip() for column in fields]
            yield feed.accept(), fields, ""


def iter_lines(path: str) -> Iterator[_Line]:
    """A text file's lines as (number, text, length), none held over
    MAX_RECORD_CHARS characters (the text of a longer one is its head)."""
    with storage.open_read(path) as raw:
        feed = _LineFeed(io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=""))
        while (line := feed.read_line()) is not None:
            yield line


class _RecordTooLong(Exception):
    """Raised by the feed inside csv.reader; the message is the rejection's detail."""


# A line of the file: (number, text, length). The text of a line over
# MAX_RECORD_CHARS is its first QUOTE_CHARS characters. (A plain tuple: one per line.)
_Line = tuple[int, str, int]


class _LineFeed:
    """csv.reader's input: the file's lines, none held over MAX_RECORD_CHARS
    characters. It keeps the lines of the record being parsed, so a bad record
    is reported at its first line and its later lines are read again as rows."""

    def __init__(self, text: io.TextIOBase):
        self._readline = text.readline
        self._lines_read = 0
        self._replay: list[_Line] = []  # lines to give again, last first
        self._record: list[_Line] = []  # the lines of the record being parsed
        self._record_chars = 0
        self.ran_out = False  # the file ended inside a record (an unclosed quote)

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        record = self._record
        if record and (len(record) >= MAX_RECORD_LINES or self._record_chars > MAX_RECORD_CHARS):
            raise _RecordTooLong(
                f"a quote opened here is still open after {len(record)} lines "
                f"({self._record_chars} characters; limits {MAX_RECORD_LINES} lines, "
                f"{MAX_RECORD_CHARS} characters): {self.quoted()}"
            )
        line = self._replay.pop() if self._replay else self.read_line()
        if line is None:
            self.ran_out = bool(record)
            raise StopIteration
        record.append(line)
        number, text, length = line
        self._record_chars += length
        if length > MAX_RECORD_CHARS:
            raise _RecordTooLong(self._too_long(number, text, length))
        return text

    def _too_long(self, number: int, head: str, length: int) -> str:
        what = f"{length} characters long (limit {MAX_RECORD_CHARS}): {quoted(head)}"
        if number == self._record[0][0]:
            return f"line is {what}"
        return f"a quote opened here runs on into line {number}, which is {what}"

    def read_line(self) -> _Line | None:
        """The next line of the file, None at its end."""
        text = self._readline(MAX_RECORD_CHARS + 1)
        if not text:
            return None
        self._lines_read += 1
        if len(text) <= MAX_RECORD_CHARS or text[-1] in "\r\n":
            return self._lines_read, text, len(text)
        # over the limit: keep its head for the detail, skip the rest unread into memory
        length = len(text)
        while (chunk := self._readline(1 << 20)) and chunk[-1] not in "\r\n":
            length += len(chunk)
        return self._lines_read, text[:QUOTE_CHARS], length + len(chunk.rstrip("\r\n"))

    def quoted(self) -> str:
        return quoted("".join(text for _, text, _ in self._record))

    def accept(self) -> int:
        """The record was a row: its first line."""
        first = self._record[0][0] if self._record else self._lines_read
        self._record.clear()
        self._record_chars = 0
        return first

    def reject(self, problem: str) -> tuple[int, list[str], str]:
        """The record was no row: reading resumes at its second line."""
        self._replay.extend(reversed(self._record[1:]))
        self.ran_out = False
        return self.accept(), [], problem


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


def read_zip_batch(
    unit: ReadUnit, index: SourceIndex, image_id_of: Callable[[str], str], max_bytes: int
) -> Iterator[SourceImage | Rejection]:
    """The zip members `unit.items` of the zip `unit.uri`, labelled from the
    index (open_index only puts listed, safe members into such units); a member
    over `max_bytes` is TOO_LARGE, one that does not inflate DAMAGED_ARCHIVE."""
    with storage.open_read(unit.uri) as raw:
        archive, _ = open_zip(raw, unit.uri)
        with archive:
            for member in unit.items:
                image_id = image_id_of(member)
                data, reason, detail = read_zip_member(archive, member, max_bytes)
                if reason is not None:
                    yield Rejection(unit.source, image_id, reason, detail, f"{unit.uri}!{member}")
                    continue
                location = Location(LocationKind.ZIP_MEMBER, unit.uri, (member,))
                split = index.splits.get(image_id, "train")
                record = SourceRecord(unit.source, image_id, index.listed[image_id], location, split)
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
        # the size it had and a byte more, not max_bytes + 1: a read allocates what it may
        # return (64 MB mapped and unmapped per image by default, 4x the time of the read)
        data = f.read(size + 1)
        if len(data) > size:  # it grew: read on to the limit
            data += f.read(max_bytes + 1 - len(data))
    return (None, len(data)) if len(data) > max_bytes else (data, len(data))


def unnamed_file(source: str, path: str, image_id_of: Callable[[str], str]) -> Rejection | None:
    """A MALFORMED_NAME rejection for a file whose path is not UTF-8 (its bytes
    shown escaped), or None when the path is fine."""
    problem = name_problem(path)
    if not problem:
        return None
    safe = escaped(path)
    return Rejection(source, image_id_of(safe), RejectReason.MALFORMED_NAME, f"file {problem}", safe)


# --- image files among other files -------------------------------------------------

# What the generic readers take for an image in a folder or archive (torchvision's
# IMG_EXTENSIONS and webp): anything else there (READMEs, listings, .DS_Store) is no input.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")


def is_image_name(path: str) -> bool:
    name = posixpath.basename(path)
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def relative_to(root: str, path: str) -> str:
    """`path` (a file listed under `root`) relative to `root`, with '/' separators."""
    return path[len(root):].replace("\\", "/").lstrip("/")
