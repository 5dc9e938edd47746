"""The single-process Hamming search returns exactly the brute-force pairs."""

from __future__ import annotations

import numpy as np
import pytest

from unibed.dataplane.dedup import hamming_search
from unibed.dataplane.dedup.hamming_search import (
    Block,
    brute_force_pairs,
    find_cross_pairs,
    find_pairs,
    first_block_within,
    permute_bits,
)

RADII = [0, 1, 4, 8, 12]


def uniform(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64, n, dtype=np.uint64)


def with_flips(values: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    """Each value with 0..most random bits flipped (a bit may flip back)."""
    values = values.copy()
    flips = rng.integers(0, most + 1, len(values))
    for round_ in range(most):
        hit = flips > round_
        bits = rng.integers(0, 64, hit.sum()).astype(np.uint64)
        values[hit] ^= np.uint64(1) << bits
    return values


def clustered(n: int, seed: int, cluster_size: int = 30, most_flips: int = 4) -> np.ndarray:
    """Cluster centres with members a few flips away; some members exact copies."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**64, max(1, n // cluster_size), dtype=np.uint64)
    return with_flips(centres[rng.integers(0, len(centres), n)], most_flips, rng)


def skewed(n: int, seed: int) -> np.ndarray:
    """Random and clustered hashes, one huge group of identical hashes, and a hot block:
    many hashes sharing bits 0..21 (up to one flip) but random elsewhere."""
    rng = np.random.default_rng(seed)
    parts = [uniform(n // 4, seed), clustered(n // 4, seed + 1)]
    parts.append(np.full(n // 8, rng.integers(0, 2**64, dtype=np.uint64), dtype=np.uint64))
    shared = np.uint64(rng.integers(0, 1 << 22))
    hot = (uniform(n - sum(map(len, parts)), seed + 2) & ~np.uint64((1 << 22) - 1)) | shared
    flipped = rng.random(len(hot)) < 0.5
    hot[flipped] ^= np.uint64(1) << rng.integers(0, 22, flipped.sum()).astype(np.uint64)
    parts.append(hot)
    return rng.permutation(np.concatenate(parts))


def assert_exact(hashes: np.ndarray, radius: int) -> np.ndarray:
    found = find_pairs(hashes, radius)
    expected = brute_force_pairs(hashes, radius)
    assert found.dtype == np.int64 and found.shape == expected.shape
    np.testing.assert_array_equal(found, expected)
    return found


@pytest.mark.parametrize("radius", RADII)
@pytest.mark.parametrize("n", [2, 17, 300, 2000, 5000])
def test_uniform_hashes(n, radius):
    assert_exact(uniform(n, seed=n), radius)


@pytest.mark.parametrize("radius", RADII)
@pytest.mark.parametrize("n", [500, 5000])
def test_clustered_hashes(n, radius):
    assert_exact(clustered(n, seed=n), radius)


@pytest.mark.parametrize("radius", [0, 4, 8, 12])
def test_skewed_hashes(radius):
    found = assert_exact(skewed(5000, seed=7), radius)
    assert len(found) >= 625 * 624 // 2  # the identical group alone


def test_hot_buckets_take_the_sub_problem_path(monkeypatch):
    """Clusters of about 100 near-identical hashes make hot buckets on both sides."""
    calls = []
    original = hamming_search._BlockSearch._hot_pairs

    def spy(self, *args):
        calls.append(self.mono)
        return original(self, *args)

    monkeypatch.setattr(hamming_search._BlockSearch, "_hot_pairs", spy)
    hashes = clustered(8000, seed=3, cluster_size=100, most_flips=3)
    left, right = hashes[:4000], hashes[4000:]
    for radius in [4, 8]:
        assert_exact(left, radius)
        i, j = np.nonzero(np.bitwise_count(left[:, None] ^ right[None, :]) <= radius)
        found = find_cross_pairs(left, right, radius)
        np.testing.assert_array_equal(found, np.stack([i, j], axis=1))
    assert True in calls and False in calls


def test_crowded_buckets_read_every_plane_and_the_offsets(monkeypatch):
    """Buckets of 3-31 residents (below the hot size): residents 2k, 2k+1 come from
    plane k, those past the last plane from the offsets; pairs exactly brute force's."""
    planes, overflowing = [], []
    original_build = hamming_search._Table.build.__func__
    original_range = hamming_search._BlockSearch._range_near

    def spy_build(cls, *args):
        table = original_build(cls, *args)
        planes.append(len(table.planes))
        return table

    def spy_range(self, ltable, rtable, lpos, first, count):
        overflowing.append(len(lpos))
        return original_range(self, ltable, rtable, lpos, first, count)

    monkeypatch.setattr(hamming_search._Table, "build", classmethod(spy_build))
    monkeypatch.setattr(hamming_search._BlockSearch, "_range_near", spy_range)
    monkeypatch.setattr(hamming_search, "_MAX_PLANES", 3)  # 6 residents per bucket in planes
    hashes = clustered(6000, seed=11, cluster_size=12, most_flips=6)
    for radius in [4, 8]:
        assert_exact(hashes, radius)
        assert_exact(np.concatenate([hashes[:3000], uniform(3000, seed=radius)]), radius)
    assert max(planes) == 3 and sum(overflowing) > 0


def test_edge_values():
    edges = np.array([0, 2**64 - 1, 1, 2**63, 2**64 - 2, 0, 2**64 - 1], dtype=np.uint64)
    for radius in [0, 1, 2, 32, 63, 64]:
        assert_exact(np.concatenate([edges, uniform(200, seed=radius)]), radius)
    assert find_pairs(edges, 64).shape == (21, 2)


@pytest.mark.parametrize("n", [0, 1])
def test_too_few_hashes(n):
    assert find_pairs(uniform(n, seed=1), 8).shape == (0, 2)


def test_output_is_sorted_and_deterministic():
    hashes = skewed(3000, seed=11)
    first = find_pairs(hashes, 8)
    assert np.array_equal(first, find_pairs(hashes.copy(), 8))
    assert (first[:, 0] < first[:, 1]).all()
    order = np.lexsort((first[:, 1], first[:, 0]))
    assert np.array_equal(order, np.arange(len(first)))


def test_accepts_python_ints():
    hashes = [0, 2**64 - 1, 3, 2**64 - 4]
    assert find_pairs(hashes, 2).tolist() == [[0, 2], [1, 3]]


@pytest.mark.parametrize("radius", [0, 3, 8])
def test_cross_pairs(radius):
    left = clustered(800, seed=5)
    right = np.concatenate([clustered(500, seed=6), left[:100]])
    i, j = np.nonzero(np.bitwise_count(left[:, None] ^ right[None, :]) <= radius)
    np.testing.assert_array_equal(find_cross_pairs(left, right, radius), np.stack([i, j], axis=1))


@pytest.mark.parametrize("radius", [-1, 65])
def test_radius_out_of_range(radius):
    with pytest.raises(ValueError, match="radius"):
        find_pairs(uniform(3, seed=0), radius)


def test_first_block_within():
    blocks = [Block(0, 8, 1), Block(8, 8, 0), Block(16, 48, 2)]
    xor = np.array([0, 0b11, 0b11 | 1 << 20, 0b11 | 1 << 8 | 0b111 << 16], dtype=np.uint64)
    assert first_block_within(xor, blocks).tolist() == [0, 1, 1, 3]


def test_permute_bits_moves_each_bit():
    values = uniform(100, seed=2)
    order = tuple(np.random.default_rng(0).permutation(64).tolist())
    moved = permute_bits(values, order)
    for position, source in enumerate(order):
        np.testing.assert_array_equal((moved >> np.uint64(position)) & np.uint64(1),
                                      (values >> np.uint64(source)) & np.uint64(1))  # fmt: skip
    assert np.array_equal(np.bitwise_count(moved), np.bitwise_count(values))
