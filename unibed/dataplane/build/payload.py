"""Work files that hold the serialized Examples, so image bytes never cross a shuffle.

Preprocess appends each image's serialized tf.train.Example to its bundle's
work file (`_work/payload/<uuid>.bin`, local or gs://) and passes on only a
PayloadRef (file, offset, length); dedup, the split join and the shard
grouping move those small references. The shard writer reads the bytes back
in its deterministic order (read_in_order), so a build's memory grows with
its metadata, not with its images.

A retried bundle writes a new file under a new name; the failed attempt's
file is an orphan no element refers to. The whole `_work` folder is deleted
before a Beam attempt starts over and when the output is published (output.py).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from unibed.dataplane import storage

PAYLOAD_FOLDER = "payload"  # in the work folder
# Read back at most this much at a time. The batch exists so that ranged GETs
# on gs:// can span many Examples (a GET's latency buys ~3 MB); local reads
# need none, and a local build's memory then holds 1 MB, not 16, per shard write.
BATCH_BYTES = 16 * 1024 * 1024
LOCAL_BATCH_BYTES = 1024 * 1024


# Where one serialized Example lies in a work file: (file, offset, length), the file by its
# name in the work folder's payload folder (short: it is in every reference). A plain
# tuple, which Beam encodes natively: a NamedTuple would be pickled each time it crosses
# a stage (5 times per image).
PayloadRef = tuple[str, int, int]


class PayloadWriter:
    """Appends payloads to one new work file (created on the first append)."""

    def __init__(self, work: str):
        self._name = f"{uuid.uuid4().hex}.bin"
        self._path = storage.join(work, PAYLOAD_FOLDER, self._name)
        self._file: BinaryIO | None = None
        self._offset = 0

    def append(self, data: bytes) -> PayloadRef:
        if self._file is None:
            self._file = storage.open_write(self._path)
        self._file.write(data)
        ref = (self._name, self._offset, len(data))
        self._offset += len(data)
        return ref

    def close(self) -> None:
        """Durable after this: local, closed; gs://, the upload finalised."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_in_order(
    work: str, refs: Iterable[PayloadRef], batch_bytes: int | None = None
) -> Iterator[bytes]:
    """The payloads of `refs` (written under `work`), in the order given, holding at most ~batch_bytes
    at a time (BATCH_BYTES on gs://, LOCAL_BATCH_BYTES locally); each batch is read file by
    file in offset order (one open per file and batch, ranged reads on gs://)."""
    if batch_bytes is None:
        batch_bytes = BATCH_BYTES if storage.is_remote(work) else LOCAL_BATCH_BYTES
    batch: list[PayloadRef] = []
    held = 0
    for ref in refs:
        batch.append(ref)
        held += ref[2]
        if held >= batch_bytes:
            yield from _read_batch(work, batch)
            batch, held = [], 0
    yield from _read_batch(work, batch)


def _read_batch(work: str, refs: list[PayloadRef]) -> list[bytes]:
    by_file: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for position, (name, offset, length) in enumerate(refs):
        by_file[name].append((offset, length, position))
    out: list[bytes] = [b""] * len(refs)
    for name, wanted in by_file.items():
        wanted.sort()
        ranges = [(offset, length) for offset, length, _ in wanted]
        path = storage.join(work, PAYLOAD_FOLDER, name)
        for (_, _, position), data in zip(wanted, storage.read_ranges(path, ranges), strict=True):
            out[position] = data
    return out
