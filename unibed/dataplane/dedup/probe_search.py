"""Exact small-radius search between probe hashes and the hashes they target.

A rule (unibed.dataplane.images.robust_hashes.Rule) pairs images a and b when a hash of
kind `probe` of one lies within `radius` bits of a hash of kind `target` of the other.
Radii are small (at most MAX_RADIUS), so the pigeonhole split needs no flips: the 64 bits
are cut into radius + 1 blocks, and two values within the radius agree exactly on at
least one block. So a pair is found by an exact join on (block, block value) and
verified on all 64 bits; it is kept only through the first block on which the two
values agree, which makes every pair come out once: the same pairs as brute force.

Each value goes under radius + 1 keys (3 at the default radius 2): far cheaper than the
identity hash's search at radius 10, whose buckets need flips. `find_probe_pairs` is the
single-process search (benchmarks, and the Beam transform unibed.dataplane.dedup.probe_pairs
inside each of its buckets, keeping the pairs whose first agreeing block is the bucket's).
"""

from __future__ import annotations

import numpy as np

from unibed.dataplane.dedup.hamming_search import VALUE_BITS, Block

MAX_RADIUS = 4
# Candidate pairs verified per vectorised step (bounds the temporary arrays).
_LANES = 1 << 22
# Blocks up to this wide are looked up in a dense table of counts (2^22 int64: 32 MB).
_DENSE_TABLE_BITS = 22
# ... and only where the values number at least 2^-this of its entries.
_DENSE_TABLE_SHARE = 6


def check_probe_radius(radius: int) -> None:
    if not 0 <= radius <= MAX_RADIUS:
        raise ValueError(f"a probe radius must be in 0..{MAX_RADIUS}, got {radius}")


def blocks_for(radius: int) -> tuple[Block, ...]:
    """radius + 1 disjoint blocks covering the 64 bits, widths differing by at most one."""
    check_probe_radius(radius)
    count = radius + 1
    widths = [VALUE_BITS // count + (k < VALUE_BITS % count) for k in range(count)]
    shifts = np.cumsum([0, *widths[:-1]])
    return tuple(Block(int(s), w, 0) for s, w in zip(shifts, widths))


def first_equal_block(xor: np.ndarray, radius: int) -> np.ndarray:
    """Per xor of two values, the first block on which they agree (radius + 1 if none)."""
    blocks = blocks_for(radius)
    first = np.full(len(xor), len(blocks), dtype=np.int64)
    for index in reversed(range(len(blocks))):
        first[(xor & np.uint64(blocks[index].mask)) == 0] = index
    return first


def _verified(probes, targets, i, j, radius: int, block: int):
    xor = probes[i] ^ targets[j]
    distance = np.bitwise_count(xor)
    near = np.flatnonzero(distance <= radius)  # few: the block test runs on these only
    keep = near[first_equal_block(xor[near], radius) == block]
    return i[keep], j[keep], distance[keep].astype(np.int64)


def find_probe_pairs(probes: np.ndarray, targets: np.ndarray, radius: int) -> np.ndarray:
    """Every (i, j, distance) with popcount(probes[i] ^ targets[j]) <= radius, sorted by (i, j).

    Exact: the pairs brute force finds. Sorts the targets once per block and looks up
    each probe's block value (searchsorted), so the cost is about (radius + 1) sorts and
    lookups plus one verification per candidate.
    """
    probes = np.asarray(probes, dtype=np.uint64)
    targets = np.asarray(targets, dtype=np.uint64)
    found = [np.empty((0, 3), dtype=np.int64)]
    for index, block in enumerate(blocks_for(radius)):
        order, first, count = _ranges(block.values_of(targets), block.values_of(probes), block.width)
        for i, j in _candidates(first, count, order):
            pi, pj, distance = _verified(probes, targets, i, j, radius, index)
            found.append(np.stack([pi, pj, distance], axis=1))
    pairs = np.concatenate(found)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _ranges(keys: np.ndarray, wanted: np.ndarray, width: int):
    """The targets sorted by block value (`order`) and, per probe, where its block value's
    targets start in that order and how many there are. A dense table for narrow blocks
    (one gather per probe), binary search for wide ones."""
    order = np.argsort(keys, kind="stable")
    # the table only for many values (it costs 2^width entries; a bucket of the Beam
    # transform holds a few dozen): the same ranges either way
    if width <= _DENSE_TABLE_BITS and len(keys) + len(wanted) >= (1 << width) >> _DENSE_TABLE_SHARE:
        counts = np.bincount(keys, minlength=1 << width)
        starts = np.cumsum(counts) - counts
        return order, starts[wanted], counts[wanted]
    sorted_keys = keys[order]
    first = np.searchsorted(sorted_keys, wanted, side="left")
    return order, first, np.searchsorted(sorted_keys, wanted, side="right") - first


def _candidates(first: np.ndarray, count: np.ndarray, order: np.ndarray):
    """(probe index, target index) arrays for every target in each probe's range, in steps."""
    hits = np.flatnonzero(count)
    totals = np.cumsum(count[hits])
    start = 0
    while start < len(hits):
        base = totals[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(totals, base + _LANES, side="right")))
        chunk = hits[start:stop]
        sizes = count[chunk]
        probe = np.repeat(chunk, sizes)
        offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        yield probe, order[np.repeat(first[chunk], sizes) + offsets]
        start = stop


def brute_force_probe_pairs(probes: np.ndarray, targets: np.ndarray, radius: int) -> np.ndarray:
    """Reference for tests: every (i, j, distance) within the radius, sorted."""
    probes = np.asarray(probes, dtype=np.uint64)
    targets = np.asarray(targets, dtype=np.uint64)
    distance = np.bitwise_count(probes[:, None] ^ targets[None, :]).astype(np.int64)
    i, j = np.nonzero(distance <= radius)
    return np.stack([i, j, distance[i, j]], axis=1).astype(np.int64)
