"""One way to reach bytes, local or gs://: a thin layer over Beam's FileSystems.

Every component (readers, sample generator, build, fetch) goes through these
functions, so a path may always be a local path or a gs:// URL and there is
exactly one code path for both.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import uuid
from collections.abc import Iterator
from typing import BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_RAW = CompressionTypes.UNCOMPRESSED  # never let Beam guess from the suffix


def is_remote(path: str) -> bool:
    return "://" in path


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return posixpath.join(base, *parts)
    return FileSystems.join(base, *parts)


def open_read(path: str) -> BinaryIO:
    """A seekable binary reader (local file or GCS range reads)."""
    return FileSystems.open(path, compression_type=_RAW)


def open_write(path: str) -> BinaryIO:
    """A binary writer; parent folders are created for local paths."""
    if not is_remote(path):
        parent = posixpath.dirname(path)
        if parent and not FileSystems.exists(parent):
            FileSystems.mkdirs(parent)
    return FileSystems.create(path, compression_type=_RAW)


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def read_range(path: str, offset: int, size: int) -> bytes:
    with open_read(path) as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise OSError(f"{path}: wanted {size} bytes at offset {offset}, got {len(data)}")
    return data


# gs://: ranges this close are fetched in one GET. A GET's ~30 ms to the first byte buys
# ~3 MB of transfer at ~100 MB/s, so a shorter gap is cheaper read than skipped; a shard
# of a build with few shards then reads a work file in one GET, not one per Example.
_NEARBY = 2 * 1024 * 1024
_SPAN_LIMIT = 8 * 1024 * 1024


def read_ranges(path: str, ranges: list[tuple[int, int]]) -> Iterator[bytes]:
    """The bytes of each (offset, size) range of one file, in the order given.

    Local: one open and a seek per range. gs://: one ranged GET per run of
    nearby ranges; Beam's reader would fetch a 16 MiB chunk at every seek.
    """
    if is_remote(path):
        yield from _remote_ranges(path, ranges)
        return
    with open_read(path) as f:
        for offset, size in ranges:
            f.seek(offset)
            yield _exact(path, offset, size, f.read(size))


def _exact(path: str, offset: int, size: int, data: bytes) -> bytes:
    if len(data) != size:
        raise OSError(f"{path}: wanted {size} bytes at offset {offset}, got {len(data)}")
    return data


def _remote_ranges(path: str, ranges: list[tuple[int, int]]) -> Iterator[bytes]:
    from google.cloud import storage as gcs

    bucket, _, name = path.removeprefix("gs://").partition("/")
    blob = gcs.Client().bucket(bucket).blob(name)
    for run in _runs(ranges):
        start, end = run[0][0], max(offset + size for offset, size in run)
        span = blob.download_as_bytes(start=start, end=end - 1, checksum=None) if end > start else b""
        for offset, size in run:
            yield _exact(path, offset, size, span[offset - start : offset - start + size])


def _runs(ranges: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    """Consecutive ranges, each starting at most _NEARBY after the run's end, up to _SPAN_LIMIT."""
    run: list[tuple[int, int]] = []
    for offset, size in ranges:
        if run:
            start, end = run[0][0], max(o + s for o, s in run)
            if not (end <= offset <= end + _NEARBY and offset + size - start <= _SPAN_LIMIT):
                yield run
                run = []
        run.append((offset, size))
    if run:
        yield run


def write_bytes(path: str, data: bytes) -> None:
    with open_write(path) as f:
        f.write(data)


def write_atomic(path: str, data: bytes) -> None:
    """Write `path` so that a reader sees the old file or the new one, never a part.

    The bytes go to a temporary name beside the target (same folder, so a local
    rename stays on one filesystem) and are then renamed into place: local, an
    atomic os.rename; GCS, a copy + delete, each atomic per object. The name is
    unique per call, so concurrent writers never share a temporary file.
    """
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    make_parent(temporary)  # safe when concurrent writers create the same folder
    try:
        write_bytes(temporary, data)
        rename(temporary, path)
    except BaseException:
        _discard(temporary)
        raise


def _discard(path: str) -> None:
    """Delete a file if present; a failure here must not hide the error being raised."""
    with contextlib.suppress(Exception):
        if exists(path):
            delete([path])


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def size(path: str) -> int:
    return list_files(path)[0][1] if exists(path) else -1


def list_files(pattern: str) -> list[tuple[str, int]]:
    """(path, size) of files matching a glob, sorted by path for determinism."""
    result = FileSystems.match([pattern])[0]
    return sorted((m.path, m.size_in_bytes) for m in result.metadata_list)


def delete(paths: list[str]) -> None:
    """Delete files (a local folder is deleted with everything under it; on GCS
    a "folder" is only a name prefix: use delete_tree)."""
    if paths:
        FileSystems.delete(paths)


def delete_tree(folder: str) -> None:
    """Delete a folder and everything under it, local or gs://; nothing if absent.

    GCS has no folders, and deleting gs://b/work deletes only an object of that
    exact name, so the objects under the prefix are listed and deleted.
    """
    if is_remote(folder):
        delete([p for p, _ in list_files(join(folder, "**"))])
    elif FileSystems.exists(folder):
        FileSystems.delete([folder])


def rename(source: str, destination: str) -> None:
    """Move one file. Local: os.rename (atomic). GCS: copy + delete, each atomic per object."""
    FileSystems.rename([source], [destination])


def create_if_absent(path: str, data: bytes) -> bool:
    """Write `path` only if no such file exists, atomically; False if it already did.

    Local: open with "x". GCS: an upload conditional on no live generation.
    """
    if is_remote(path):
        from google.api_core.exceptions import PreconditionFailed
        from google.cloud import storage as gcs

        bucket, _, name = path.removeprefix("gs://").partition("/")
        try:
            gcs.Client().bucket(bucket).blob(name).upload_from_string(data, if_generation_match=0)
        except PreconditionFailed:
            return False
        return True
    parent = posixpath.dirname(path)
    if parent and not FileSystems.exists(parent):
        FileSystems.mkdirs(parent)
    try:
        with open(path, "xb") as f:
            f.write(data)
    except FileExistsError:
        return False
    return True


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


class RangeReader(io.RawIOBase):
    """A read-only window [offset, offset+size) of a seekable stream.

    Used to stream a tar member (e.g. an ImageNet per-synset tar inside the
    outer train tar) without copying it out first.
    """

    def __init__(self, raw: BinaryIO, offset: int, size: int):
        self._raw, self._start, self._size, self._pos = raw, offset, size, 0
        raw.seek(offset)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(self._size, base + pos))
        self._raw.seek(self._start + self._pos)
        return self._pos

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        data = self._raw.read(want)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def iter_chunks(f: BinaryIO, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := f.read(chunk_size):
        yield chunk


def make_parent(path: str) -> None:
    """Create a local path's parent folder if missing (GCS has no folders).

    Safe when threads race to create the same folder.
    """
    parent = posixpath.dirname(path)
    if is_remote(path) or not parent or FileSystems.exists(parent):
        return
    try:
        FileSystems.mkdirs(parent)
    except OSError:
        if not FileSystems.exists(parent):
            raise


_COMPOSE_LIMIT = 32  # GCS compose takes at most 32 source objects per call


def concatenate(sources: list[str], destination: str) -> None:
    """Write the files' bytes, in order, as one file.

    gs:// (all in one bucket): server-side compose, in rounds of at most 32
    objects, so no byte passes through this machine. Local: a streamed copy.
    """
    if is_remote(destination):
        _compose(sources, destination)
        return
    with open_write(destination) as out:
        for path in sources:
            with open_read(path) as f:
                for chunk in iter_chunks(f, 8 << 20):
                    out.write(chunk)


def _compose(sources: list[str], destination: str) -> None:
    from google.cloud import storage as gcs

    bucket_name, _, name = destination.removeprefix("gs://").partition("/")
    bucket = gcs.Client().bucket(bucket_name)
    blobs = []
    for path in sources:
        source_bucket, _, source_name = path.removeprefix("gs://").partition("/")
        if source_bucket != bucket_name:
            raise ValueError(f"compose needs one bucket: {path} is not in gs://{bucket_name}")
        blobs.append(bucket.blob(source_name))
    temporaries, round_ = [], 0
    while len(blobs) > _COMPOSE_LIMIT:
        grouped = []
        for start in range(0, len(blobs), _COMPOSE_LIMIT):
            group = blobs[start:start + _COMPOSE_LIMIT]
            joined = bucket.blob(f"{name}.compose-{round_}-{start // _COMPOSE_LIMIT}")
            joined.compose(group)
            temporaries.append(joined)
            grouped.append(joined)
        blobs, round_ = grouped, round_ + 1
    target = bucket.blob(name)
    if blobs:
        target.compose(blobs)
    else:
        target.upload_from_string(b"")
    for blob in temporaries:
        blob.delete()
