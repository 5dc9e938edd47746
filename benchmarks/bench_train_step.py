"""Training step time (printed, never pass/fail).

    .venv/bin/python -m benchmarks.bench_train_step                 # tiny config, both stages
    .venv/bin/python -m benchmarks.bench_train_step --preset vit_l14 --batch 2 --steps 3

Synthetic in-memory batches, so this is the model's step (forward, backward,
optimizer update) without input-pipeline cost. A preset is built from its
known architecture with random weights (nothing is downloaded).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import tensorflow as tf

from unibed.trainer.config import PRESET_NAMES, get_config
from unibed.trainer.train import train


def _dataset(image_size: int, num_classes: int):
    def make(global_batch_size: int, seed: int) -> tf.data.Dataset:
        rng = np.random.default_rng(seed)
        images = rng.uniform(0, 255, (global_batch_size, image_size, image_size, 3))
        labels = rng.integers(0, num_classes, global_batch_size)
        ds = tf.data.Dataset.from_tensors((images.astype("float32"), labels.astype("int32")))
        return ds.repeat()
    return make


def bench(preset: str, batch: int, steps: int, warmup: int, num_classes: int) -> None:
    config = get_config(preset).with_overrides(
        global_batch_size=batch, head_steps=warmup + steps, finetune_steps=warmup + steps,
        head_epochs=0.0, finetune_epochs=0.0, log_every_steps=1, checkpoint_every_steps=10**9)
    times: dict[str, list[float]] = {"head": [], "finetune": []}
    last = [time.perf_counter()]

    def on_event(event: dict) -> None:
        now = time.perf_counter()
        if event["event"] == "train":
            times[event["stage"]].append(now - last[0])
        last[0] = now

    with tempfile.TemporaryDirectory() as workdir:
        result = train(config, _dataset(config.image_size, num_classes), num_classes, workdir,
                       on_event=on_event, random_backbone=preset != "tiny")
    params = result.models.training.count_params()
    print(f"{preset}: image {config.image_size}px, batch {batch}, {params:,} parameters, "
          f"{num_classes} classes, policy {result.policy}, "
          f"{result.strategy.num_replicas_in_sync} replica(s)")
    for stage, ts in times.items():
        ts = ts[warmup:]  # the first steps trace and compile
        ms = 1000 * float(np.median(ts))
        print(f"  stage {stage:8s}: {ms:8.1f} ms/step  {batch / ms * 1000:8.1f} images/s "
              f"(median of {len(ts)} steps after {warmup} warm-up)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", choices=list(PRESET_NAMES))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--classes", type=int, default=30)
    args = p.parse_args()
    bench(args.preset, args.batch, args.steps, args.warmup, args.classes)


if __name__ == "__main__":
    main()
