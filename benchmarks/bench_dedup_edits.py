"""Which edited copies of real photographs the near-duplicate search finds: pHash alone
(today's rule) against pHash + probe hashes, per edit; false merges; cost.

    .venv/bin/python -m benchmarks.bench_dedup_edits [--photos out/photos] [--sizes 1e6 4e6]

Photographs: benchmarks/real_photos.py (Debian wallpaper packages and the scikit-image /
scikit-learn sample images, ~50 distinct pictures, cached under --photos). Every hash is
the build's own: each photo and each edited copy goes through `preprocess` (the stored
pixels' pHash and probes).

Positives: each photo against its copy under each edit of unibed.sample.edits (mirror,
crops of 4/8/12% per side, black letterbox and grey pillarbox bars, a caption strip,
greyscale, a turn by 2-5 degrees either way with black corners, downscale + JPEG q30),
and the same turns cropped to fit, reported apart (see bench_edits). Negatives: every pair of distinct photos,
plus hard negatives: the left and right halves (and top and bottom halves) of each
photo, which share its scene, light and colours but not its content (the left and right
halves of a left-right symmetric photo are mirror copies of each other: listed apart). skimage's
motorcycle_left/right (a stereo pair: one scene shifted by a few pixels) is reported on
its own line: its pHashes are 4 bits apart, a near duplicate to any pHash threshold.

Prints, per edit, recall today (pHash within the threshold) and after (or any probe rule),
with the kinds that matched; the false merges of each rule among the negatives; recall and
false merges per probe radius 0..4 (the evidence for the default radius); the hashing cost
per image (pHash alone vs pHash + probes, one run); and the search time over uniform
random hashes at each size: today's pHash search, and the probe search added to it.
"""

from __future__ import annotations

import argparse
import io
import itertools
import time
from collections import Counter

import numpy as np
from PIL import Image

from benchmarks.real_photos import photo_paths
from unibed.dataplane.dedup.hamming_search import find_pairs
from unibed.dataplane.dedup.probe_search import find_probe_pairs
from unibed.dataplane.images.phash import phash
from unibed.dataplane.images.preprocess import ProcessedImage, preprocess
from unibed.dataplane.images.robust_hashes import IDENTITY, Rule, image_hashes, rules_from
from unibed.sample.edits import EDITS, rotated
from unibed.sample.encoding import encode_jpeg
from unibed.schemas.recipe import DedupSpec, ImageSpec

STEREO_PAIR = ("motorcycle_left", "motorcycle_right")
UNTARGETED = "rotate_2-5deg_fit"
OCCASIONAL = 0.05
SYMMETRIC_MAX_DISTANCE = 6


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def hashes_of(data: bytes, spec: ImageSpec) -> dict[str, int]:
    result = preprocess(data, spec)
    assert isinstance(result, ProcessedImage), result
    return {IDENTITY: result.phash, **dict(result.probes)}


def matches(a: dict, b: dict, threshold: int, rules: tuple[Rule, ...]) -> list[tuple[int, str]]:
    """(distance, kind) of every hash pair of a and b within its rule, either direction."""
    found = []
    if (a[IDENTITY] ^ b[IDENTITY]).bit_count() <= threshold:
        found.append(((a[IDENTITY] ^ b[IDENTITY]).bit_count(), IDENTITY))
    for x, y in ((a, b), (b, a)):
        for probe, target, radius in rules:
            if probe in x and target in y and (x[probe] ^ y[target]).bit_count() <= radius:
                found.append(((x[probe] ^ y[target]).bit_count(), probe))
    return sorted(found)


def halves(image: Image.Image) -> list[Image.Image]:
    w, h = image.size
    return [image.crop((0, 0, w // 2, h)), image.crop((w - w // 2, 0, w, h)),
            image.crop((0, 0, w, h // 2)), image.crop((0, h - h // 2, w, h))]


def bench_edits() -> dict:
    """unibed.sample.edits' edits, its fixed 3-degree turn replaced by turns of 2-5 degrees
    either way (drawn per photo, seeded), filled corners; plus the same turns cropped to
    fit (no corners: measured, and not among the edits the probes are built for)."""
    edits = {name: (lambda im, rng, e=edit: e(im)) for name, edit in EDITS.items() if name != "rotate_3deg"}
    edits["rotate_2-5deg"] = lambda im, rng: encode_jpeg(rotated(im, _angle(rng), fit=False))
    edits[UNTARGETED] = lambda im, rng: encode_jpeg(rotated(im, _angle(rng), fit=True))
    return edits


def _angle(rng) -> float:
    return float(rng.uniform(2, 5) * rng.choice([-1, 1]))


def recall_table(photos, originals, copies, threshold, rules) -> None:
    print(f"\n{'edit':18s} {'copies':>6s} {'today':>6s} {'after':>6s}  matched by (kind: copies)")
    total = Counter()
    for edit in bench_edits():
        today = after = 0
        kinds = Counter()
        for name in photos:
            found = matches(originals[name], copies[name, edit], threshold, rules)
            today += any(kind == IDENTITY for _, kind in found)
            after += bool(found)
            kinds.update({kind for _, kind in found})
        n = len(photos)
        if edit != UNTARGETED:
            total.update(copies=n, today=today, after=after)
        print(f"{edit:18s} {n:6d} {today / n:6.2f} {after / n:6.2f}  "
              + ", ".join(f"{k}: {c}" for k, c in sorted(kinds.items())))
    print(f"{'all but the last':18s} {total['copies']:6d} {total['today'] / total['copies']:6.2f} "
          f"{total['after'] / total['copies']:6.2f}")


def negatives(photos, originals, parts) -> list[tuple[str, str, dict, dict]]:
    """Distinct photos pairwise; each photo's left/right and top/bottom halves against each
    other; every half against every other photo and its halves."""
    pairs = [(a, b, originals[a], originals[b]) for a, b in itertools.combinations(photos, 2)
             if {a, b} != set(STEREO_PAIR)]
    for name in photos:
        left, right, top, bottom = parts[name]
        pairs.append((f"{name}#top", f"{name}#bottom", top, bottom))
        if not _own_mirror(originals[name]):
            pairs.append((f"{name}#left", f"{name}#right", left, right))
    for a, b in itertools.permutations(photos, 2):
        if {a, b} != set(STEREO_PAIR):
            pairs += [(f"{a}#{i}", b, half, originals[b]) for i, half in enumerate(parts[a])]
            if a < b:
                pairs += [(f"{a}#{i}", f"{b}#{j}", x, y) for i, x in enumerate(parts[a])
                          for j, y in enumerate(parts[b])]
    return pairs


def _own_mirror(hashes: dict) -> bool:
    """A left-right symmetric picture: its mirror probe is near its own pHash. Its left half
    mirrored is its right half, so the two halves are mirror copies, not negatives."""
    return (hashes["mirror"] ^ hashes[IDENTITY]).bit_count() <= SYMMETRIC_MAX_DISTANCE


def false_merge_table(negative_pairs, threshold, rules) -> None:
    merged = Counter()
    closest = {}
    for a, b, ha, hb in negative_pairs:
        for distance, kind in matches(ha, hb, 64, tuple(r._replace(radius=64) for r in rules)):
            closest[kind] = min(closest.get(kind, 64), distance)
        found = matches(ha, hb, threshold, rules)
        merged.update({kind for _, kind in found})
        if found:
            print(f"  false merge: {a} ~ {b} by {found}")
    print(f"\n{len(negative_pairs)} negative pairs (distinct photos, and halves of one photo "
          "against each other and every other photo)")
    for kind in [IDENTITY, *sorted({r.probe for r in rules})]:
        print(f"  {kind:8s} false merges {merged[kind]:3d}   closest negative {closest.get(kind, '-')}")


def radius_table(photos, originals, copies, negative_pairs, threshold) -> None:
    print("\nprobe radius (every kind) -> recall over all edits, false merges (pHash at "
          f"{threshold} included):")
    for radius in range(5):
        rules = rules_from(dict.fromkeys(DedupSpec().probes.model_dump(), radius))
        edits = [e for e in bench_edits() if e != UNTARGETED]
        found = sum(bool(matches(originals[n], copies[n, e], threshold, rules)) for n in photos for e in edits)
        false = sum(bool(matches(ha, hb, threshold, rules)) for _, _, ha, hb in negative_pairs)
        print(f"  r={radius}: recall {found / (len(photos) * len(edits)):.3f}, false merges {false}")


def hashing_cost(paths: list[str], spec: ImageSpec) -> None:
    stored = []
    for path in paths:
        result = preprocess(_read(path), spec)
        stored.append(Image.open(io.BytesIO(result.jpeg)).convert("RGB"))
    timings = {}
    for name, function in (("pHash", phash), ("pHash + probes", image_hashes)):
        best = np.inf
        for _ in range(3):
            start = time.process_time()
            for image in stored:
                function(image)
            best = min(best, time.process_time() - start)
        timings[name] = best / len(stored) * 1e3
    start = time.process_time()
    for path in paths:
        preprocess(_read(path), spec)
    whole = (time.process_time() - start) / len(paths) * 1e3
    extra = timings["pHash + probes"] - timings["pHash"]
    print(f"\nhashing cost per stored image (CPU ms, best of 3, {len(stored)} photos, "
          f"mean size {np.mean([s.size for s in stored], axis=0).astype(int).tolist()}):")
    print(f"  pHash {timings['pHash']:.2f}, pHash + probes {timings['pHash + probes']:.2f} "
          f"(x{timings['pHash + probes'] / timings['pHash']:.2f}); whole preprocess with probes "
          f"{whole:.2f}: the probes add {extra:.2f} ms = {extra / (whole - extra) * 100:.0f}% "
          "to the per-image step")


def search_times(sizes: list[int], threshold: int, rules: tuple[Rule, ...]) -> None:
    """Today's pHash search, then the probe search: per (target kind, radius) one search of
    all its probes (every image has a mirror, crop and top85 probe; trim and rotate probes
    are given to OCCASIONAL of the images, more than real photos have bars or filled corners)."""
    print(f"\nsearch time, uniform random hashes, one core (pHash radius {threshold}, "
          f"probe radius {max(r.radius for r in rules)}; trim and rotate probes on "
          f"{OCCASIONAL:.0%} of the images):")
    for n in sizes:
        rng = np.random.default_rng(0)
        ids = rng.integers(0, 2**64, n, dtype=np.uint64)
        start = time.perf_counter()
        find_pairs(ids, threshold)
        today = time.perf_counter() - start
        start = time.perf_counter()
        for (target, radius), kinds in sorted(_by_target(rules).items()):
            counts = [round(n * OCCASIONAL) if k.startswith(("trim", "rotate")) else n for k in kinds]
            probes = rng.integers(0, 2**64, sum(counts), dtype=np.uint64)
            targets = ids if target == IDENTITY else rng.integers(0, 2**64, n, dtype=np.uint64)
            find_probe_pairs(probes, probes if target in kinds else targets, radius)
        probes_s = time.perf_counter() - start
        print(f"  {n:>9,d} images: pHash search {today:6.1f} s; + probe search {probes_s:6.1f} s "
              f"= {today + probes_s:6.1f} s ({(today + probes_s) / today:.2f}x)", flush=True)


def _by_target(rules: tuple[Rule, ...]) -> dict[tuple[str, int], list[str]]:
    grouped: dict[tuple[str, int], list[str]] = {}
    for rule in rules:
        grouped.setdefault((rule.target, rule.radius), []).append(rule.probe)
    return grouped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="out/photos")
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e6, 4e6])
    args = parser.parse_args()
    spec, dedup = ImageSpec(), DedupSpec()
    threshold, rules = dedup.near_hamming_threshold, rules_from(dedup.probes.model_dump())
    paths = photo_paths(args.photos)
    photos = [p.rsplit("/", 1)[-1][:-4] for p in paths]
    images = {n: Image.open(p).convert("RGB") for n, p in zip(photos, paths)}
    originals = {n: hashes_of(_read(p), spec) for n, p in zip(photos, paths)}
    rng = np.random.default_rng(0)
    copies = {(n, e): hashes_of(edit(images[n], rng), spec) for n in photos for e, edit in bench_edits().items()}
    parts = {n: [hashes_of(encode_jpeg(h), spec) for h in halves(images[n])] for n in photos}
    print(f"{len(photos)} photographs, {len(bench_edits())} edits; pHash threshold {threshold}, "
          "probe rules " + ", ".join(f"{r.probe}->{r.target}<={r.radius}" for r in rules))
    recall_table(photos, originals, copies, threshold, rules)
    negative_pairs = negatives(photos, originals, parts)
    false_merge_table(negative_pairs, threshold, rules)
    symmetric = [n for n in photos if _own_mirror(originals[n])]
    for name in symmetric:
        left, right = parts[name][:2]
        print(f"  left-right symmetric: {name} (its pHash and mirror probe "
              f"{(originals[name]['mirror'] ^ originals[name][IDENTITY]).bit_count()} apart): its halves, "
              f"mirror copies of each other, pair at {matches(left, right, threshold, rules)}")
    if all(s in originals for s in STEREO_PAIR):
        a, b = (originals[s] for s in STEREO_PAIR)
        print(f"  stereo pair {'/'.join(STEREO_PAIR)}: pHash distance {(a[IDENTITY] ^ b[IDENTITY]).bit_count()} "
              f"(merged today and after), probe matches {matches(a, b, -1, rules)}")
    radius_table(photos, originals, copies, negative_pairs, threshold)
    hashing_cost(paths, spec)
    search_times([int(s) for s in args.sizes], threshold, rules)


if __name__ == "__main__":
    main()
