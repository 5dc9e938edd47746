"""Exact Hamming-radius search over 64-bit hashes (multi-index hashing).

`find_pairs(hashes, r)` returns every index pair i < j with
popcount(h_i ^ h_j) <= r: exactly the pairs brute force finds, sorted.

1. Identical values are collapsed first: their pairs come straight from the
   groups (no comparisons), and the search runs on distinct values.
2. The search splits the bits into m disjoint blocks with tolerances t_i and
   sum(t_i + 1) > r. A pair within r then has some block i whose own distance
   is <= t_i (generalised pigeonhole). Per block the values are counting-sorted
   by block value into a dense table; each value looks up the buckets at
   v_i ^ f for every flip mask f with popcount(f) <= t_i, and every candidate
   is verified. m and the t_i come from a cost model in nanoseconds calibrated
   on this machine kind (lookups, candidates, tables, per-step overhead, or
   plain all-pairs comparison for small inputs): 3 blocks of 21-22 bits with
   t = 2 for r = 8 at 10^6 values.
3. No global deduplication: a pair is kept only through the first block in
   which it is within tolerance (decidable from the two values alone), and
   inside a block an unordered pair is looked up from one side only (the
   value whose block has a 0 at the highest bit of f).
4. Skew. Bits are ranked by how well they separate the values (from a
   sample) and dealt round-robin to the blocks, so a run of nearly constant
   bits (many hashes sharing a block) spreads thinly over all blocks instead
   of making one block's buckets hot, and bits that separate almost nothing
   can be left out of every block (the pigeonhole argument does not need
   them). Buckets still hot on both sides of a lookup (>= 32 members: near
   duplicates, or structure the ranking cannot see) are not compared all
   against all: their members form one sub-problem over the bits outside the
   block, solved by the same search, whose pairs are then checked on the
   block. All-pairs comparison happens only where the cost model prefers it
   (small groups, or no bits left to split on, where the candidates are output).

Lookups are memory-bound, so the tables are small: a uint8 bucket-size table
answers most lookups, and the fingerprints (32 bits outside the block, a lower
bound on the distance) of a bucket's residents 2k and 2k + 1 sit in plane k,
one uint64 per key, so a hit reads one word instead of offsets and then values,
and plane k is read only by the lookups whose bucket reaches it: the work
follows the residents, with no padded lanes (buckets fill up as N grows at a
fixed block width). Only fingerprint matches are verified on the full values.

Scaling: for r = 8 the cheapest exact plans have 3 blocks of at most 22 bits
with t = 2 (~360 lookups per value), so the residents compared per value grow
with N (~140 at 10^6 uniform hashes, ~570 at 4x10^6) while the lookups stay;
the next plan, 2 blocks of 32 bits, needs ~23,000 lookups per value. The time
therefore grows faster than N (benchmarks/bench_hamming_search.py prints both).

`find_cross_pairs(left, right, r)` is the bichromatic variant (pairs between
two sets), used by the Beam transform for split hot buckets.
`brute_force_pairs` is the quadratic reference for tests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

VALUE_BITS = 64
# Lookups (or value pairs) handled per vectorised step: bounds the temporary arrays.
_CHUNK = 1 << 19
# Groups with at least this many pairs are compared as dense bands.
_BAND_LANES = 1 << 14
# Candidate pairs expanded from bucket ranges per step.
_RANGE_LANES = 1 << 21
# Bucket pairs with at least this many members on both sides go to a sub-problem.
_HOT_BUCKET = 32
# Fingerprint planes per table: enough that at most this share of the residents is
# left to the (slower) offsets path, and at most _MAX_PLANES (16 residents per bucket).
_OVERFLOW_SHARE = 0.002
_MAX_PLANES = 8
# Bit statistics come from a sample of this many values.
_SAMPLE = 1 << 16
# Plans may leave out bits on which two values agree with at least these chances.
_USEFUL_BIT_COLLISIONS = (0.6, 0.75, 0.9)
# Dense lookup tables hold at most max(this, 2 * elements) keys.
_MIN_KEY_SPACE = 1 << 22
# Cost model, nanoseconds (2-core cloud VM, numpy 2.4).
_NS_LOOKUP = 10.0
_NS_CANDIDATE = 8.0
_NS_TABLE_ELEMENT = 150.0
_NS_TABLE_KEY = 8.0
_NS_STEP = 40_000.0
_NS_BLOCK = 300_000.0
_NS_PAIR = 2.0  # all-pairs comparison within big groups (dense bands)
_NS_RANGE_PAIR = 12.0  # all-pairs comparison within small groups (expanded ranges)


@dataclass(frozen=True)
class Block:
    """Bits [shift, shift + width) of a value, matched within `tolerance` flips."""

    shift: int
    width: int
    tolerance: int

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift

    def values_of(self, values: np.ndarray) -> np.ndarray:
        bits = (values >> np.uint64(self.shift)) & np.uint64((1 << self.width) - 1)
        return bits.astype(np.int64)


def check_radius(radius: int) -> None:
    if not 0 <= radius <= VALUE_BITS:
        raise ValueError(f"radius must be in 0..{VALUE_BITS}, got {radius}")


def flip_count(width: int, tolerance: int) -> int:
    """How many masks of `width` bits have at most `tolerance` bits set."""
    return sum(math.comb(width, k) for k in range(min(width, tolerance) + 1))


def flips_of_popcount(width: int, popcount: int) -> list[int]:
    return [sum(1 << b for b in bits) for bits in itertools.combinations(range(width), popcount)]


def first_block_within(xor: np.ndarray, blocks: list[Block]) -> np.ndarray:
    """Per xor of two values, the first block within its tolerance (len(blocks) if none)."""
    first = np.full(len(xor), len(blocks), dtype=np.int64)
    for index in reversed(range(len(blocks))):
        block = blocks[index]
        first[np.bitwise_count(xor & np.uint64(block.mask)) <= block.tolerance] = index
    return first


# ---------------------------------------------------------------- public API


def find_pairs(hashes: np.ndarray, radius: int) -> np.ndarray:
    """All index pairs (i, j), i < j, within Hamming distance `radius`.

    Returns int64 of shape (P, 2), sorted lexicographically.
    """
    check_radius(radius)
    values, *groups = _distinct(hashes)
    everything = _Side(values, np.zeros(len(values), dtype=np.int64))
    va, vb = _join(everything, everything, 1, VALUE_BITS, radius, mono=True)
    shift = max(len(hashes) - 1, 1).bit_length()  # bits of the largest index
    within = _pairs_within_groups(*groups, shift)
    across = _member_pair_keys(va, vb, groups, groups, shift, ordered=False)
    return _sorted_pairs(np.concatenate([within, across]), shift)


def find_cross_pairs(left: np.ndarray, right: np.ndarray, radius: int) -> np.ndarray:
    """All pairs (i, j) with popcount(left[i] ^ right[j]) <= radius, sorted."""
    check_radius(radius)
    lvalues, *lgroups = _distinct(left)
    rvalues, *rgroups = _distinct(right)
    la, rb = _join(
        _Side(lvalues, np.zeros(len(lvalues), dtype=np.int64)),
        _Side(rvalues, np.zeros(len(rvalues), dtype=np.int64)),
        1,
        VALUE_BITS,
        radius,
        mono=False,
    )
    shift = max(len(right) - 1, 1).bit_length()
    return _sorted_pairs(_member_pair_keys(la, rb, lgroups, rgroups, shift, ordered=True), shift)


def brute_force_pairs(hashes: np.ndarray, radius: int) -> np.ndarray:
    """Reference: compare every pair (quadratic; for tests on small inputs)."""
    check_radius(radius)
    hashes = np.asarray(hashes, dtype=np.uint64)
    found = [np.empty((0, 2), dtype=np.int64)]
    rows = max(1, (1 << 22) // max(len(hashes), 1))
    for start in range(0, len(hashes), rows):
        distance = np.bitwise_count(hashes[start : start + rows, None] ^ hashes[None, :])
        i, j = np.nonzero(distance <= radius)
        i += start
        upper = i < j
        found.append(np.stack([i[upper], j[upper]], axis=1).astype(np.int64))
    return np.concatenate(found)


@dataclass(frozen=True)
class Plan:
    """Blocks over the values with their bits reordered by `bit_order`.

    bit_order[j] is the bit of a value that moves to position j. A single
    zero-width block means: compare all pairs within each group.
    """

    blocks: tuple[Block, ...]
    bit_order: tuple[int, ...]


def bit_collisions(values: np.ndarray, bits: int) -> np.ndarray:
    """Per bit, the chance that two random values agree on it (0.5 when balanced), from a sample."""
    sample = np.ascontiguousarray(values[:: max(1, len(values) // _SAMPLE)], dtype="<u8")
    ones = np.unpackbits(sample.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    p = ones[:, :bits].mean(axis=0) if len(sample) else np.full(bits, 0.5)
    return p * p + (1 - p) * (1 - p)


def plan_search(
    n_left: int, n_right: int, n_groups: int, collisions: np.ndarray, radius: int, mono: bool
) -> Plan:
    """The cheapest exact plan at `radius` by the cost model.

    Bits are ranked by how much they separate values and dealt round-robin to
    the blocks, so nearly constant bits (a skewed block) do not make a block's
    buckets hot; bits that separate almost nothing may be left out of all blocks.
    """
    bits = len(collisions)
    half = 0.5 if mono else 1.0
    per_group = n_right / max(n_groups, 1)
    pair_ns = _NS_PAIR if (n_left / max(n_groups, 1)) * per_group >= _BAND_LANES else _NS_RANGE_PAIR
    best_cost = _NS_BLOCK + half * n_left * per_group * pair_ns
    best = Plan((Block(0, 0, radius),), tuple(range(bits)))
    tables = n_left if mono else n_left + n_right
    if best_cost <= _NS_BLOCK + _NS_TABLE_ELEMENT * tables:  # below any plan with blocks
        return best
    key_space = max(_MIN_KEY_SPACE, 2 * (n_left + n_right))
    max_width = min(bits, int(math.log2(key_space / max(n_groups, 1))))
    ranked = np.argsort(collisions, kind="stable")
    useful = {int((collisions <= limit).sum()) for limit in _USEFUL_BIT_COLLISIONS}
    for used in sorted(useful | {bits}):
        for m in range(1, min(used, radius + 1) + 1):
            if m * (_NS_BLOCK + _NS_TABLE_ELEMENT * tables) >= best_cost:
                break  # more blocks only cost more
            n_used = min(used, m * max_width)
            members = [ranked[j:n_used:m] for j in range(m)]
            widths = [len(bits_of_block) for bits_of_block in members]
            spare = radius + 1 - m  # tolerances must sum to radius + 1 - m
            tolerances = [spare // m + (k < spare % m) for k in range(m)]
            if any(t >= w for t, w in zip(tolerances, widths)):
                continue
            cost = 0.0
            for bits_of_block, t in zip(members, tolerances):
                w = len(bits_of_block)
                flips = flip_count(w, t)
                lookups = n_left * (1 + half * (flips - 1))
                candidates = lookups * per_group * float(np.prod(collisions[bits_of_block]))
                steps = flips * math.ceil(half * n_left / _CHUNK)
                cost += _NS_BLOCK + _NS_TABLE_ELEMENT * tables + _NS_TABLE_KEY * (n_groups << w)
                cost += _NS_STEP * steps + _NS_LOOKUP * lookups + _NS_CANDIDATE * candidates
            if cost < best_cost:
                shifts = itertools.accumulate(widths[:-1], initial=0)
                blocks = tuple(Block(s, w, t) for s, w, t in zip(shifts, widths, tolerances))
                left_out = np.sort(ranked[n_used:])
                order = tuple(int(b) for b in np.concatenate([*members, left_out]))
                best, best_cost = Plan(blocks, order), cost
    return best


def permute_bits(values: np.ndarray, bit_order: tuple[int, ...]) -> np.ndarray:
    """Move bit bit_order[j] of every value to position j (eight byte-table lookups)."""
    if bit_order == tuple(range(len(bit_order))):
        return values
    tables = np.zeros((8, 256), dtype=np.uint64)
    byte_values = np.arange(256)
    for position, source in enumerate(bit_order):
        byte, bit = divmod(source, 8)
        tables[byte, (byte_values >> bit) & 1 == 1] |= np.uint64(1 << position)
    as_bytes = np.ascontiguousarray(values, dtype="<u8").view(np.uint8).reshape(-1, 8)
    permuted = np.zeros(len(values), dtype=np.uint64)
    for byte in range(8):
        permuted |= tables[byte][as_bytes[:, byte]]
    return permuted


# ---------------------------------------------------------------- the search


@dataclass
class _Side:
    """Values to pair, each in a group; values pair only within their group."""

    values: np.ndarray  # uint64, only the low `bits` bits in use
    groups: np.ndarray  # int64 in [0, n_groups)


@dataclass
class _Table:
    """One side sorted by key = (group, block value), indexed densely by key.

    planes[k][key] holds the fingerprints of the bucket's residents 2k and
    2k + 1 (32 bits each, two to a uint64), so a lookup reads one word straight
    from a table indexed by key, with no offsets in between; plane k is read
    only for the lookups whose bucket has more than 2k residents, so the work
    follows the residents (no padded lanes), and only residents past the last
    plane go through the offsets.
    """

    order: np.ndarray  # sorted position -> element index
    keys: np.ndarray  # per sorted position
    values: np.ndarray  # per sorted position
    twice: np.ndarray  # per sorted position: its fingerprint in both halves of a uint64
    offsets: np.ndarray  # key -> first sorted position; length key_space + 1
    sizes: np.ndarray  # key -> bucket size, uint8 saturating at 255
    planes: np.ndarray  # (plane count, key_space) uint64

    @classmethod
    def build(cls, side: _Side, block: Block, key_space: int) -> _Table:
        keys = (side.groups << block.width) | block.values_of(side.values)
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], side.values[order]
        sizes = np.bincount(keys, minlength=key_space)
        offsets = np.zeros(key_space + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        plane_count = _plane_count(sizes)
        rank = np.arange(len(keys)) - offsets[keys]
        in_plane = rank < 2 * plane_count
        prints = _fingerprints(values, block)
        planes = np.zeros((plane_count, key_space), dtype=np.uint64)
        lanes = planes.view(np.uint32).reshape(plane_count, key_space, 2)
        lanes[rank[in_plane] >> 1, keys[in_plane], rank[in_plane] & 1] = prints[in_plane]
        twice = prints.astype(np.uint64) * np.uint64(0x1_0000_0001)
        sizes = np.minimum(sizes, 255).astype(np.uint8)
        return cls(order, keys, values, twice, offsets, sizes, planes)

    @property
    def slots(self) -> int:
        return 2 * len(self.planes)

    def hot_buckets(self) -> np.ndarray:
        return np.diff(self.offsets) >= _HOT_BUCKET


def _fingerprints(values: np.ndarray, block: Block) -> np.ndarray:
    """The lowest 32 bits of each value outside the block (the most separating ones).

    The distance of two fingerprints is a lower bound on the distance of the values.
    """
    return _without_block(values, block).astype(np.uint32)


def _without_block(values: np.ndarray, block: Block) -> np.ndarray:
    """The values with the block's bits cut out (higher bits move down)."""
    low = values & np.uint64((1 << block.shift) - 1)
    high = (values >> np.uint64(block.shift + block.width)) << np.uint64(block.shift)
    return low | high


def _plane_count(sizes: np.ndarray) -> int:
    """Planes enough for all but _OVERFLOW_SHARE of the residents (at most _MAX_PLANES)."""
    histogram = np.bincount(sizes)  # buckets per size
    size = np.arange(len(histogram))
    residents = max(int((size * histogram).sum()), 1)
    for planes in range(1, _MAX_PLANES):
        beyond = ((size[2 * planes :] - 2 * planes) * histogram[2 * planes :]).sum()
        if beyond <= _OVERFLOW_SHARE * residents:
            return planes
    return _MAX_PLANES


def _join(
    left: _Side, right: _Side, n_groups: int, bits: int, radius: int, mono: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (into left, into right) of elements in one group within `radius`.

    mono: left is right, and each unordered pair of two elements comes once.
    """
    if len(left.values) == 0 or len(right.values) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    sample = left.values if mono else np.concatenate([left.values, right.values])
    collisions = bit_collisions(sample, bits)
    plan = plan_search(len(left.values), len(right.values), n_groups, collisions, radius, mono)
    if plan.blocks[0].width == 0:
        found = list(_all_pairs_in_groups(left, right, n_groups, radius, mono))
    else:
        left = _Side(permute_bits(left.values, plan.bit_order), left.groups)
        right = left if mono else _Side(permute_bits(right.values, plan.bit_order), right.groups)
        search = _BlockSearch(left, right, n_groups, bits, radius, mono, list(plan.blocks))
        found = [search.pairs_through(index) for index in range(len(plan.blocks))]
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


def _all_pairs_in_groups(left: _Side, right: _Side, n_groups: int, radius: int, mono: bool):
    """Compare every pair within each group: big groups as dense bands, small ones as ranges."""
    yield np.empty(0, np.int64), np.empty(0, np.int64)
    lorder = np.argsort(left.groups, kind="stable")
    rorder = lorder if mono else np.argsort(right.groups, kind="stable")
    lvalues, rvalues = left.values[lorder], right.values[rorder]
    lstarts = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(left.groups, minlength=n_groups), out=lstarts[1:])
    rstarts = lstarts if mono else np.zeros(n_groups + 1, dtype=np.int64)
    if not mono:
        np.cumsum(np.bincount(right.groups, minlength=n_groups), out=rstarts[1:])
    lsizes, rsizes = np.diff(lstarts), np.diff(rstarts)
    big = lsizes * rsizes >= _BAND_LANES
    for group in np.flatnonzero(big):
        i, j = _band_pairs(
            lvalues[lstarts[group] : lstarts[group + 1]],
            rvalues[rstarts[group] : rstarts[group + 1]],
            radius,
            mono,
        )
        yield lorder[i + lstarts[group]], rorder[j + rstarts[group]]
    # Small groups: each left element against its group's range of the right side.
    lpos = np.flatnonzero(np.repeat(~big, lsizes))
    group = left.groups[lorder[lpos]]
    first = lpos + 1 if mono else rstarts[group]
    for lp, rp in _range_candidates(lpos, first, rstarts[group + 1] - first):
        near = np.bitwise_count(lvalues[lp] ^ rvalues[rp]) <= radius
        yield lorder[lp[near]], rorder[rp[near]]


def _band_pairs(lvalues, rvalues, radius: int, mono: bool) -> tuple[np.ndarray, np.ndarray]:
    """Compare every pair of one group, a band of left rows at a time."""
    found_i, found_j = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    rows = max(1, _BAND_LANES * 16 // len(rvalues))
    for start in range(0, len(lvalues), rows):
        right_from = start + 1 if mono else 0  # mono: only the upper triangle
        band = lvalues[start : start + rows, None] ^ rvalues[None, right_from:]
        i, j = np.divmod(np.flatnonzero(np.bitwise_count(band) <= radius), band.shape[1])
        i += start
        j += right_from
        upper = i < j if mono else slice(None)
        found_i.append(i[upper])
        found_j.append(j[upper])
    return np.concatenate(found_i), np.concatenate(found_j)


@dataclass
class _BlockSearch:
    left: _Side
    right: _Side
    n_groups: int
    bits: int
    radius: int
    mono: bool
    blocks: list[Block]

    def pairs_through(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Pairs whose first block within tolerance is blocks[index]."""
        block = self.blocks[index]
        key_space = self.n_groups << block.width
        ltable = _Table.build(self.left, block, key_space)
        rtable = ltable if self.mono else _Table.build(self.right, block, key_space)
        hot_left = ltable.hot_buckets()
        hot_right = hot_left if self.mono else rtable.hot_buckets()
        if not (hot_left.any() and hot_right.any()):
            hot_left = hot_right = None
        found = list(self._light_pairs(ltable, rtable, hot_left, hot_right, index))
        if hot_left is not None:
            found.append(self._hot_pairs(ltable, rtable, hot_left, hot_right, index))
        return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])

    def _light_pairs(self, ltable, rtable, hot_left, hot_right, index) -> Iterator:
        """Pairs through bucket lookups, leaving out hot-hot bucket pairs."""
        block = self.blocks[index]
        yield ltable.order[:0], rtable.order[:0]
        for high_bit, flips in _flips_by_high_bit(block.width, block.tolerance):
            if self.mono and high_bit >= 0:
                # Look up from the side whose block has 0 at the flip's highest bit only.
                eligible = np.flatnonzero(((ltable.keys >> high_bit) & 1) == 0)
            else:
                eligible = np.arange(len(ltable.keys))
            for start in range(0, len(eligible), _CHUNK):
                lpos = eligible[start : start + _CHUNK]
                lkeys = ltable.keys[lpos]
                lhot = None if hot_left is None else hot_left[lkeys]
                for flip in flips:
                    target = lkeys ^ flip
                    size = rtable.sizes[target]
                    wanted = size != 0
                    if lhot is not None:
                        wanted &= ~(lhot & hot_right[target])
                    hit = np.flatnonzero(wanted)
                    lp, rp = self._bucket_near(ltable, rtable, lpos[hit], target[hit], size[hit])
                    if self.mono and not flip:  # its own bucket: each pair from one side
                        later = rp > lp
                        lp, rp = lp[later], rp[later]
                    yield self._kept(ltable, rtable, lp, rp, index)

    def _bucket_near(self, ltable, rtable, lpos, target, size):
        """Pairs of left element k and the residents of bucket target[k] (size[k] of them)
        whose fingerprints are within the radius: plane by plane, each plane read only for
        the buckets that reach it; residents past the last plane come through the offsets."""
        found_l, found_r = [lpos[:0]], [lpos[:0]]
        twice = ltable.twice[lpos]
        for plane_index, plane in enumerate(rtable.planes):
            if plane_index:
                reach = np.flatnonzero(size > 2 * plane_index)
                lpos, target, size, twice = lpos[reach], target[reach], size[reach], twice[reach]
            xor = plane[target] ^ twice
            near = np.flatnonzero(np.bitwise_count(xor.view(np.uint32)) <= self.radius)
            row, slot = near >> 1, (near & 1) + 2 * plane_index
            real = slot < size[row]
            found_l.append(lpos[row[real]])
            found_r.append(rtable.offsets[target[row[real]]] + slot[real])
        over = np.flatnonzero(size > rtable.slots)
        if len(over):
            first = rtable.offsets[target[over]] + rtable.slots
            count = rtable.offsets[target[over] + 1] - first
            lp, rp = self._range_near(ltable, rtable, lpos[over], first, count)
            found_l.append(lp)
            found_r.append(rp)
        return np.concatenate(found_l), np.concatenate(found_r)

    def _range_near(self, ltable, rtable, lpos, first, count):
        """Pairs of left element k and right positions [first[k], first[k] + count[k])
        within the radius."""
        found_l, found_r = [lpos[:0]], [lpos[:0]]
        for lp, rp in _range_candidates(lpos, first, count):
            near = np.bitwise_count(ltable.values[lp] ^ rtable.values[rp]) <= self.radius
            found_l.append(lp[near])
            found_r.append(rp[near])
        return np.concatenate(found_l), np.concatenate(found_r)

    def _kept(self, ltable, rtable, lpos, rpos, index):
        """Pairs within the radius that belong to this block (no earlier block within tolerance)."""
        xor = ltable.values[lpos] ^ rtable.values[rpos]
        here = np.bitwise_count(xor) <= self.radius
        here &= first_block_within(xor, self.blocks[:index]) == index
        return ltable.order[lpos[here]], rtable.order[rpos[here]]

    def _hot_pairs(self, ltable, rtable, hot_left, hot_right, index):
        """Pairs between hot buckets, by one search over the bits outside this block.

        The members of hot buckets that have a hot bucket within tolerance on the
        other side go into one sub-problem (no member is copied per neighbour);
        its pairs within the radius on the remaining bits are then checked on
        this block and on the earlier ones.
        """
        block = self.blocks[index]
        lkeys = np.flatnonzero(hot_left)
        if self.mono:  # every hot bucket is its own neighbour
            rkeys = lkeys
        else:
            has_neighbour = np.zeros(len(lkeys), dtype=bool)
            neighbour = np.zeros(len(hot_right), dtype=bool)
            for popcount in range(block.tolerance + 1):
                for flip in flips_of_popcount(block.width, popcount):
                    hit = hot_right[lkeys ^ flip]
                    has_neighbour |= hit
                    neighbour[lkeys[hit] ^ flip] = True
            lkeys, rkeys = lkeys[has_neighbour], np.flatnonzero(neighbour)
        sub_left, lpos = _bucket_members(ltable, lkeys, block)
        sub_right, rpos = (sub_left, lpos) if self.mono else _bucket_members(rtable, rkeys, block)
        sl, sr = _join(
            sub_left, sub_right, self.n_groups, self.bits - block.width, self.radius, self.mono
        )
        lpos, rpos = lpos[sl], rpos[sr]
        xor = ltable.values[lpos] ^ rtable.values[rpos]
        here = np.bitwise_count(xor & np.uint64(block.mask)) <= block.tolerance
        here &= np.bitwise_count(xor) <= self.radius
        here &= first_block_within(xor, self.blocks[:index]) == index
        return ltable.order[lpos[here]], rtable.order[rpos[here]]


def _flips_by_high_bit(width: int, tolerance: int) -> list[tuple[int, list[int]]]:
    """Flip masks with at most `tolerance` bits, grouped by highest set bit (-1: no bit)."""
    groups: dict[int, list[int]] = {}
    for popcount in range(min(width, tolerance) + 1):
        for flip in flips_of_popcount(width, popcount):
            groups.setdefault(flip.bit_length() - 1, []).append(flip)
    return sorted(groups.items())


def _bucket_members(table: _Table, keys: np.ndarray, block: Block) -> tuple[_Side, np.ndarray]:
    """Members of the given buckets, in their groups, with the block's bits cut out."""
    first = table.offsets[keys]
    _, positions = _expand_ranges(first, table.offsets[keys + 1] - first)
    values = _without_block(table.values[positions], block)
    return _Side(values, table.keys[positions] >> block.width), positions


# ---------------------------------------------------------------- array helpers


def _distinct(hashes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values; indices grouped by value (ascending); each value's first slot and count."""
    values, inverse, counts = np.unique(
        np.asarray(hashes, dtype=np.uint64), return_inverse=True, return_counts=True
    )
    members = np.argsort(inverse.ravel(), kind="stable").astype(np.int64)
    return values, members, np.cumsum(counts) - counts, counts


def _expand_ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [starts[k], starts[k] + counts[k]): (k, position) for every position."""
    owner = np.repeat(np.arange(len(counts)), counts)
    positions = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    positions += np.arange(len(positions))
    return owner, positions


def _range_candidates(lpos, first, count) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(left position, right position) pairs for the ranges, in pieces of bounded size."""
    ends = np.cumsum(count)
    cuts = np.searchsorted(
        ends, np.arange(_RANGE_LANES, ends[-1] if len(ends) else 0, _RANGE_LANES)
    )
    for piece in np.split(np.arange(len(lpos)), cuts):
        owner, rpos = _expand_ranges(first[piece], count[piece])
        yield lpos[piece][owner], rpos


def _member_pair_keys(va, vb, a_groups, b_groups, shift: int, ordered: bool) -> np.ndarray:
    """Every (member of va[p], member of vb[p]) as i << shift | j, a chunk of pairs at a time.

    ordered: i is the member of va (else i is the smaller index).
    """
    a_members, a_starts, a_counts = a_groups
    b_members, b_starts, b_counts = b_groups
    keys = [np.empty(0, dtype=np.int64)]
    for start in range(0, len(va), _CHUNK):
        pair, a_slot = _expand_ranges(
            a_starts[va[start : start + _CHUNK]], a_counts[va[start : start + _CHUNK]]
        )
        b_of = vb[start : start + _CHUNK][pair]
        a_rep, b_slot = _expand_ranges(b_starts[b_of], b_counts[b_of])
        i, j = a_members[a_slot[a_rep]], b_members[b_slot]
        if not ordered:
            i, j = np.minimum(i, j), np.maximum(i, j)
        keys.append((i << shift) | j)
    return np.concatenate(keys)


def _pairs_within_groups(members, starts, counts, shift: int) -> np.ndarray:
    """Every pair of members of one value, as i << shift | j with i < j."""
    slot = np.arange(len(members))
    later = np.repeat(starts + counts, counts) - slot - 1
    owner, partner = _expand_ranges(slot + 1, later)
    return (members[owner] << shift) | members[partner]


def _sorted_pairs(keys: np.ndarray, shift: int) -> np.ndarray:
    """(i, j) rows from keys i << shift | j, sorted (one sort of the keys: far faster than
    lexsort, and no (P, 2) temporaries)."""
    keys.sort()
    pairs = np.empty((len(keys), 2), dtype=np.int64)
    np.right_shift(keys, shift, out=pairs[:, 0])
    np.bitwise_and(keys, (1 << shift) - 1, out=pairs[:, 1])
    return pairs
