"""Archive members read defensively: tar streaming that survives damage, zip
members read with a size limit, and member names made safe to print.

A damaged archive never ends reading silently. Python's streaming tar reader
takes a bad header after the first for the end of the archive, so the
members after it would vanish; here, like GNU tar ("Skipping to next
header"), every 512-byte block is tried as a header until a valid one is
found, and the skipped bytes, a member the archive ends inside, and a missing
end-of-archive marker (two zero blocks) each come back as a DAMAGED_ARCHIVE
member naming the byte offset. Offsets are in the outermost file: tar stores
members uncompressed, so a nested member's bytes sit at a fixed range there.

Names reach the rest of the system only escaped (`caf\\xe9.jpg`): a name that
is not UTF-8 would otherwise carry surrogates that fail every later encode.
"""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from unibed.schemas.errors import SourceLayoutError
from unibed.schemas.source_record import RejectReason

BLOCK = tarfile.BLOCKSIZE
# pax and GNU long-name headers hold names: larger ones are damage, not names
_MAX_HEADER_BYTES = 1 << 20
_CHUNK = 1 << 20
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")


# --- names ---------------------------------------------------------------------


def escaped(name: str) -> str:
    """`name` as text without surrogates: bytes that were not UTF-8 (decoded with
    surrogateescape, as os.listdir and tarfile do) become `\\xe9`."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no byte decoded to
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def name_problem(name: str) -> str:
    """Why a file or member name cannot be used as an id, or "" when it is UTF-8."""
    safe = escaped(name)
    return "" if safe == name else f"name is not valid UTF-8: '{safe}'"


def unsafe_member_reason(name: str) -> str:
    """Why an archive member path must never be followed, or "" when it is safe."""
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
        return f"absolute member path {name!r}"
    if ".." in re.split(r"[/\\]", name):
        return f"member path {name!r} has a '..' component"
    return ""


def tar_member_unsafe(info: tarfile.TarInfo) -> str:
    """Why a (non-directory) tar member must not be used, or "" for a safe regular file."""
    name = escaped(info.name)
    if reason := unsafe_member_reason(name):
        return reason
    if info.isreg() and not info.issparse():
        return ""
    if info.issparse():
        return f"member {name!r} is a sparse file"
    if info.issym():
        return f"member {name!r} is a symbolic link to {escaped(info.linkname)!r}"
    if info.islnk():
        return f"member {name!r} is a hard link to {escaped(info.linkname)!r}"
    return f"member {name!r} is a device, fifo or other special file"


def too_large(what: str, size: int, limit: int) -> str:
    return f"{what} is {size} bytes, more than max_input_bytes ({limit})"


# --- tar -------------------------------------------------------------------------


@dataclass(frozen=True)
class TarMember:
    """A regular file of a tar, or why something there cannot be used."""

    name: str  # escaped (see `escaped`); for damage, the damaged header's name if legible
    offset: int  # of the member's data (damage: where it starts), in the outermost file
    size: int
    data: bytes = b""
    rejected: RejectReason | None = None  # set: never use it; its data was not read
    detail: str = ""  # why, naming the byte offset


class _TarStream:
    """A forward reader over a tar with the position tracked, which is also all
    that tarfile.TarInfo.fromtarfile asks of a TarFile (it reads headers through
    `.fileobj`); data is read or skipped separately, so nothing holds a member
    the caller does not want."""

    encoding = "utf-8"
    errors = "surrogateescape"  # undecodable name bytes survive, to be escaped

    def __init__(self, stream: BinaryIO, base_offset: int):
        self.fileobj = self
        self.pax_headers: dict[str, str] = {}
        self.offset = 0  # fromtarfile sets it to where the member's data ends
        self.base = base_offset
        self.last_block = b""
        self._stream, self._pos = stream, 0
        self._end = _stream_end(stream)

    def read(self, size: int) -> bytes:
        """Header bytes (fromtarfile): bounded, so a lying long-name header cannot fill memory."""
        if size > _MAX_HEADER_BYTES:
            raise tarfile.HeaderError(f"an extended header claims {size} bytes")
        data = self.take(size)
        if size == BLOCK:
            self.last_block = data
        return data

    def tell(self) -> int:
        return self._pos

    def take(self, size: int) -> bytes:
        """Up to `size` bytes; fewer only at the end of the stream."""
        parts, left = [], size
        while left > 0 and (part := self._stream.read(min(left, 64 << 20))):
            parts.append(part)
            left -= len(part)
        data = b"".join(parts)
        self._pos += len(data)
        return data

    def skip(self, size: int) -> int:
        """Move `size` bytes on (seeking when the stream can); the bytes moved."""
        if self._end is not None:
            moved = max(0, min(size, self._end - self._pos))
            self._stream.seek(self._pos + moved)
            self._pos += moved
            return moved
        moved = 0
        while moved < size and (part := self.take(min(size - moved, _CHUNK))):
            moved += len(part)
        return moved

    def rewind(self, position: int) -> None:
        """Back to `position` after a failed header read, when the stream can seek."""
        if self._end is not None and position < self._pos:
            self._stream.seek(position)
            self._pos = position


def _stream_end(stream: BinaryIO) -> int | None:
    """The stream's length when it can seek (its start is position 0), else None."""
    if not stream.seekable():
        return None
    start = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(start)
    return end


class _Damage:
    """A run of blocks that are not tar headers, reported once reading resumes."""

    def __init__(self, stream: _TarStream):
        self._stream = stream
        self._start: int | None = None
        self._cause, self._name = "", ""

    def note(self, start: int, cause: Exception) -> None:
        if self._start is None:
            self._start, self._cause = start, str(cause)
            self._name = _legible_name(self._stream.last_block)

    def report(self, resumed_at: int | None) -> TarMember | None:
        """The damage up to `resumed_at` (None: to the end), then forget it."""
        if self._start is None:
            return None
        base, start = self._stream.base, self._start
        end = self._stream.tell() if resumed_at is None else resumed_at
        named = f" (the damaged header names '{self._name}')" if self._name else ""
        then = (
            f"reading resumed at the next valid header at offset {base + resumed_at}"
            if resumed_at is not None
            else "no valid header follows"
        )
        detail = (
            f"damaged archive: {end - start} bytes at offset {base + start} are not a valid tar "
            f"header ({self._cause}){named}; {then}; the member(s) there are lost"
        )
        self._start = None
        return TarMember(self._name, base + start, end - start, b"", RejectReason.DAMAGED_ARCHIVE, detail)


def _legible_name(block: bytes) -> str:
    name = escaped(tarfile.nts(block[:100], "utf-8", "surrogateescape")) if len(block) == BLOCK else ""
    return name if name.isprintable() else ""


def iter_tar_members(
    stream: BinaryIO,
    base_offset: int = 0,
    *,
    max_bytes: int | None = None,
    read_data: bool = True,
    want: Callable[[str], bool] | None = None,
) -> Iterator[TarMember]:
    """Stream a tar front to back (seeking over skipped bytes when the stream
    can; nothing held but one member): its regular files with their bytes
    (`read_data` False: headers only; `want` given: only members whose escaped
    name it accepts carry bytes, e.g. a WebDataset's small label files), and as `rejected` members its links,
    devices, unsafe or non-UTF-8 paths, members over `max_bytes`, and any damage.
    Directories are skipped.

    `base_offset` is where `stream` starts in the outermost file.
    """
    tar = _TarStream(stream, base_offset)
    damage = _Damage(tar)
    zero_blocks = 0  # since the last header: two make the end-of-archive marker
    while True:
        start = tar.tell()
        try:
            info = tarfile.TarInfo.fromtarfile(tar)
        except tarfile.EOFHeaderError:  # an all-zero block
            zero_blocks += 1
            continue
        except tarfile.EmptyHeaderError:  # the stream ended on a block boundary
            break
        except tarfile.TruncatedHeaderError:
            if lost := damage.report(resumed_at=None):
                yield lost
            yield _truncated(tar, start, f"it ends with a partial block at offset {base_offset + start}")
            return
        except (tarfile.HeaderError, ValueError, UnicodeError) as error:
            # a bad checksum or number field, a bad long name or pax record
            damage.note(start, error)
            tar.rewind(start + BLOCK)
            continue
        if lost := damage.report(resumed_at=start):
            yield lost
        zero_blocks = 0
        member = _member(tar, info, max_bytes, read_data and (want is None or want(escaped(info.name))))
        if member is not None:
            yield member
            if member.rejected is RejectReason.DAMAGED_ARCHIVE:
                return  # the archive ended inside it
    yield from _end_of_archive(tar, damage, zero_blocks)


def _end_of_archive(tar: _TarStream, damage: _Damage, zero_blocks: int) -> Iterator[TarMember]:
    if lost := damage.report(resumed_at=None):
        yield lost
    elif zero_blocks < 2:
        end = tar.base + tar.tell()
        yield _truncated(
            tar, tar.tell(), f"it ends at offset {end} without the end-of-archive marker (two zero blocks)"
        )


def _truncated(tar: _TarStream, at: int, what: str) -> TarMember:
    detail = f"damaged archive: {what}; it is truncated and any member(s) after it are lost"
    return TarMember("", tar.base + at, 0, b"", RejectReason.DAMAGED_ARCHIVE, detail)


def _member(
    tar: _TarStream, info: tarfile.TarInfo, max_bytes: int | None, read_data: bool
) -> TarMember | None:
    """The member whose header was just read, its data read or skipped; None for a directory."""
    if info.isdir():
        return None
    span = tar.offset - info.offset_data  # the stored bytes, padded: fromtarfile knows per type
    name, offset = escaped(info.name), tar.base + info.offset_data
    reason, detail = _member_problem(info, offset, max_bytes)
    data = tar.take(info.size) if reason is None and read_data else b""
    available = len(data) + tar.skip(span - len(data))
    if available < min(span, info.size):
        detail = (
            f"damaged archive: it ends inside member '{name}', whose header at offset "
            f"{tar.base + info.offset} claims {info.size} bytes of which {available} are there; "
            "it is truncated and any member(s) after it are lost"
        )
        return TarMember(name, offset, available, b"", RejectReason.DAMAGED_ARCHIVE, detail)
    return TarMember(name, offset, info.size, data, reason, detail)


def _member_problem(
    info: tarfile.TarInfo, offset: int, max_bytes: int | None
) -> tuple[RejectReason | None, str]:
    if unsafe := tar_member_unsafe(info):
        return RejectReason.UNSAFE_MEMBER_PATH, unsafe
    if problem := name_problem(info.name):
        return RejectReason.MALFORMED_NAME, f"member {problem}"
    if max_bytes is not None and info.size > max_bytes:
        what = f"member '{info.name}' at offset {offset}"
        return RejectReason.TOO_LARGE, too_large(what, info.size, max_bytes)
    return None, ""


# --- zip -------------------------------------------------------------------------


class _Utf8FlagFix:
    """A zip file's reader that clears the UTF-8 flag of central-directory names
    that are not UTF-8, which zipfile would otherwise fail the whole archive on
    (UnicodeDecodeError): those names then decode as cp437, and `bad_names`
    maps each such decoded name to its escaped bytes."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.bad_names: dict[str, str] = {}

    def seek(self, *args) -> int:
        return self._raw.seek(*args)

    def tell(self) -> int:
        return self._raw.tell()

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data[:4] == b"PK\x01\x02":  # zipfile reads the whole central directory at once
            data = self._fixed(bytearray(data))
        return data

    def _fixed(self, directory: bytearray) -> bytes:
        at = 0
        while directory[at : at + 4] == b"PK\x01\x02" and at + 46 <= len(directory):
            flags = int.from_bytes(directory[at + 8 : at + 10], "little")
            lengths = [int.from_bytes(directory[at + i : at + i + 2], "little") for i in (28, 30, 32)]
            name = bytes(directory[at + 46 : at + 46 + lengths[0]])
            if flags & 0x800 and not _is_utf8(name):
                directory[at + 8 : at + 10] = (flags & ~0x800).to_bytes(2, "little")
                self.bad_names[name.decode("cp437")] = name.decode("utf-8", "backslashreplace")
            at += 46 + sum(lengths)
        return bytes(directory)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# what reading one member's bytes raises when they are bad: a bad CRC or local
# header, a deflate stream that does not inflate, an unsupported method, encryption
_ZIP_MEMBER_ERRORS = (
    zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError
)


def open_zip(raw: BinaryIO, path: str) -> tuple[zipfile.ZipFile, dict[str, str]]:
    """A zip whose members can be listed even when some names flagged UTF-8 are
    not, and those names (as zipfile now lists them -> escaped). A zip that
    still does not open is a SourceLayoutError naming `path`."""
    reader = _Utf8FlagFix(raw)
    try:
        return zipfile.ZipFile(reader), reader.bad_names
    except (zipfile.BadZipFile, UnicodeDecodeError, ValueError, OSError) as error:
        raise SourceLayoutError(path, f"not a readable zip: {error}") from None


def read_zip_member(
    archive: zipfile.ZipFile, member: str, max_bytes: int
) -> tuple[bytes | None, RejectReason | None, str]:
    """(data, None, "") or (None, reason, detail): the size the central directory
    states is checked first, then inflation stops at max_bytes + 1 bytes, so a
    member whose header lies about its size never fills memory either."""
    info = archive.getinfo(member)
    if info.file_size > max_bytes:
        return None, RejectReason.TOO_LARGE, too_large(f"member '{member}'", info.file_size, max_bytes)
    parts, total = [], 0
    try:
        with archive.open(info) as stream:
            while total <= max_bytes and (part := stream.read(min(_CHUNK, max_bytes + 1 - total))):
                parts.append(part)
                total += len(part)
    except _ZIP_MEMBER_ERRORS as error:
        return None, RejectReason.DAMAGED_ARCHIVE, f"damaged archive: member '{member}': {error}"
    if total > max_bytes:
        return None, RejectReason.TOO_LARGE, too_large(f"member '{member}' inflated", total, max_bytes)
    return b"".join(parts), None, ""
