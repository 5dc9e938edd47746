"""Fetch throughput from a loopback HTTP server (tests/fault_server.py) into a local
staging folder: clean, with faults (a dropped connection and a 500 per file), and a
rerun over the complete staging (verification records only, nothing downloaded).
A plain single-stream `requests` download of the same files is the baseline.
Loopback measures the fetcher's own overhead (parts, md5, rename, join), not a network.

    .venv/bin/python -m benchmarks.bench_fetch [--files 8] [--mb 32] [--workers 4] [--part-mb 8]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time

import requests

from tests.fault_server import FaultServer, drop, status
from unibed.dataplane.fetch import FetchItem, FetchOptions, RetryPolicy, fetch_items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mb", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--part-mb", type=int, default=8)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="unibed-bench-fetch-")
    try:
        routes, md5s = {}, {}
        for i in range(args.files):
            data = os.urandom(args.mb << 20)
            path = f"{work}/src/f{i}.bin"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            routes[f"/f{i}.bin"], md5s[f"f{i}.bin"] = path, hashlib.md5(data).hexdigest()
        server = FaultServer(routes).start()
        items = [FetchItem(f"{server.url}/{n}", n, md5=m) for n, m in md5s.items()]
        total = args.files * args.mb * (1 << 20)
        options = FetchOptions(workers=args.workers, part_size=args.part_mb << 20,
                               retry=RetryPolicy(backoff=0.05), progress_every=60)

        start = time.perf_counter()
        for path in routes:
            with requests.get(f"{server.url}{path}", stream=True) as r:
                for _ in r.iter_content(1 << 20):
                    pass
        report("baseline: one requests stream, no writes", total, time.perf_counter() - start)

        def run(label: str, staging: str) -> None:
            start = time.perf_counter()
            summary = fetch_items(items, staging, options, on_progress=lambda s: None)
            seconds = time.perf_counter() - start
            report(f"{label} ({summary.as_dict()['downloaded'] >> 20} MiB downloaded)", total, seconds)

        run(f"clean fetch, {args.workers} workers", f"{work}/clean")
        for path in routes:
            server.script(path, [None, drop(after=1 << 20), status(500)])
        run("one drop + one 500 per file", f"{work}/faults")
        run("rerun over a complete staging", f"{work}/clean")
        server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(label: str, total: int, seconds: float) -> None:
    print(f"{label}: {total / 1e6:.0f} MB in {seconds:.2f} s = {total / 1e6 / seconds:.0f} MB/s")


if __name__ == "__main__":
    main()
