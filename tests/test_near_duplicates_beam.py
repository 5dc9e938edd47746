"""The Beam near-duplicate transform returns exactly the brute-force pairs, once each."""

from __future__ import annotations

import itertools
import typing

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from unibed.dataplane.dedup.hamming_search import brute_force_pairs, first_block_within
from unibed.dataplane.dedup.near_duplicates import (
    NearDuplicatePairs,
    _bucket_tasks,
    _meeting_key,
    plan_buckets,
    signed_hash,
)
from unibed.dataplane.dedup.probe_pairs import ProbePairs
from unibed.dataplane.dedup.probe_search import brute_force_probe_pairs, find_probe_pairs
from unibed.dataplane.images.robust_hashes import Rule


def sample_hashes(n: int = 400, seed: int = 3) -> np.ndarray:
    """Random hashes, clusters a few flips apart, and a group of identical hashes."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**64, 20, dtype=np.uint64)
    hashes = centres[rng.integers(0, len(centres), n)]
    for _ in range(3):
        hit = rng.random(n) < 0.6
        hashes[hit] ^= np.uint64(1) << rng.integers(0, 64, hit.sum()).astype(np.uint64)
    hashes[:150] = rng.integers(0, 2**64, 150, dtype=np.uint64)
    hashes[150:170] = hashes[150]
    hashes[170] = 0
    hashes[171] = 2**64 - 1
    return hashes


def expected_pairs(keys: list[str], hashes: np.ndarray, radius: int) -> list[tuple]:
    return [
        (min(keys[i], keys[j]), max(keys[i], keys[j]), int(np.bitwise_count(hashes[i] ^ hashes[j])))
        for i, j in brute_force_pairs(hashes, radius)
    ]


def test_transform_matches_brute_force():
    hashes = sample_hashes()
    keys = [f"src/img{i:04d}" for i in range(len(hashes))][::-1]
    signed = [(key, int(value)) for key, value in zip(keys, hashes.view(np.int64))]
    configurations = {
        # label: (radius, max bucket size, plan for this many hashes)
        "counted": (8, 20_000, None),
        "counted_split": (4, 3, None),
        "planned_1e8": (8, 20_000, 10**8),  # 3 blocks of 21-22 bits, meeting 1 flip apart
        "planned_1e8_split": (8, 4, 10**8),
        "planned_1e8_r4_split": (4, 4, 10**8),
    }
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        as_signed = pipeline | beam.Create(signed)
        # Unsigned values above 2^63 must not meet an int coder: keep this PCollection untyped.
        as_unsigned = as_signed | "Unsigned" >> beam.Map(
            lambda kv: (kv[0], kv[1] % 2**64)
        ).with_output_types(typing.Any)
        for label, (radius, limit, plan_for) in configurations.items():
            images = as_signed if label == "counted" else as_unsigned
            pairs = images | label >> NearDuplicatePairs(radius, limit, plan_for)
            assert_that(
                pairs, equal_to(expected_pairs(keys, hashes, radius)), label=f"check_{label}"
            )


def test_empty_input():
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        pairs = (
            pipeline | beam.Create([("a", 1)]) | beam.Filter(lambda _: False) | NearDuplicatePairs()
        )
        assert_that(pairs, equal_to([]))


@pytest.mark.parametrize("radius", [0, 1, 4, 8, 10, 12, 32])
@pytest.mark.parametrize("n_values", [1, 300, 10**6, 10**8])
def test_plan_covers_every_pair(n_values, radius):
    blocks = plan_buckets(n_values, radius)
    assert sum(block.tolerance + 1 for block in blocks) > radius
    assert all(block.tolerance % 2 == 0 and block.width <= 63 for block in blocks)
    bits = [bit for block in blocks for bit in range(block.shift, block.shift + block.width)]
    assert len(bits) == len(set(bits)) and max(bits) < 64


def test_plan_for_10_8_images():
    blocks = plan_buckets(10**8, 8)
    assert [(b.width, b.tolerance) for b in blocks] == [(22, 2), (21, 2), (21, 2)]


def test_pairs_meet_in_their_canonical_bucket():
    """The canonical key is within reach (tolerance / 2 flips) of both values."""
    rng = np.random.default_rng(0)
    block = plan_buckets(10**8, 8)[1]
    x = rng.integers(0, 2**64, 5000, dtype=np.uint64)
    flips = rng.integers(0, block.tolerance + 1, len(x))
    y = x.copy()
    for round_ in range(block.tolerance):
        bit = rng.integers(block.shift, block.shift + block.width, len(x)).astype(np.uint64)
        y[flips > round_] ^= np.uint64(1) << bit[flips > round_]
    key = _meeting_key(x, y, block)
    assert np.array_equal(key, _meeting_key(y, x, block))
    reach = block.tolerance // 2
    assert (np.bitwise_count(key ^ block.values_of(x)) <= reach).all()
    assert (np.bitwise_count(key ^ block.values_of(y)) <= reach).all()
    assert (first_block_within(x ^ y, [block]) == 0).all()


def test_hot_bucket_splits_into_every_pair_of_chunks():
    bucket = (1, 12345)
    values = list(range(-50, 50))
    tasks: dict[tuple, list[int]] = {}
    for value in values:
        for task in _bucket_tasks(bucket, value, {bucket: 100}, 30):
            tasks.setdefault(task, []).append(value)
    assert {task[2] for task in tasks} == {4}  # ceil(100 / 30) chunks
    assert {task[3:] for task in tasks} == set(itertools.combinations_with_replacement(range(4), 2))
    covered = set()
    for members in tasks.values():
        covered |= {frozenset(pair) for pair in itertools.combinations(members, 2)}
    assert len(covered) == len(values) * (len(values) - 1) // 2
    assert max(len(members) for members in tasks.values()) < 100


# ---------------------------------------------------------------- probe hashes


def probe_images(n: int = 160, seed: int = 5) -> list[tuple[str, tuple]]:
    """Images with a pHash ("near") and probes ("mirror", "top85"), many of them within a
    few bits of another image's pHash or top85 probe, some sharing blocks exactly."""
    rng = np.random.default_rng(seed)
    identity = rng.integers(0, 2**64, n, dtype=np.uint64)
    mirror = identity[rng.integers(0, n, n)]
    top = rng.integers(0, 2**64, 30, dtype=np.uint64)[rng.integers(0, 30, n)]
    for values in (mirror, top):
        for _ in range(3):
            hit = rng.random(n) < 0.5
            values[hit] ^= np.uint64(1) << rng.integers(0, 64, hit.sum()).astype(np.uint64)
    mirror[:50] = rng.integers(0, 2**64, 50, dtype=np.uint64)
    mirror[50] = identity[50]  # an image whose mirror is itself: no pair with itself
    images = []
    for i in range(n):
        hashes = (("near", int(identity[i])), ("mirror", int(mirror[i])), ("top85", int(top[i])))
        images.append((f"src/img{i:04d}", hashes if i % 7 else hashes[:2]))  # some lack top85
    return images


def brute_force_probe_rule_pairs(images, rules) -> list[tuple]:
    """Every image pair and kind within a rule, by comparing every hash pair."""
    found = set()
    for (key_a, hashes_a), (key_b, hashes_b) in itertools.permutations(images, 2):
        a, b = dict(hashes_a), dict(hashes_b)
        for probe, target, radius in rules:
            if probe in a and target in b and (a[probe] ^ b[target]).bit_count() <= radius:
                distance = (a[probe] ^ b[target]).bit_count()
                found.add((min(key_a, key_b), max(key_a, key_b), distance, probe))
    return sorted(found)


@pytest.mark.parametrize("as_int64", [False, True])
def test_probe_pairs_transform_matches_brute_force(as_int64):
    """The Beam probe search finds exactly the hash pairs within each rule's radius, each
    once (a self rule's pair from one side), and never pairs an image with itself; the
    same pairs whether the hashes come unsigned or as int64 (what the build passes: Beam
    pickles larger ints)."""
    images = probe_images()
    rules = (Rule("mirror", "near", 2), Rule("mirror", "near", 4), Rule("top85", "top85", 3))
    expected = brute_force_probe_rule_pairs(images, rules)
    assert len(expected) > 100
    assert {kind for *_, kind in expected} == {"mirror", "top85"}
    if as_int64:
        images = [(key, tuple((kind, signed_hash(value)) for kind, value in hashes)) for key, hashes in images]
        assert any(value < 0 for _, hashes in images for _, value in hashes)
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        pairs = pipeline | beam.Create(images) | ProbePairs(rules)
        assert_that(pairs | beam.Distinct(), equal_to(expected), label="pairs")
        assert_that(pairs | beam.combiners.Count.Globally(), equal_to([len(expected) + sum(
            1 for p in expected if p[3] == "mirror" and p[2] <= 2)]), label="each_once_per_rule")


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 4])
def test_find_probe_pairs_is_brute_force(radius):
    rng = np.random.default_rng(radius)
    targets = rng.integers(0, 2**64, 2000, dtype=np.uint64)
    probes = targets[rng.integers(0, 2000, 1500)]
    for _ in range(3):
        hit = rng.random(1500) < 0.6
        probes[hit] ^= np.uint64(1) << rng.integers(0, 64, hit.sum()).astype(np.uint64)
    found = find_probe_pairs(probes, targets, radius)
    assert np.array_equal(found, brute_force_probe_pairs(probes, targets, radius))
    assert len(found) > 100
