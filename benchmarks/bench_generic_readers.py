"""Reading throughput of the generic readers against the simplest plain-Python
loop over the same bytes: N images of ~20 KB as a WebDataset shard (KEY.jpg +
KEY.cls + KEY.json, as img2dataset writes), a Parquet file (Hugging Face Image
struct + ClassLabel, row groups of 1,000), a listing CSV over a folder, and an
image folder. CPU seconds (process time) for open_index (the plan's metadata
pass) and for iter_source (every image read), images/s, MB/s.

    .venv/bin/python -m benchmarks.bench_generic_readers [--images 5000]
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

from unibed.dataplane.sources import iter_source, open_index
from unibed.schemas.reader_specs import ListingSpec


def _payload(i: int, size: int) -> bytes:
    return i.to_bytes(4, "big") * (size // 4)


def write_layouts(root: str, images: int, size: int) -> None:
    with tarfile.open(f"{root}/web/shard-00000.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(images):
            for name, data in ((f"{i:09d}.jpg", _payload(i, size)), (f"{i:09d}.cls", str(i % 100).encode()),
                               (f"{i:09d}.json", b'{"url": "https://example.com/x.jpg", "status": "success"}')):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    table = pa.table({"image": [{"bytes": _payload(i, size), "path": None} for i in range(images)],
                      "label": [i % 100 for i in range(images)]})
    pq.write_table(table, f"{root}/hf/train.parquet", row_group_size=1000)
    rows = ["path,label"]
    for i in range(images):
        for folder in (f"{root}/listing/images", f"{root}/folder/c{i % 100}"):
            os.makedirs(folder, exist_ok=True)
        with open(f"{root}/listing/images/{i}.jpg", "wb") as f:
            f.write(_payload(i, size))
        with open(f"{root}/folder/c{i % 100}/{i}.jpg", "wb") as f:
            f.write(_payload(i, size))
        rows.append(f"{i}.jpg,{i % 100}")
    with open(f"{root}/listing/list.csv", "w") as f:
        f.write("\n".join(rows) + "\n")


def _measure(name: str, open_fn) -> None:
    start = time.process_time()
    index = open_fn()
    opened = time.process_time() - start
    count = total = 0
    for item in iter_source(index):
        count += hasattr(item, "data")
        total += len(getattr(item, "data", b""))
    read = time.process_time() - start - opened
    print(f"{name:12s} open_index {opened:6.2f} s  read {read:6.2f} s  {count / read:8.0f} images/s  "
          f"{total / read / 1e6:7.1f} MB/s")


def _baseline(root: str) -> None:
    start = time.process_time()
    total = 0
    with tarfile.open(f"{root}/web/shard-00000.tar", "r|") as tar:
        for member in tar:
            total += len(tar.extractfile(member).read())
    print(f"{'tarfile r|':12s} {'':17s} read {time.process_time() - start:6.2f} s  (all members, no labels)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        for folder in ("web", "hf", "listing", "folder"):
            os.makedirs(f"{root}/{folder}")
        write_layouts(root, args.images, args.size)
        print(f"{args.images} images of {args.size} bytes")
        _measure("webdataset", lambda: open_index("web", f"{root}/web", reader="webdataset"))
        _measure("parquet", lambda: open_index("hf", f"{root}/hf", reader="parquet"))
        listing = ListingSpec(files={"train": "list.csv"}, path_column="path", label_column="label",
                              path_prefix="images/")
        _measure("listing", lambda: open_index("mine", f"{root}/listing", reader="listing", options=listing))
        _measure("imagefolder", lambda: open_index("pets", f"{root}/folder", reader="imagefolder"))
        _baseline(root)


if __name__ == "__main__":
    main()
