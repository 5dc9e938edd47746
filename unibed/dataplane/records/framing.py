"""TFRecord file framing without TensorFlow.

Each record is: uint64 length, masked crc32c of the length, the data,
masked crc32c of the data (little-endian). Working on bytes and streams
lets shards be written through unibed.dataplane.storage (local or gs://) with our own
deterministic shard assignment.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import crc32c


def _masked_crc(data: bytes) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    length = struct.pack("<Q", len(record))
    return b"".join(
        (length, struct.pack("<I", _masked_crc(length)), record, struct.pack("<I", _masked_crc(record)))
    )


def iter_records(f: BinaryIO, where: str = "<stream>") -> Iterator[bytes]:
    """Yield the records of a TFRecord stream, checking both checksums of each."""
    index = 0
    while header := f.read(12):
        if len(header) != 12:
            raise OSError(f"{where}: record {index}: truncated header")
        (length,) = struct.unpack("<Q", header[:8])
        if struct.unpack("<I", header[8:])[0] != _masked_crc(header[:8]):
            raise OSError(f"{where}: record {index}: length checksum mismatch")
        data, footer = f.read(length), f.read(4)
        if len(data) != length or len(footer) != 4:
            raise OSError(f"{where}: record {index}: truncated data")
        if struct.unpack("<I", footer)[0] != _masked_crc(data):
            raise OSError(f"{where}: record {index}: data checksum mismatch")
        yield data
        index += 1
