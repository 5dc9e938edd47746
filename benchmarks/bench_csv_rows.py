"""What reading a CSV listing costs, for well-formed and for hostile files.

Measures, each in a fresh process (so a peak is its own): rows per second
through `iter_csv` on a GLDv2-shaped train.csv (`id,url,landmark_id`), and the
peak resident memory of reading a Products-10K train.csv whose one field is
200 MB (a record over MAX_RECORD_CHARS is skipped unread into memory; the
rejects quote 200 characters of it).

    .venv/bin/python -m benchmarks.bench_csv_rows [--rows 1000000] [--field-mb 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time


def _write_rows(path: str, rows: int) -> None:
    with open(path, "w") as f:
        f.write("id,url,landmark_id\n")
        f.writelines(f"{i:016x},http://x/{i}.jpg,{i % 203094}\n" for i in range(rows))


def _write_huge_field(path: str, field_mb: int) -> None:
    with open(path, "w") as f:
        f.write("name,class,group\n0.jpg,5,1\n1.jpg,5,")
        chunk = "9" * (1 << 20)
        f.writelines(chunk for _ in range(field_mb))
        f.write("\n2.jpg,7,2\n")


def _measure(path: str, columns: str) -> None:
    """In this process: read `path`, print rows, rejections, seconds and peak RSS."""
    from unibed.dataplane.sources.common import iter_csv

    imported_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    rows = rejections = 0
    longest_detail = 0
    for item in iter_csv(path, columns.split(","), "bench"):
        if hasattr(item, "values"):
            rows += 1
        else:
            rejections += 1
            longest_detail = max(longest_detail, len(item.detail))
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{os.path.getsize(path) / 1e6:8.1f} MB file: {rows} rows, {rejections} rejected "
          f"(longest detail {longest_detail} chars) in {seconds:.2f} s "
          f"({rows / seconds / 1e6:.2f} M rows/s), peak RSS {peak_mb:.0f} MB "
          f"({imported_mb:.0f} MB after imports)")


def _in_fresh_process(path: str, columns: str) -> None:
    subprocess.run([sys.executable, "-m", "benchmarks.bench_csv_rows", "--measure", path, columns], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--field-mb", type=int, default=200)
    parser.add_argument("--measure", nargs=2, metavar=("PATH", "COLUMNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure(*args.measure)
        return
    with tempfile.TemporaryDirectory(prefix="bench-csv-") as tmp:
        rows = os.path.join(tmp, "train.csv")
        _write_rows(rows, args.rows)
        print(f"GLDv2-shaped train.csv, {args.rows} rows:")
        _in_fresh_process(rows, "id,url,landmark_id")
        os.remove(rows)
        huge = os.path.join(tmp, "products.csv")
        _write_huge_field(huge, args.field_mb)
        print(f"Products-10K train.csv with one {args.field_mb} MB field:")
        _in_fresh_process(huge, "name,class,group")


if __name__ == "__main__":
    main()
