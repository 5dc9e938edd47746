"""Deterministic shard layout and shard writing.

Every record gets a shuffle key, sha256(salt + "\\0" + image key): the
global shuffle order is ascending shuffle key. A record's shard is the key's
first 8 bytes modulo the shard count, so assignment needs no global sort;
inside a shard records are written in shuffle-key order. Same records + same
salt + same count => byte-identical shards, whatever order they arrive in.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

from unibed.dataplane import storage
from unibed.dataplane.records.framing import frame
from unibed.schemas.manifest import ALL_SPLITS, ShardInfo
from unibed.schemas.recipe import ShardSpec


def shuffle_key(image_key: str, salt: str) -> bytes:
    return hashlib.sha256(f"{salt}\0{image_key}".encode()).digest()


def num_shards(total_bytes: int, num_records: int, spec: ShardSpec) -> int:
    """How many shards a split of `num_records` records and `total_bytes` bytes gets.

    The rule: enough shards of about `spec.target_bytes` each (at least 1),
    rounded up to a multiple of `spec.count_multiple` so that every TPU host
    reads the same number of files. Never more shards than records: the count
    is capped at the largest multiple not above `num_records`, and a split
    with fewer records than the multiple gets `num_records` shards (at least 1,
    so an empty split is still one, empty, file).
    """
    multiple = spec.count_multiple
    if num_records < multiple:
        return max(1, num_records)
    wanted = max(1, math.ceil(total_bytes / spec.target_bytes))
    rounded_up = math.ceil(wanted / multiple) * multiple
    return min(rounded_up, num_records // multiple * multiple)


def shard_index(image_key: str, salt: str, count: int) -> int:
    return int.from_bytes(shuffle_key(image_key, salt)[:8], "big") % count


def shard_name(split: str, index: int, count: int) -> str:
    """`train-00000-of-00008.tfrecord` (the names unibed.schemas.manifest accepts)."""
    if split not in ALL_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {ALL_SPLITS}")
    if not 0 <= index < count <= 99_999:
        raise ValueError(f"shard {index} of {count} is not a valid shard number")
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def write_shard(
    output_dir: str,
    split: str,
    index: int,
    count: int,
    records: Iterable[tuple[bytes, bytes]],
) -> ShardInfo:
    """Write one shard from (shuffle key, serialized Example) pairs; return its manifest entry.

    Records are written in shuffle-key order (ties, which sha256 makes
    impossible in practice, by content), so the bytes do not depend on the
    order the records arrive in. Call it for every index, even with no
    records: the manifest lists all `count` shards.
    """
    return write_ordered_shard(output_dir, split, index, count, (e for _, e in sorted(records)))


def write_ordered_shard(
    output_dir: str, split: str, index: int, count: int, examples: Iterable[bytes]
) -> ShardInfo:
    """Write one shard from serialized Examples already in shuffle-key order,
    streaming them (write_shard sorts first)."""
    name = shard_name(split, index, count)
    digest = hashlib.sha256()
    num_records = num_bytes = 0
    with storage.open_write(storage.join(output_dir, name)) as f:
        for example in examples:
            framed = frame(example)
            f.write(framed)
            digest.update(framed)
            num_records += 1
            num_bytes += len(framed)
    return ShardInfo(
        path=name, num_records=num_records, num_bytes=num_bytes, sha256=digest.hexdigest()
    )
