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
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from unibed.dataplane.dedup.probe_search import (
    block_keys,
    check_probe_radius,
    find_probe_pairs,
    first_equal_block,
)
from unibed.dataplane.images.robust_hashes import Rule

_TARGET, _PROBE = 0, 1


class ProbePairs(beam.PTransform):
    """(image_key, ((kind, hash), ...)) -> (key_a, key_b, distance, probe kind), key_a < key_b."""

    def __init__(self, rules: tuple[Rule, ...]):
        super().__init__()
        for rule in rules:
            check_probe_radius(rule.radius)
        self.rules = tuple(sorted(set(rules)))

    def expand(self, images):
        return (
            images
            | "ProbeBuckets" >> beam.FlatMap(bucket_records, self.rules)
            | "ByProbeBucket" >> beam.GroupByKey()
            | "ProbeSearch" >> beam.FlatMap(bucket_pairs, self.rules)
        )


def bucket_records(image, rules: tuple[Rule, ...]):
    """((target kind, radius, block, block value), (role, key, hash, kind)) per hash and
    bucket: a hash is a target where its kind is a rule's target, else a probe."""
    key, hashes = image
    for target, radius in sorted({(r.target, r.radius) for r in rules}):
        probe_kinds = {r.probe for r in rules if (r.target, r.radius) == (target, radius)}
        for kind, value in hashes:
            if kind == target:
                role = _TARGET
            elif kind in probe_kinds:
                role = _PROBE
            else:
                continue
            for block, block_value in block_keys(value, radius):
                yield (target, radius, block, block_value), (role, key, value, kind)


def bucket_pairs(bucket, rules: tuple[Rule, ...]):
    (target, radius, block, _), records = bucket
    records = sorted(records)
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
