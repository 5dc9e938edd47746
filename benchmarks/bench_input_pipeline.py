"""Trainer input pipeline throughput: shards -> augmented batches, images/s.

    .venv/bin/python -m benchmarks.bench_input_pipeline [--dataset DIR] [--images 4096] [--rounds 2]

Builds the generated sample (unibed.sample + unibed.dataplane.build.launcher, sample recipe)
into a temporary folder unless --dataset names a built dataset, then times
`unibed.trainer.data.train_dataset` at 224 px, batch 64, repeating the dataset for
--images images per row after a warm-up; it prints images/s (wall) and CPU ms per image
summed over tf.data's threads, whose inverse times the core count is the
throughput the cores could give with nothing else running. Side by side in the same run:
the default uint8 batch and the same as float32 (what rounding to uint8 saves),
no augmentation, saturation or hue jitter on, and the same crop pipeline decoding the
whole JPEG before cropping (what decode_and_crop_jpeg avoids), the crop's
decode + resize alone (the floor: flip and jitter cost the rest) and a
uint8 batch with no jitter (what moving the jitter onto the accelerator
would leave on the host). Rows are
interleaved over --rounds and the best round is reported: the machine is
shared, so compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import replace

import tensorflow as tf

from unibed.schemas import features
from unibed.trainer.augment import AugmentConfig, augment_jpeg
from unibed.trainer.data import load_manifest, shard_paths, train_dataset
from unibed.trainer.features import parse_example

SIZE, BATCH = 224, 64


def build_sample(workdir: str) -> str:
    from unibed.dataplane.build.launcher import build_dataset
    from unibed.dataplane.recipes import load_recipe
    from unibed.sample import generate_sample

    sample = os.path.join(workdir, "sample")
    generate_sample(sample)
    recipe = load_recipe("recipes/sample.yaml")
    recipe = recipe.with_source_locations({s.name: os.path.join(sample, s.name) for s in recipe.sources})
    return build_dataset(recipe.with_overrides(output=os.path.join(workdir, "build"))).output


def full_decode_augment(encoded, image_size, config, seed):
    """augment_jpeg's crop, but decoding every pixel first (the comparison row)."""
    return augment_jpeg(encoded, image_size, config, seed, crop_decode=False)


def crop_resize_only(encoded, image_size, config, seed):
    """The random crop's decode + resize into a uint8 batch, no flip or jitter: the floor."""
    image = augment_jpeg(encoded, image_size, replace(config, flip=False, brightness=0.0, contrast=0.0), seed)
    return tf.cast(image + 0.5, tf.uint8)


def uint8_no_jitter(encoded, image_size, config, seed):
    """Crop and flip, batched as uint8, colour jitter left to the accelerator (not wired
    into the trainer: its model takes float32 batches); the ceiling of that design."""
    image = augment_jpeg(encoded, image_size, replace(config, brightness=0.0, contrast=0.0), seed)
    return tf.cast(image + 0.5, tf.uint8)


def same_harness(root, manifest, augment_fn):
    """The records, seeds and batching of train_dataset around a given decode+augment fn."""
    paths = shard_paths(root, manifest, "train")
    records = tf.data.Dataset.from_tensor_slices(paths).repeat().interleave(
        tf.data.TFRecordDataset, cycle_length=len(paths), num_parallel_calls=tf.data.AUTOTUNE)
    seeds = tf.data.Dataset.random(seed=1).batch(2)
    config = AugmentConfig()

    def decode(serialized, seed):
        parsed = parse_example(serialized)
        return augment_fn(parsed[features.ENCODED], SIZE, config, seed), parsed[features.LABEL]

    ds = tf.data.Dataset.zip((records, seeds)).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def measure(ds, images: int) -> tuple[float, float]:
    """(images/s of wall time, CPU ms per image summed over all threads)."""
    it = iter(ds)
    for _ in range(5):  # warm-up: threads, autotune, page cache
        next(it)
    batches = max(1, images // BATCH)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(it)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return batches * BATCH / wall, 1000 * cpu / (batches * BATCH)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", help="a built dataset folder (default: build the sample)")
    parser.add_argument("--images", type=int, default=4096, help="images timed per row and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    workdir = None
    try:
        root = args.dataset
        if root is None:
            workdir = tempfile.mkdtemp(prefix="unibed-bench-pipeline-")
            start = time.perf_counter()
            root = build_sample(workdir)
            print(f"built the sample in {time.perf_counter() - start:.0f} s: {root}")
        manifest = load_manifest(root)
        train = manifest.splits["train"]
        print(f"train split: {train.num_records} records in {len(train.shards)} shards, "
              f"{train.num_bytes / train.num_records / 1024:.1f} KiB per stored image (record bytes / records)")
        print(f"{os.cpu_count()} CPUs visible; {SIZE} px, batch {BATCH}, {args.images} images per row, "
              f"best of {args.rounds} rounds\n")

        def pipeline(augment, image_dtype=tf.uint8):
            return train_dataset(root, manifest, global_batch_size=BATCH, image_size=SIZE, augment=augment, seed=0,
                                 image_dtype=image_dtype)

        rows = {
            "train_dataset, default augmentation (uint8 batch)": lambda: pipeline(AugmentConfig()),
            "train_dataset, default augmentation, float32 batch": lambda: pipeline(AugmentConfig(), tf.float32),
            "train_dataset, AugmentConfig.none() (centre square)": lambda: pipeline(AugmentConfig.none()),
            "train_dataset, default + saturation 0.1": lambda: pipeline(replace(AugmentConfig(), saturation=0.1)),
            "train_dataset, default + hue 0.02": lambda: pipeline(replace(AugmentConfig(), hue=0.02)),
            "same harness, decode_and_crop_jpeg": lambda: same_harness(root, manifest, augment_jpeg),
            "same harness, full decode then crop": lambda: same_harness(root, manifest, full_decode_augment),
            "same harness, uint8, crop decode + resize only (the floor)":
                lambda: same_harness(root, manifest, crop_resize_only),
            "same harness, uint8 batch, no jitter (jitter on the accelerator)":
                lambda: same_harness(root, manifest, uint8_no_jitter),
        }
        best = {name: (0.0, float("inf")) for name in rows}
        for _ in range(args.rounds):
            for name, make in rows.items():
                rate, cpu_ms = measure(make(), args.images)
                best[name] = (max(best[name][0], rate), min(best[name][1], cpu_ms))
        cores = len(os.sched_getaffinity(0))
        width = max(map(len, rows))
        print(f"{'':<{width}}  {'images/s':>9}  {'CPU ms/img':>10}  {f'{cores} cores x 1/CPU':>16}")
        for name, (rate, cpu_ms) in best.items():
            print(f"{name:<{width}}  {rate:9.0f}  {cpu_ms:10.2f}  {cores * 1000 / cpu_ms:16.0f}")
        crop, full = best["same harness, decode_and_crop_jpeg"][1], best["same harness, full decode then crop"][1]
        print(f"\nfull decode then crop costs {full / crop:.2f}x the CPU of the crop-window decode")
        floor = best["same harness, uint8, crop decode + resize only (the floor)"][1]
        no_jitter = best["same harness, uint8 batch, no jitter (jitter on the accelerator)"][1]
        default, as_float = (best[name][1] for name in list(rows)[:2])
        print(f"1,000 images/s on {cores} cores needs <= {cores:.0f} ms CPU per image: default {default:.2f} ms "
              f"({as_float:.2f} ms as float32), without jitter {no_jitter:.2f} ms, crop decode + resize {floor:.2f} ms")
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {cores} cores "
              "(images/s is wall time on a shared machine; CPU ms/img is the steadier figure)")
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
