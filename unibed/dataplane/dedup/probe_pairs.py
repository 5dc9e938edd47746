"""Near-duplicate pairs through probe hashes, as an Apache Beam PTransform.

`ProbePairs(rules)` turns (image_key, ((kind, hash), ...)) into every
(key_a, key_b, distance, kind), key_a < key_b, such that a hash of kind `rule.probe` of
one image lies within `rule.radius` of a hash of kind `rule.target` of the other (for a
rule whose probe and target kinds are the same: of the two images' hashes of that kind):
exactly the pairs brute force over the hashes finds. `kind` is the probe's kind.

Every hash goes under radius + 1 bucket keys (target kind, radius, block, block value)
(unibed.dataplane.dedup.probe_search); a bucket compares its probes with its targets and
keeps a pair only if the bucket's block is the first on which the two values agree, so
each hash pair comes out of one bucket. Buckets hold the hashes that share 21-22 bits:
about n * hashes per image / 2^21 of them (5 for 10^6 images), so no chunking; a hot
bucket (many images sharing a block) costs the product of its sizes in one task.

Memory: every image sends (hashes) x (radius + 1) records through this shuffle (about 27
with the default probes), and up to some 10^6 images most buckets hold one record, so the
local runner's grouping table holds one key, one list and one value per record. Both key
and value are therefore packed into one bytes object each (`_bucket_key`, `_pack`), not
tuples of str and int: about 100 bytes less per record than the tuples, i.e. some 3 KB
less per image at the peak of a local build (the peak of the whole build is this grouping;
README's figures table). The pairs are the same: a bucket unpacks its records into the
tuples it sorted before.

And while 2^21 block values per block would leave most buckets with one record (fewer
than some 3 * 10^7 images), a bucket key drops the block value's low bits
(`coarse_shift`, from the count of images): some IMAGES_PER_BUCKET images' hashes per
bucket, so that the grouping holds a key and a list per few dozen records, not per
record. A bucket's search is exact over whatever it holds (find_probe_pairs) and keeps a
pair only where the bucket's block is the pair's first agreeing block: both values lie in
that block's one bucket, so every pair still comes out once, the same pairs as before.

A bucket's records meet through a combine (JoinRecords), not a GroupByKey: they are
joined into one buffer per bucket as they arrive, so the grouping holds one object per
bucket, not per record, and Beam lifts the joining ahead of the shuffle on Dataflow.
"""

from __future__ import annotations

import functools
import struct
from typing import NamedTuple

import apache_beam as beam
import numpy as np

from unibed.dataplane.dedup.probe_search import (
    blocks_for,
    check_probe_radius,
    find_probe_pairs,
    first_equal_block,
)
from unibed.dataplane.images.robust_hashes import Rule

_TARGET, _PROBE = 0, 1
_UNSIGNED = (1 << 64) - 1
# Images per bucket and block, about, below 2^21 * this many images (`coarse_shift`).
IMAGES_PER_BUCKET = 16


class ProbePairs(beam.PTransform):
    """(image_key, ((kind, hash), ...)) -> (key_a, key_b, distance, probe kind), key_a < key_b.
    A hash is a 64-bit value, unsigned or as int64 (which Beam encodes without pickling)."""

    def __init__(self, rules: tuple[Rule, ...]):
        super().__init__()
        for rule in rules:
            check_probe_radius(rule.radius)
        self.rules = tuple(sorted(set(rules)))

    def expand(self, images):
        count = images | "CountImages" >> beam.combiners.Count.Globally()
        return (
            images
            | "ProbeBuckets"
            >> beam.FlatMap(bucket_records, self.rules, beam.pvalue.AsSingleton(count))
            | "ByProbeBucket" >> beam.CombinePerKey(JoinRecords())
            | "ProbeSearch" >> beam.FlatMap(bucket_pairs, self.rules)
        )


def kinds_of(rules: tuple[Rule, ...]) -> tuple[str, ...]:
    """Every kind the rules name, in a fixed order: a packed record's kind is its index."""
    return tuple(sorted({r.probe for r in rules} | {r.target for r in rules}))


def coarse_shift(width: int, images: int | None) -> int:
    """How many low bits of a `width`-bit block value a bucket key leaves out, for
    `images` images: about images / IMAGES_PER_BUCKET buckets per block (0 from some
    2^21 * IMAGES_PER_BUCKET images on: one block value per bucket; None: not known, 0)."""
    if images is None:
        return 0
    buckets = max(1, images // IMAGES_PER_BUCKET)
    return max(0, width - buckets.bit_length())


def bucket_records(image, rules: tuple[Rule, ...], images: int | None = None):
    """(bucket, record) per hash and bucket: the bucket is (target kind, radius, block,
    block value without its `coarse_shift` low bits) and the record (role, key, hash,
    kind), both packed into bytes (`_bucket_key`, `_pack`); a hash is a target where its
    kind is a rule's target, else a probe. `images`: how many images take part."""
    key, hashes = image
    encoded_key = key.encode("utf-8")
    for group in _bucket_plan(rules, images):
        for kind, value in hashes:
            role = group.roles.get(kind)
            if role is None:
                continue
            value &= _UNSIGNED  # an int64 hash as its unsigned twin: the same 64 bits
            record = _pack(role, encoded_key, value, group.kind_indexes[kind])
            for block, shift, mask, coarse in group.blocks:
                yield _bucket_key(group.target_index, group.radius, block, ((value >> shift) & mask) >> coarse), record


class _BucketGroup(NamedTuple):
    """The buckets of one (target kind, radius): who goes in as what, under which blocks."""

    target_index: int
    radius: int
    roles: dict  # kind -> _TARGET or _PROBE
    kind_indexes: dict  # kind -> its index in kinds_of(rules)
    blocks: tuple  # (block index, shift, mask, coarse shift) per block


@functools.lru_cache(maxsize=64)
def _bucket_plan(rules: tuple[Rule, ...], images: int | None) -> tuple[_BucketGroup, ...]:
    """bucket_records' per-image loop, worked out once per rules and image count."""
    kinds = kinds_of(rules)
    groups = []
    for target, radius in sorted({(r.target, r.radius) for r in rules}):
        probes = {r.probe for r in rules if (r.target, r.radius) == (target, radius)}
        roles = {kind: _TARGET if kind == target else _PROBE for kind in probes | {target}}
        blocks = tuple((i, b.shift, (1 << b.width) - 1, coarse_shift(b.width, images))
                       for i, b in enumerate(blocks_for(radius)))
        groups.append(_BucketGroup(kinds.index(target), radius, roles,
                                   {kind: kinds.index(kind) for kind in roles}, blocks))
    return tuple(groups)


class JoinRecords(beam.CombineFn):
    """A bucket's packed records as one bytes object, each after its 4-byte length.

    Grouped, every record would be an object of its own in the runner's grouping
    table (~80 bytes for ~35 of data, 27 per image); combined, a bucket holds one
    buffer per bundle that fed it, and on Dataflow the records cross the shuffle
    already joined (combiner lifting). A bucket's search sorts its records, so the
    order they were joined in does not matter."""

    def create_accumulator(self) -> bytearray:
        return bytearray()

    def add_input(self, joined: bytearray, record: bytes) -> bytearray:
        joined += _LENGTH.pack(len(record))
        joined += record
        return joined

    def merge_accumulators(self, accumulators) -> bytearray:
        merged = bytearray()
        for joined in accumulators:
            merged += joined
        return merged

    def extract_output(self, joined: bytearray) -> bytes:
        return bytes(joined)


def split_records(joined: bytes) -> list[bytes]:
    """JoinRecords' output back to its records."""
    records, at = [], 0
    while at < len(joined):
        (length,) = _LENGTH.unpack_from(joined, at)
        records.append(joined[at + _LENGTH.size : at + _LENGTH.size + length])
        at += _LENGTH.size + length
    return records


def _bucket_key(target_index: int, radius: int, block: int, block_value: int) -> bytes:
    """(target kind, radius, block, block value) as 11 bytes (a block value has at most 64 bits)."""
    return _BUCKET.pack(target_index, radius, block, block_value)


def _pack(role: int, encoded_key: bytes, value: int, kind_index: int) -> bytes:
    """(role, key, hash, kind) as bytes: role, kind index, the hash's 8 bytes, then the key."""
    return bytes((role, kind_index)) + value.to_bytes(8, "big") + encoded_key


def _unpack(record: bytes, kinds: tuple[str, ...]) -> tuple:
    """`_pack`'s bytes back to (role, key, hash, kind)."""
    return record[0], record[10:].decode("utf-8"), int.from_bytes(record[2:10], "big"), kinds[record[1]]


_BUCKET = struct.Struct(">BBBQ")
_LENGTH = struct.Struct(">I")  # a record: 10 bytes and an image key, of any length


def bucket_pairs(bucket, rules: tuple[Rule, ...]):
    packed_bucket, joined = bucket
    target_index, radius, block, _ = _BUCKET.unpack(packed_bucket)
    kinds = kinds_of(rules)
    target = kinds[target_index]
    records = sorted(_unpack(r, kinds) for r in split_records(joined))
    targets = [r for r in records if r[0] == _TARGET]
    probes = [r for r in records if r[0] == _PROBE]
    if targets and probes:
        yield from _pairs(probes, targets, radius, block)
    if Rule(target, target, radius) in rules and len(targets) > 1:
        yield from _pairs(targets, targets, radius, block)


def _pairs(probes: list, targets: list, radius: int, block: int):
    """(key_a, key_b, distance, probe kind) for the bucket's pairs within the radius whose
    first agreeing block is this one; a pair found from both sides of a self rule once."""
    left = np.array([r[2] for r in probes], dtype=np.uint64)
    right = np.array([r[2] for r in targets], dtype=np.uint64)
    found = find_probe_pairs(left, right, radius)
    here = first_equal_block(left[found[:, 0]] ^ right[found[:, 1]], radius) == block
    for i, j, distance in found[here].tolist():
        key_a, key_b = probes[i][1], targets[j][1]
        if key_a == key_b or (probes is targets and key_a > key_b):
            continue
        yield min(key_a, key_b), max(key_a, key_b), distance, probes[i][3]
