"""How fast the exact Hamming-radius search (unibed/dataplane/dedup/hamming_search.py) is, and how it scales.

    .venv/bin/python -m benchmarks.bench_hamming_search [--sizes 1e6 5e6] [--radii 4 8 10]

For uniform and clustered 64-bit hashes at each size and radius, prints the wall and CPU
seconds of find_pairs (CPU: process_time, steadier on a shared machine), the pairs found,
the peak resident memory of the process that ran it (each run is its own subprocess, so
ru_maxrss is that run's peak), the plan (block width/tolerance) with its lookups and
bucket residents compared per value (model for uniform values: the residents grow with N
at a fixed plan, the lookups do not), then the time ratio of each size to the one before
and of the largest to the smallest. Clustered: half the hashes uniform,
half in clusters of 20 on average (members 0..3 bit flips from the centre, so a quarter are
exact copies of it). No assertions: figures only. Shared machines are noisy.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from unibed.dataplane.dedup.hamming_search import (
    bit_collisions,
    find_pairs,
    flip_count,
    plan_search,
)

KINDS = ("uniform", "clustered")
CLUSTER_SIZE = 20
MOST_FLIPS = 3
# A run whose estimate (the CPU time of the same configuration at the smallest size, scaled by the
# size ratio to this power) exceeds SKIP_ABOVE_S seconds is skipped, with a note.
GROWTH = 1.6
SKIP_ABOVE_S = 300.0


def hashes_of(kind: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.integers(0, 2**64, n, dtype=np.uint64)
    clustered = n // 2
    centres = rng.integers(0, 2**64, clustered // CLUSTER_SIZE, dtype=np.uint64)
    members = centres[rng.integers(0, len(centres), clustered)]
    flips = rng.integers(0, MOST_FLIPS + 1, clustered)
    for round_ in range(MOST_FLIPS):
        hit = flips > round_
        members[hit] ^= np.uint64(1) << rng.integers(0, 64, hit.sum()).astype(np.uint64)
    return rng.permutation(
        np.concatenate([rng.integers(0, 2**64, n - clustered, dtype=np.uint64), members])
    )


def work_per_value(n: int, plan) -> tuple[float, float]:
    """Lookups and bucket residents compared per value for a plan on n uniform values:
    each block looks up half its flip masks from each value (mono search), and a bucket
    holds n / 2^width values on average."""
    lookups = residents = 0.0
    for block in plan.blocks:
        if block.width == 0:  # all pairs
            return 0.0, n / 2
        per_value = 1 + (flip_count(block.width, block.tolerance) - 1) / 2
        lookups += per_value
        residents += per_value * n / 2**block.width
    return lookups, residents


def run_one(kind: str, n: int, radius: int) -> dict:
    """One measurement, in this process (called in a fresh subprocess)."""
    hashes = hashes_of(kind, n)
    distinct = np.unique(hashes)
    plan = plan_search(len(distinct), len(distinct), 1, bit_collisions(distinct, 64), radius, True)
    lookups, residents = work_per_value(len(distinct), plan)
    del distinct
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu_start = time.perf_counter(), time.process_time()
    pairs = find_pairs(hashes, radius)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "pairs": len(pairs),
        "plan": " ".join(f"{b.width}/{b.tolerance}" for b in plan.blocks),
        "lookups": lookups,
        "residents": residents,
        "rss_before_mb": rss_before / 1024,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(kind: str, n: int, radius: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_hamming_search",
        "--one",
        kind,
        str(n),
        str(radius),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 5e6])
    parser.add_argument("--radii", nargs="+", type=int, default=[4, 8, 10])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--one", nargs=3, metavar=("KIND", "N", "RADIUS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, n, radius = args.one
        print(json.dumps(run_one(kind, int(n), int(radius))))
        return

    sizes = sorted(int(s) for s in args.sizes)
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs; find_pairs runs on one core")
    header = (
        f"{'kind':9s} {'n':>9s} {'r':>3s} {'wall s':>7s} {'cpu s':>7s} {'pairs':>10s} "
        f"{'peak MB':>8s} {'lookups':>8s} {'compared':>8s}  plan (block width/tolerance)"
    )
    print(header)
    print("-" * len(header))
    results: dict[tuple, dict] = {}
    for kind in args.kinds:
        for radius in args.radii:
            for n in sizes:
                smallest = results.get((kind, radius, sizes[0]))
                if smallest and smallest["cpu_seconds"] * (n / sizes[0]) ** GROWTH > SKIP_ABOVE_S:
                    print(
                        f"{kind:9s} {n:9d} {radius:3d}  skipped: over {SKIP_ABOVE_S:.0f} s expected"
                    )
                    continue
                result = results[kind, radius, n] = measure(kind, n, radius)
                print(
                    f"{kind:9s} {n:9d} {radius:3d} {result['seconds']:7.1f} "
                    f"{result['cpu_seconds']:7.1f} {result['pairs']:10d} "
                    f"{result['peak_rss_mb']:8.0f} {result['lookups']:8.0f} "
                    f"{result['residents']:8.1f}  {result['plan']}",
                    flush=True,
                )
    if len(sizes) > 1:
        print_ratios(results, sizes, args.kinds, args.radii)


def print_ratios(results: dict, sizes: list[int], kinds, radii) -> None:
    """CPU (and wall) time ratio of each size to the one before, and of the largest to the smallest."""
    steps = list(itertools.pairwise(sizes))
    if len(sizes) > 2:
        steps.append((sizes[0], sizes[-1]))
    for small, large in steps:
        print(f"\ntime ratio {large:.1e} / {small:.1e} hashes ({large / small:.0f}x the hashes):")
        for kind in kinds:
            for radius in radii:
                if (kind, radius, large) in results and (kind, radius, small) in results:
                    big, base = results[kind, radius, large], results[kind, radius, small]
                    print(
                        f"  {kind:9s} r={radius:<3d} cpu {big['cpu_seconds'] / base['cpu_seconds']:5.1f}x"
                        f"   wall {big['seconds'] / base['seconds']:5.1f}x"
                    )

if __name__ == "__main__":
    main()
