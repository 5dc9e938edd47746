"""How fast the retrieval rig's index is (unibed/retrieval/index.py), and what it holds.

    .venv/bin/python -m benchmarks.bench_retrieval [--sizes 1e5 1e6] [--backends exact faiss-hnsw]

For galleries of random 64-d unit vectors at each size and backend: index build
seconds, single-query latency (median of 30, k=10), the time of one batch of 100
queries, the matrix's bytes and the peak resident memory of the process (each
run is its own subprocess, so ru_maxrss is that run's peak), and for the
approximate backend its recall@10 against exact search. Queries are gallery
vectors plus noise (each has true near neighbours, as a real query has).
faiss-hnsw runs only where faiss-cpu imports; a run whose build estimate (the
smaller size's build, scaled by the size ratio to the power 1.2) exceeds 600 s is
skipped with a note. No assertions: figures only. Shared machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from unibed.retrieval.index import ExactIndex, faiss_available, make_index

DIM, K, SINGLES, BATCH = 64, 10, 30, 100
SKIP_ABOVE_S, GROWTH = 600.0, 1.2


def unit_vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 1 << 18):  # in slices: no float64 copy of the whole matrix
        block = rng.standard_normal((min(1 << 18, n - start), DIM), dtype=np.float32)
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def run_one(n: int, backend: str) -> dict:
    gallery = unit_vectors(n, seed=0)
    rng = np.random.default_rng(1)
    rows = rng.choice(n, BATCH + SINGLES, replace=False)
    queries = gallery[rows] + 0.05 * rng.standard_normal((len(rows), DIM), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    start = time.perf_counter()
    index = make_index(gallery, backend)
    build_s = time.perf_counter() - start
    singles = []
    for q in queries[BATCH:]:
        t = time.perf_counter()
        index.search(q[None], K)
        singles.append(time.perf_counter() - t)
    batch_times = []
    for _ in range(3):
        t = time.perf_counter()
        _, found = index.search(queries[:BATCH], K)
        batch_times.append(time.perf_counter() - t)
    result = {"n": n, "backend": backend, "build_s": build_s, "single_ms": 1000 * float(np.median(singles)),
              "batch100_ms": 1000 * min(batch_times), "matrix_mb": gallery.nbytes / 2**20,
              "rss_before_mb": rss_before / 2**20}
    if backend != "exact":
        _, exact = ExactIndex(gallery).search(queries[:BATCH], K)
        result["recall_at_10"] = float(np.mean([len(set(a) & set(e)) / K for a, e in zip(found, exact)]))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e5, 1e6])
    parser.add_argument("--backends", nargs="+", default=["exact", "faiss-hnsw"])
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: one run in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(int(float(args.one[0])), args.one[1])))
        return

    backends = [b for b in args.backends if b == "exact" or faiss_available()]
    if len(backends) < len(args.backends):
        print("faiss-cpu is not installed: faiss-hnsw skipped (pip install faiss-cpu to compare)")
    print(f"{'backend':11s} {'gallery':>9s} {'build s':>8s} {'1 query ms':>11s} {'100 queries ms':>15s} "
          f"{'matrix MB':>10s} {'peak RSS MB':>12s} {'recall@10':>10s}")
    for backend in backends:
        first_build = None
        for n in sorted(int(s) for s in args.sizes):
            if first_build is not None and first_build[1] * (n / first_build[0]) ** GROWTH > SKIP_ABOVE_S:
                print(f"{backend:11s} {n:9d}  skipped: build estimated above {SKIP_ABOVE_S:.0f} s")
                continue
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_retrieval", "--one", str(n), backend],
                                 check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            first_build = first_build or (n, r["build_s"])
            recall = f"{r['recall_at_10']:.3f}" if "recall_at_10" in r else "exact"
            print(f"{backend:11s} {n:9d} {r['build_s']:8.2f} {r['single_ms']:11.2f} {r['batch100_ms']:15.1f} "
                  f"{r['matrix_mb']:10.1f} {r['peak_rss_mb']:12.0f} {recall:>10s}", flush=True)


if __name__ == "__main__":
    main()
