"""Peak memory of reading one hostile archive member with the recipe's default
image.max_input_bytes (64 MiB): a Products-10K train.zip whose one member inflates
to --zip-gib GiB (a few MB on disk), and a GLDv2 tar with a well-formed member of
--tar-gib GiB (written sparse). Each read runs in its own subprocess, so its
ru_maxrss is that read's peak; before the limit these reads held the whole member
(issue figures: 3.5 GB and 2.8 GB peak). Then the tar reader's throughput next
to tarfile's stream mode.

    .venv/bin/python -m benchmarks.bench_hostile_members [--zip-gib 1.5] [--tar-gib 1.2]
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter

from PIL import Image

ID_SMALL, ID_LARGE = "abc0000000000001", "abd0000000000002"


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 40, 90)).save(out, "JPEG")
    return out.getvalue()


def write_zip_bomb(root: str, gib: float) -> None:
    with open(f"{root}/train.csv", "w") as f:
        f.write("name,class,group\n0.jpg,1,1\nbomb.jpg,2,1\n")
    with zipfile.ZipFile(f"{root}/train.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/0.jpg", _jpeg())
        with archive.open("train/bomb.jpg", "w", force_zip64=True) as member:
            zeros = bytes(64 << 20)
            for _ in range(int(gib * 16)):
                member.write(zeros)


def write_big_tar(root: str, gib: float) -> None:
    for name, text in (
        ("train.csv", f"id,url,landmark_id\n{ID_SMALL},u,1\n{ID_LARGE},u,2\n"),
        ("train_clean.csv", f"landmark_id,images\n1,{ID_SMALL}\n"),
        ("train_label_to_category.csv", "landmark_id,category\n1,a\n2,b\n"),
    ):
        with open(f"{root}/{name}", "w") as f:
            f.write(text)
    size = int(gib * (1 << 30))
    with open(f"{root}/images_000.tar", "wb") as f:
        small = tarfile.TarInfo(f"a/b/c/{ID_SMALL}.jpg")
        data = _jpeg()
        small.size = len(data)
        f.write(small.tobuf(tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512))
        large = tarfile.TarInfo(f"a/b/d/{ID_LARGE}.jpg")
        large.size = size
        f.write(large.tobuf(tarfile.GNU_FORMAT))
        f.seek(size + -size % 512, io.SEEK_CUR)  # a sparse hole: no disk, real bytes to a reader
        f.write(bytes(1024))


def read_and_report(source: str, root: str) -> None:
    """(child) Read every input of the source, print outcomes and peak RSS."""
    from unibed.dataplane.sources import iter_source, open_index

    start = time.perf_counter()
    outcomes = Counter(
        getattr(item, "reason", None) and item.reason.value or "image"
        for item in iter_source(open_index(source, root))
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{source:12s} {dict(outcomes)}  peak RSS {peak_mb:.0f} MB  {time.perf_counter() - start:.2f} s")


def tar_throughput(members: int = 5000, member_bytes: int = 20_000) -> None:
    """MB/s of archives.iter_tar_members next to tarfile's stream mode (which
    the readers used before), on an in-memory tar: the cost of the damage checks."""
    from unibed.dataplane.sources.archives import iter_tar_members

    out, blob = io.BytesIO(), bytes(range(256)) * (member_bytes // 256)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for n in range(members):
            info = tarfile.TarInfo(f"a/b/c/{n:016x}.jpg")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    data = out.getvalue()

    def stream_mode(stream):
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            return [tar.extractfile(info).read() for info in tar]

    for name, read in (("tarfile r|", stream_mode), ("iter_tar_members", lambda s: list(iter_tar_members(s)))):
        best = min(_timed(read, data) for _ in range(3))
        print(f"{name:18s} {len(data) / best / 1e6:6.0f} MB/s ({members} members of {member_bytes} bytes)")


def _timed(read, data: bytes) -> float:
    start = time.perf_counter()
    read(io.BytesIO(data))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zip-gib", type=float, default=1.5)
    parser.add_argument("--tar-gib", type=float, default=1.2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        read_and_report(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="unibed-bench-hostile-") as work:
        for source, write, gib in (("products10k", write_zip_bomb, args.zip_gib),
                                   ("gldv2", write_big_tar, args.tar_gib)):
            root = f"{work}/{source}"
            subprocess.run(["mkdir", "-p", root], check=True)
            write(root, gib)
            print(f"{source}: one member of {gib} GiB", flush=True)
            subprocess.run([sys.executable, "-m", "benchmarks.bench_hostile_members",
                            "--child", source, root], check=True)
    tar_throughput()


if __name__ == "__main__":
    main()
