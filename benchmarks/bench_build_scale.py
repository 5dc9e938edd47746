"""The build at two sizes of photo-like Products-10K trees: wall time, CPU per
image beyond the fixed cost against the plain-code limit, peak memory and the
memory each extra image costs, per runner, and whether all runners (and,
with --baseline-code, another checkout) write byte-identical shards.

    .venv/bin/python -m benchmarks.bench_build_scale [--sizes 2000,8000]
        [--runners local,local-multiprocess] [--baseline-code DIR]

Images: crops of real photographs (benchmarks/real_photos.py, cached in
--photos) resized to 500x375..800x600 and saved at JPEG quality 75-95, 10 per
class, in the Products-10K folder layout (train.csv name,class,group + train/).
Each build runs in its own process (the code on PYTHONPATH, or --baseline-code
for the "before" rows): peak memory is the largest sum of RSS over its process
tree, sampled every 50 ms; CPU is the tree's user + system time. The plain
code does the same unavoidable per-image work in one loop: read, Pillow draft
decode, imagehash pHash, JPEG encode, write; "plain code + probe hashes" the
same with the build's own hashing (pHash and the probe hashes that find edited
copies, added after this benchmark's first figures). On a shared machine the
figures are noisy; the memory per extra image is the number that matters.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import imagehash
from PIL import Image

from benchmarks.real_photos import photo_paths
from unibed.dataplane.images.robust_hashes import image_hashes

PER_CLASS = 10
SHORTER_SIDE = 288  # the reference recipe's
_BUILD = """
import hashlib, json, os, sys
from unibed.dataplane.build.launcher import build_dataset
from unibed.dataplane.build.runner_options import RunnerConfig
from unibed.schemas.recipe import parse_recipe
root, output, runner, workers = sys.argv[1:5]
recipe = parse_recipe({"schema_version": 1, "name": "bench-scale", "output": output,
    "sources": [{"name": "products10k", "location": root, "classes": {"mode": "all"}}],
    "split": {"validation_fraction": 0.1}, "dedup": {"exact": True, "near_hamming_threshold": 10}})
config = RunnerConfig(runner=runner, num_workers=int(workers) if runner != "local" else None)
build_dataset(recipe, config)
shards = sorted(n for n in os.listdir(output) if n.endswith(".tfrecord"))
print(json.dumps({n: hashlib.sha256(open(os.path.join(output, n), "rb").read()).hexdigest()
                  for n in shards}))
print(json.dumps(sorted(os.listdir(output))))
"""


def photo_pool(photos: list[str], folder: str, count: int) -> list[str]:
    """`count` JPEGs cut from the photographs (made once, kept in `folder`)."""
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"{i:06d}.jpg") for i in range(count)]
    sources = [Image.open(p).convert("RGB") for p in photos]
    for i, path in enumerate(paths):
        if not os.path.exists(path):
            _cut(sources[i % len(sources)], random.Random(i)).save(path + ".tmp", "JPEG",
                                                                  quality=random.Random(-i).randint(75, 95))
            os.rename(path + ".tmp", path)
    return paths


def _cut(photo: Image.Image, rng: random.Random) -> Image.Image:
    """A random 4:3 (or 3:4) crop of at least half the photo's side, 500x375..800x600."""
    width = rng.randint(500, 800)
    size = (width, width * 3 // 4) if rng.random() < 0.8 else (width * 3 // 4, width)
    scale = rng.uniform(0.5, 1.0) * min(photo.width / size[0], photo.height / size[1])
    box_w, box_h = int(size[0] * scale), int(size[1] * scale)
    left, top = rng.randint(0, photo.width - box_w), rng.randint(0, photo.height - box_h)
    cut = photo.resize(size, Image.Resampling.BICUBIC, box=(left, top, left + box_w, top + box_h))
    return cut.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else cut


def products10k_tree(pool: list[str], root: str) -> str:
    """The first len(pool) images as a Products-10K folder layout (hard links)."""
    if os.path.exists(os.path.join(root, "train.csv")):
        return root
    os.makedirs(os.path.join(root, "train"), exist_ok=True)
    rows = ["name,class,group"]
    for i, path in enumerate(pool):
        os.link(path, os.path.join(root, "train", f"{i}.jpg"))
        rows.append(f"{i}.jpg,{i // PER_CLASS},{i // PER_CLASS // 50}")
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    return root


class TreeSampler(threading.Thread):
    """The largest sum of RSS over a process and its descendants, and the CPU
    each of them had used when last seen (worker processes the runner does not
    wait for escape the parent's rusage)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()
        self.cpu_ticks: dict[int, int] = {}

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self.done.wait(0.05):
            tree = _tree(self.pid)
            self.peak = max(self.peak, sum(_rss_pages(p) for p in tree) * page)
            for pid in tree:
                self.cpu_ticks[pid] = max(self.cpu_ticks.get(pid, 0), _cpu_ticks(pid))

    def cpu(self) -> float:
        return sum(self.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parents[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _cpu_ticks(pid: int) -> int:
    """The process's own user + system time (not its children's)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError):
        return 0


def _rss_pages(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1])
    except OSError:
        return 0


def build(root: str, output: str, runner: str, workers: int, code: str) -> dict:
    """One build in a fresh process: wall, CPU, peak tree memory, shard digests, leftovers."""
    shutil.rmtree(output, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": code}
    start = time.perf_counter()
    # run from `code`: `python -c` puts the working folder ahead of PYTHONPATH
    child = subprocess.Popen([sys.executable, "-c", _BUILD, root, output, runner, str(workers)],
                             env=env, cwd=code, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    sampled = TreeSampler(child.pid)
    sampled.start()
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    sampled.done.set()
    sampled.join()
    if status != 0:
        raise RuntimeError(f"{runner} build of {root} failed (status {status})")
    digests, files = (json.loads(line) for line in stdout.strip().splitlines()[-2:])
    cpu = max(usage.ru_utime + usage.ru_stime, sampled.cpu())
    return {"wall": wall, "cpu": cpu, "peak": sampled.peak,
            "maxrss": usage.ru_maxrss * 1024, "digests": digests, "files": files}


def plain_code(paths: list[str], probes: bool = False) -> float:
    """CPU seconds of the unavoidable per-image work, in one plain loop. With `probes`,
    the hashes come from the build's own image_hashes (the pHash, bit-identical to
    imagehash's and faster, and the probe hashes that find edited copies): the per-image
    work of a build that looks for edited copies, which the issue's loop predates."""
    hashed = image_hashes if probes else imagehash.phash
    start = time.process_time()
    with tempfile.TemporaryFile() as out:
        for path in paths:
            with open(path, "rb") as f:
                data = f.read()
            with Image.open(io.BytesIO(data)) as image:
                scale = SHORTER_SIDE / min(image.size)
                image.draft("RGB", (int(image.width * scale), int(image.height * scale)))
                rgb = image.convert("RGB")
            hashed(rgb)
            encoded = io.BytesIO()
            rgb.save(encoded, "JPEG", quality=90)
            out.write(encoded.getvalue())
    return time.process_time() - start


def per_image(small: int, large: int, at_small: float, at_large: float) -> tuple[float, float]:
    """(cost per extra image, fixed cost) from the figures at two sizes."""
    slope = (at_large - at_small) / (large - small)
    return slope, at_small - slope * small


def report(sizes: list[int], rows: dict[str, dict[int, dict]], plain: dict[int, float],
           probed: dict[int, float]) -> None:
    small, large = sizes[0], sizes[-1]
    plain_slope, _ = per_image(small, large, plain[small], plain[large])
    probed_slope, _ = per_image(small, large, probed[small], probed[large])
    for name, slope, at in (("plain code", plain_slope, plain), ("plain code + probe hashes", probed_slope, probed)):
        print(f"{name}: {slope * 1000:.2f} ms CPU per image ({', '.join(f'{at[n]:.1f} s at {n}' for n in sizes)})")
    print(f"{'runner':32} {'wall s':>15} {'CPU ms/img':>11} {'vs plain':>9} {'vs +probes':>10} {'fixed CPU s':>12} "
          f"{'peak MB':>15} {'KB per extra img':>17}")
    for name, by_size in rows.items():
        cpu, fixed = per_image(small, large, by_size[small]["cpu"], by_size[large]["cpu"])
        memory, _ = per_image(small, large, by_size[small]["peak"], by_size[large]["peak"])
        walls = " / ".join(f"{by_size[n]['wall']:.1f}" for n in sizes)
        peaks = " / ".join(f"{by_size[n]['peak'] / 2**20:.0f}" for n in sizes)
        print(f"{name:32} {walls:>15} {cpu * 1000:11.2f} {cpu / plain_slope:8.2f}x {cpu / probed_slope:9.2f}x {fixed:12.1f} "
              f"{peaks:>15} {memory / 1024:17.1f}")


def identity(rows: dict[str, dict[int, dict]], sizes: list[int]) -> None:
    for n in sizes:
        digests = {name: by_size[n]["digests"] for name, by_size in rows.items()}
        first = next(iter(digests.values()))
        same = all(d == first for d in digests.values())
        print(f"{n} images: {len(first)} shards, byte-identical across {', '.join(digests)}: {same}")
        leftovers = {name: [f for f in by_size[n]["files"] if f.startswith("_work")]
                     for name, by_size in rows.items()}
        print(f"  _work left after publish: {leftovers}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,8000")
    parser.add_argument("--runners", default="local,local-multiprocess")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--photos", default="out/photos")
    parser.add_argument("--work", default="out/bench-scale")
    parser.add_argument("--baseline-code", help="another checkout to build with too (local runner)")
    args = parser.parse_args()
    args.work = os.path.abspath(args.work)
    sizes = sorted(int(n) for n in args.sizes.split(","))
    pool = photo_pool(photo_paths(args.photos), os.path.join(args.work, "pool"), sizes[-1])
    code = os.path.abspath(os.environ.get("PYTHONPATH") or os.getcwd())
    runs = [(r, r, code) for r in args.runners.split(",")]
    if args.baseline_code:
        runs.append(("local, --baseline-code", "local", os.path.abspath(args.baseline_code)))
    rows: dict[str, dict[int, dict]] = {name: {} for name, _, _ in runs}
    plain: dict[int, float] = {}
    probed: dict[int, float] = {}
    for n in sizes:
        root = products10k_tree(pool[:n], os.path.join(args.work, f"products10k-{n}"))
        plain[n] = plain_code(pool[:n])
        probed[n] = plain_code(pool[:n], probes=True)
        for name, runner, checkout in runs:
            rows[name][n] = build(root, os.path.join(args.work, "output"), runner, args.num_workers, checkout)
            row = rows[name][n]
            print(f"{n} images, {name}: {row['wall']:.1f} s wall, {row['cpu']:.1f} s CPU, peak "
                  f"{row['peak'] / 2**20:.0f} MB (largest process {row['maxrss'] / 2**20:.0f} MB)", flush=True)
    report(sizes, rows, plain, probed)
    identity(rows, sizes)


if __name__ == "__main__":
    main()
