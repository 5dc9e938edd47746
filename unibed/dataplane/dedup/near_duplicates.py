"""Exact near-duplicate pairs over 64-bit pHashes, as an Apache Beam PTransform.

`NearDuplicatePairs(radius)` turns a PCollection of (image_key, phash) into
every (key_a, key_b, distance) with key_a < key_b and
popcount(phash_a ^ phash_b) <= radius, each pair once: exactly what brute
force finds. Image keys must be unique; a phash may be given unsigned or as
two's-complement int64.

The scheme (no all-pairs step; no worker holds every hash):

a. Identical hashes: GroupByKey on the value. Each group emits its own pairs
   (distance 0); one distinct value goes on.
b. Multi-index buckets, meeting in the middle: the 64 bits are split into m
   blocks with reach s_i and tolerance t_i = 2 s_i, where sum(t_i + 1) > radius
   (so a pair within the radius has some block i with block distance <= t_i).
   Every distinct value v is emitted under the bucket keys (i, v_i ^ g) for
   each mask g with popcount(g) <= s_i. Two values whose block i differs by D,
   popcount(D) = d <= t_i, then meet in at least one bucket: the canonical one
   is (i, lo_i ^ L), where lo is the smaller value and L the ceil(d/2) lowest
   set bits of D (ceil(d/2) flips from lo, floor(d/2) from the other).
c. GroupByKey on the bucket; inside, the single-process search
   (unibed.dataplane.dedup.hamming_search) finds the bucket's pairs within the radius, and a
   pair is kept only in the bucket where i is its first block within
   tolerance and the key is its canonical key - decided from the two values
   alone, so each pair comes out of exactly one bucket.
d. Value pairs go back to image keys with two CoGroupByKeys (on the first
   value, then on the second), which cross the identical-hash groups.

Skew: a first pass counts bucket sizes (Count.PerElement, combined before the
shuffle). A bucket over `max_bucket_size` values is split into c chunks by a
hash of the value, and each of the c (c + 1) / 2 chunk pairs becomes its own
task key (a chunk against itself, or one chunk against another through
`find_cross_pairs`), so no task holds more than about 2 * max_bucket_size
values; every value of such a bucket is shuffled c times. Identical hashes
never make a bucket hot (they are collapsed in a.); only near-identical
values or a shared block do, and then the work inside a task is the
single-process search, which is itself not quadratic for a shared block.

m and s_i come from `plan_buckets(n, radius)`, a cost model of shuffled
records against pair comparisons, for the number n of distinct hashes
(counted by the pipeline, or given as `plan_for`).

Sizing for 10^8 images (radius 8; the plan is then 3 blocks of 22, 21 and 21
bits with s = 1, t = 2; figures for uniform hashes, measured where marked on
this project's 2-core VM):
- shuffle records per image: 1 for the identical-hash grouping, 67 task
  records per distinct hash (23 + 22 + 22 buckets; about 25 bytes each, so
  some 170 GB in all), 2 for the join back to keys, and 2 per output pair;
  plus the bucket-size counts, combined per worker before their shuffle;
- bucket sizes: a bucket holds the hashes within one flip of its key on its
  block: 23 * 10^8 / 2^22 = 550 (22-bit block) and 22 * 10^8 / 2^21 = 1,050
  (21-bit blocks) on average, in 2^22 + 2 * 2^21 = 8.4 million buckets;
- worker memory: one task at a time, one bucket (about 1,000 hashes, tens of
  KB as Python ints) or one split task (at most about 2 * max_bucket_size
  hashes, a few MB); in the join back, the image keys of one hash value and
  its pairs. Nothing holds all hashes: the count is a combiner and the plan
  depends only on it;
- verification: every pair inside every bucket, sum of B^2 / 2 =
  2^22 * 550^2 / 2 + 2 * 2^21 * 1,050^2 / 2 = 2.9 * 10^12 comparisons: the
  in-bucket search takes 1.5 ms for 550 hashes and 2.6 ms for 1,050
  (measured), about 5 core-hours in all, on top of Beam's own per-record
  costs for the 6.7 * 10^9 shuffled records. Buckets grow linearly with the
  number of images at a fixed plan, so the in-bucket work grows with its
  square until the plan changes (between 4 and 6 * 10^8 distinct hashes the
  cost model switches to 2 blocks of 32 bits, 529 keys each).
"""

from __future__ import annotations

import functools
import math

import apache_beam as beam
import numpy as np

from unibed.dataplane.dedup.hamming_search import (
    VALUE_BITS,
    Block,
    check_radius,
    find_cross_pairs,
    find_pairs,
    first_block_within,
    flip_count,
    flips_of_popcount,
)

DEFAULT_MAX_BUCKET_SIZE = 20_000
_UNSIGNED = (1 << VALUE_BITS) - 1
_CHUNK_HASH = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads values over chunks
# Cost model of the plan: one shuffled record against one pair comparison (ns).
_RECORD_NS = 500.0
_COMPARISON_NS = 5.0


def plan_buckets(n_values: int, radius: int) -> tuple[Block, ...]:
    """Blocks for meet-in-the-middle bucketing; each block's tolerance is twice its reach."""
    check_radius(radius)
    n = max(n_values, 1)
    best, best_cost = (), math.inf
    for m in range(1, min(radius + 1, VALUE_BITS) + 1):
        # At most 63 bits a block, so bucket keys stay int64 (an uncovered bit is fine).
        widths = [min(VALUE_BITS // m + (k < VALUE_BITS % m), 63) for k in range(m)]
        reach_total = max(0, -(-(radius + 1 - m) // 2))  # sum(2 s_i + 1) > radius
        reaches = [reach_total // m + (k < reach_total % m) for k in range(m)]
        records = sum(flip_count(w, s) for w, s in zip(widths, reaches))
        comparisons = sum(
            (flip_count(w, s) * n) ** 2 / 2.0 / 2.0**w for w, s in zip(widths, reaches)
        )
        cost = _RECORD_NS * n * records + _COMPARISON_NS * comparisons
        if cost < best_cost:
            shifts = [sum(widths[:k]) for k in range(m)]
            best = tuple(Block(sh, w, 2 * s) for sh, w, s in zip(shifts, widths, reaches))
            best_cost = cost
    return best


class NearDuplicatePairs(beam.PTransform):
    """(image_key, phash) -> (key_a, key_b, distance), key_a < key_b, distance <= radius."""

    def __init__(
        self,
        radius: int = 8,
        max_bucket_size: int = DEFAULT_MAX_BUCKET_SIZE,
        plan_for: int | None = None,
    ):
        super().__init__()
        check_radius(radius)
        if max_bucket_size < 1:
            raise ValueError(f"max_bucket_size must be positive, got {max_bucket_size}")
        self.radius = radius
        self.max_bucket_size = max_bucket_size
        self.plan_for = plan_for

    def expand(self, images):
        by_value = images | "ByValue" >> beam.Map(lambda kv: (signed_hash(kv[1]), kv[0]))
        groups = by_value | "SameValue" >> beam.GroupByKey()
        identical = groups | "IdenticalPairs" >> beam.FlatMap(_identical_pairs)
        values = groups | "Values" >> beam.Keys()
        if self.plan_for is None:
            n_values = beam.pvalue.AsSingleton(
                values | "CountValues" >> beam.combiners.Count.Globally()
            )
        else:
            n_values = self.plan_for
        hot = (
            values
            | "BucketKeys" >> beam.FlatMap(_buckets_of, n_values, self.radius)
            | "BucketSizes" >> beam.combiners.Count.PerElement()
            | "HotBuckets" >> beam.Filter(lambda kv, limit: kv[1] > limit, self.max_bucket_size)
        )
        # The buckets are derived again here rather than kept from above: waiting for
        # the hot-bucket side input would otherwise materialise every bucket record.
        tasks = values | "Tasks" >> beam.FlatMap(
            _task_records, n_values, self.radius, beam.pvalue.AsDict(hot), self.max_bucket_size
        )
        value_pairs = (
            tasks
            | "ByTask" >> beam.GroupByKey()
            | "Search" >> beam.FlatMap(_task_pairs, n_values, self.radius)
        )
        halves = (
            {
                "keys": by_value,
                "pairs": value_pairs | "ByFirst" >> beam.Map(lambda p: (p[0], p[1:])),
            }
            | "JoinFirst" >> beam.CoGroupByKey()
            | "FirstKeys" >> beam.FlatMap(_first_keys)
        )
        near = (
            {"keys": by_value, "halves": halves}
            | "JoinSecond" >> beam.CoGroupByKey()
            | "KeyPairs" >> beam.FlatMap(_key_pairs)
        )
        return (identical, near) | "AllPairs" >> beam.Flatten()


# ---------------------------------------------------------------- pipeline steps


def signed_hash(phash: int) -> int:
    """The hash as int64 (Beam encodes these deterministically, as group keys must be)."""
    value = phash & _UNSIGNED
    return value - (1 << VALUE_BITS) if value >> (VALUE_BITS - 1) else value


def _identical_pairs(group):
    _, keys = group
    keys = sorted(keys)
    for index, key_a in enumerate(keys):
        for key_b in keys[index + 1 :]:
            yield key_a, key_b, 0


@functools.lru_cache(maxsize=8)
def _bucket_plan(
    n_values: int, radius: int
) -> tuple[tuple[Block, ...], tuple[tuple[int, ...], ...]]:
    """The blocks and, per block, the masks each value is emitted under."""
    blocks = plan_buckets(n_values, radius)
    reaches = tuple(
        tuple(f for k in range(block.tolerance // 2 + 1) for f in flips_of_popcount(block.width, k))
        for block in blocks
    )
    return blocks, reaches


def _buckets_of(value: int, n_values: int, radius: int):
    """The bucket keys (block index, block value within reach) a value is emitted under."""
    blocks, reaches = _bucket_plan(n_values, radius)
    unsigned = value & _UNSIGNED
    for index, (block, masks) in enumerate(zip(blocks, reaches)):
        own = (unsigned >> block.shift) & ((1 << block.width) - 1)
        for mask in masks:
            yield index, own ^ mask


def _task_records(value: int, n_values: int, radius: int, hot: dict, max_bucket_size: int):
    for bucket in _buckets_of(value, n_values, radius):
        for task in _bucket_tasks(bucket, value, hot, max_bucket_size):
            yield task, value


def _chunks_of(values: np.ndarray, n_chunks: int) -> np.ndarray:
    return ((values * np.uint64(_CHUNK_HASH)) >> np.uint64(32)) % np.uint64(n_chunks)


def _bucket_tasks(bucket: tuple, value: int, hot: dict, max_bucket_size: int):
    """A light bucket is one task; a hot one becomes one task per pair of its chunks:
    (block index, key, chunks, chunk a, chunk b), a <= b."""
    size = hot.get(bucket)
    if size is None:
        yield (*bucket, 1, 0, 0)
        return
    n_chunks = -(-size // max_bucket_size)
    own = int(_chunks_of(np.array([value], dtype=np.int64).view(np.uint64), n_chunks)[0])
    for other in range(n_chunks):
        yield (*bucket, n_chunks, min(own, other), max(own, other))


def _task_pairs(task, n_values: int, radius: int):
    """The task's pairs within the radius that belong to its bucket: (value, value, distance)."""
    (index, key, n_chunks, chunk_a, chunk_b), members = task
    members = sorted(members)
    if len(members) < 2:  # most buckets, unless the hashes are dense
        return
    values = np.array(members, dtype=np.int64).view(np.uint64)
    if chunk_a == chunk_b:
        found = find_pairs(values, radius)
        x, y = values[found[:, 0]], values[found[:, 1]]
    else:
        in_a = _chunks_of(values, n_chunks) == chunk_a
        left, right = values[in_a], values[~in_a]
        found = find_cross_pairs(left, right, radius)
        x, y = left[found[:, 0]], right[found[:, 1]]
    blocks, _ = _bucket_plan(n_values, radius)
    here = (first_block_within(x ^ y, list(blocks)) == index) & (
        _meeting_key(x, y, blocks[index]) == key
    )
    x, y = x[here], y[here]
    low, high = np.minimum(x, y).view(np.int64), np.maximum(x, y).view(np.int64)
    yield from zip(low.tolist(), high.tolist(), np.bitwise_count(x ^ y).tolist())


def _meeting_key(x: np.ndarray, y: np.ndarray, block: Block) -> np.ndarray:
    """The canonical bucket key of each pair on the block: the smaller value's block
    value with the ceil(d/2) lowest of the d differing bits flipped."""
    low = block.values_of(np.minimum(x, y))
    differ = block.values_of(x ^ y)
    flips_left = (np.bitwise_count(differ).astype(np.int64) + 1) // 2
    for _ in range(block.tolerance // 2):
        lowest = differ & -differ
        low ^= np.where(flips_left > 0, lowest, 0)
        differ ^= lowest
        flips_left -= 1
    return low


def _first_keys(joined):
    """For each pair (a, b, d) of the value a: (b, (key of a, d)) for every key of a."""
    _, grouped = joined
    for other, distance in grouped["pairs"]:
        for key in grouped["keys"]:
            yield other, (key, distance)


def _key_pairs(joined):
    _, grouped = joined
    for key_a, distance in grouped["halves"]:
        for key_b in grouped["keys"]:
            yield min(key_a, key_b), max(key_a, key_b), distance
