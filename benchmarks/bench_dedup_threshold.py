"""Choose the near-duplicate threshold from measured precision and recall.

Positives: each generated sample image against copies of itself under the
edits that make near duplicates in practice (re-encoding, resizing, crops,
brightness and colour shifts, small rotations, a caption overlay), at mild
and strong settings. Negatives: every pair of distinct original images -
including instances of the same class, the hard negatives a dedup must keep.
Hashes are the build's own (pHash of the stored pixels, via preprocess).

pHash sets exactly half its bits (those above the median), so distances
between two hashes are even: odd thresholds add nothing. The sample generator
keeps unrelated images at least 13 bits apart, so precision measured here
is optimistic above ~12. Prints, per Hamming threshold, pair precision and recall (overall and per
edit), and the threshold with the best recall at precision >= 0.999.

    .venv/bin/python -m benchmarks.bench_dedup_threshold [--out out/bench-sample]
"""

from __future__ import annotations

import argparse
import io
import json
import os
from collections import defaultdict

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from unibed.dataplane.images.preprocess import ProcessedImage, preprocess
from unibed.dataplane.sources import iter_source, open_index
from unibed.sample import generate_sample
from unibed.schemas.recipe import ImageSpec
from unibed.schemas.source_record import SourceImage


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    w, h = image.size
    dx, dy = int(w * fraction), int(h * fraction)
    return image.crop((dx, dy, w - dx, h - dy))


def _caption(image: Image.Image) -> Image.Image:
    out = image.copy()
    w, h = out.size
    ImageDraw.Draw(out).rectangle((0, int(h * 0.88), w, h), fill=(255, 255, 255))
    return out


EDITS = {
    "reencode_q50": lambda im: _jpeg(im, 50),
    "reencode_q30": lambda im: _jpeg(im, 30),
    "resize_0.5": lambda im: _jpeg(im.resize((im.width // 2, im.height // 2))),
    "resize_0.25": lambda im: _jpeg(im.resize((im.width // 4, im.height // 4))),
    "crop_3pct": lambda im: _jpeg(_crop(im, 0.03)),
    "crop_8pct": lambda im: _jpeg(_crop(im, 0.08)),
    "crop_15pct": lambda im: _jpeg(_crop(im, 0.15)),
    "brightness_+10": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(1.1)),
    "brightness_+30": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(1.3)),
    "saturation_x0.5": lambda im: _jpeg(ImageEnhance.Color(im).enhance(0.5)),
    "rotate_2deg": lambda im: _jpeg(im.rotate(2, resample=Image.Resampling.BICUBIC)),
    "rotate_5deg": lambda im: _jpeg(im.rotate(5, resample=Image.Resampling.BICUBIC)),
    "caption_12pct": lambda im: _jpeg(_caption(im)),
}


def _hash(data: bytes, spec: ImageSpec) -> int | None:
    result = preprocess(data, spec)
    return result.phash if isinstance(result, ProcessedImage) else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="out/bench-sample")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.out, "ground_truth.json")):
        generate_sample(args.out)
    spec = ImageSpec()
    originals: list[tuple[str, str, int]] = []  # key, class, phash
    positives: dict[str, list[int]] = defaultdict(list)
    seen_bytes = set()
    for source, layout in (("imagenet", "kaggle_folder"), ("products10k", "folder"), ("gldv2", "tars")):
        for item in iter_source(open_index(source, f"{args.out}/{source}", layout)):
            if not isinstance(item, SourceImage):
                continue
            h = _hash(item.data, spec)
            if h is None or item.data in seen_bytes:
                continue
            seen_bytes.add(item.data)
            originals.append((item.record.key, f"{source}/{item.record.label}", h))
            image = Image.open(io.BytesIO(item.data)).convert("RGB")
            for name, edit in EDITS.items():
                edited = _hash(edit(image), spec)
                if edited is not None:
                    positives[name].append(int(np.bitwise_count(np.uint64(h ^ edited))))

    hashes = np.array([h for _, _, h in originals], dtype=np.uint64)
    classes = np.array([c for _, c, _ in originals])
    distances = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    upper = np.triu_indices(len(hashes), 1)
    negative = distances[upper]
    same_class = (classes[:, None] == classes[None, :])[upper]
    # the sample's own planted duplicates are not negatives
    with open(os.path.join(args.out, "ground_truth.json")) as f:
        groups = [set(g["members"]) for g in json.load(f)["duplicate_groups"]]
    keys = [k for k, _, _ in originals]
    negative_mask = np.array([
        not any(keys[i] in g and keys[j] in g for g in groups) for i, j in zip(*upper)
    ])
    negative, same_class = negative[negative_mask], same_class[negative_mask]
    all_positive = np.concatenate([np.array(v) for v in positives.values()])

    print(f"{len(originals)} originals, {len(all_positive)} edited copies, "
          f"{len(negative)} negative pairs ({int(same_class.sum())} within a class)")
    print(f"{'t':>3s} {'recall':>7s} {'precision':>9s} {'false pairs':>11s} {'same-class false':>16s}")
    best = None
    for t in range(21):
        true_pos = int((all_positive <= t).sum())
        false_pos = int((negative <= t).sum())
        recall = true_pos / len(all_positive)
        precision = true_pos / max(1, true_pos + false_pos)
        print(f"{t:3d} {recall:7.3f} {precision:9.4f} {false_pos:11d} {int((negative[same_class] <= t).sum()):16d}")
        if precision >= 0.999:
            best = t
    print("\nrecall per edit at t = 4, 6, 8, 10, 12:")
    for name, values in positives.items():
        v = np.array(values)
        print(f"  {name:16s} " + "  ".join(f"{(v <= t).mean():.2f}" for t in (4, 6, 8, 10, 12)))
    print(f"\nlargest threshold with precision >= 0.999: {best}")
    print(f"negative distances: min {int(negative.min())}, 0.1th percentile {np.percentile(negative, 0.1):.0f}, "
          f"median {np.median(negative):.0f}")


if __name__ == "__main__":
    main()
