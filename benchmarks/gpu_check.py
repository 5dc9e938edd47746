"""GPU check under Keras 3's JAX backend (run by benchmarks/gpu_check.sh; figures, never pass/fail).

    KERAS_BACKEND=jax python -m benchmarks.gpu_check                  # ViT-H/14, 224 px, bf16
    KERAS_BACKEND=jax python -m benchmarks.gpu_check --preset tiny --image-size 64 \\
        --head-batches 64 --finetune-batches 32 --steps 3           # the CPU proof, a minute

The lent GPU machine has JAX and PyTorch but no TensorFlow, so this drives the
trainer's own model code (unibed.trainer.model.build_models: keras-hub's CLIP
vision encoder, the pooled feature, Dropout, Dense(64), ArcFace) through Keras's
JAX trainer instead of the TensorFlow loop in unibed/trainer/train.py:
1. 20 steps of the tiny config on the generated sample (benchmarks/gpu_check_prepare.py
   writes it as sample.npz), then the embedding model saved as a .keras file,
   reloaded and checked to give the same embeddings. The TensorFlow SavedModel
   export (unibed/trainer/export.py) needs TensorFlow and is not run here;
2. training images/s of the preset with random weights, per stage (head only on
   a frozen backbone, then everything), at the largest batch of the candidates
   that fits, compiled by XLA (jit_compile=True) and op by op (False), with
   the device's peak memory.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time

import keras
import numpy as np

from unibed.trainer.config import get_config
from unibed.trainer.model import build_models

STAGES = ("head", "finetune")


def is_oom(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}"
    return any(s in text for s in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory",
                                   "OOM", "Resource exhausted"))


def peak_memory_gib() -> float | None:
    """The accelerator's peak bytes in use so far (None where the backend does not say)."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**30


def compile_stage(models, stage: str, jit: bool, lr: float) -> None:
    models.encoder.trainable = stage == "finetune"
    models.training.compile(
        optimizer=keras.optimizers.AdamW(lr, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)


def synthetic_batch(batch: int, image_size: int, num_classes: int, seed: int = 0):
    """A batch made on the device, so the figure is the step, not the host copy."""
    import jax

    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    images = jax.random.uniform(k1, (batch, image_size, image_size, 3), maxval=255.0)
    labels = jax.random.randint(k2, (batch,), 0, num_classes, dtype="int32")
    return images, labels


def time_steps(models, batch: int, image_size: int, num_classes: int, steps: int,
               warmup: int) -> tuple[float, float]:
    """(images/s over `steps` train steps, seconds of the `warmup` steps before them:
    the first one compiles)."""
    images, labels = synthetic_batch(batch, image_size, num_classes)
    t0 = time.perf_counter()
    for _ in range(warmup):
        models.training.train_on_batch([images, labels], labels)
    t1 = time.perf_counter()
    for _ in range(steps):
        loss = models.training.train_on_batch([images, labels], labels)
    float(np.asarray(loss).reshape(-1)[0])  # the last step has finished
    return batch * steps / (time.perf_counter() - t1), t1 - t0


def largest_batch_rate(models, stage: str, jit: bool, candidates: list[int], args,
                       num_classes: int) -> tuple[int, float, float] | None:
    """(batch, images/s, warm-up seconds) at the first candidate (largest first) that
    fits; None if none."""
    for batch in candidates:
        compile_stage(models, stage, jit, 1e-4)
        try:
            rate, warmup_s = time_steps(models, batch, args.image_size, num_classes,
                                        args.steps if jit else max(1, args.steps // 3),
                                        args.warmup)
            return batch, rate, warmup_s
        except Exception as e:  # only out-of-memory moves on to a smaller batch
            if not is_oom(e):
                raise
            print(f"  {stage:8s} jit={jit!s:5s} batch {batch}: out of memory, trying smaller")
            gc.collect()
    return None


def throughput(args) -> None:
    config = get_config(args.preset).with_overrides(image_size=args.image_size,
                                                    pooled_feature=args.pooled_feature)
    keras.mixed_precision.set_global_policy(
        {"bf16": "mixed_bfloat16", "float32": "float32"}[args.precision])
    keras.utils.set_random_seed(0)
    t0 = time.perf_counter()
    models = build_models(config, args.classes, random_weights=True)
    print(f"{args.preset} ({config.backbone}), random weights, {args.image_size} px, "
          f"{args.precision}, {models.training.count_params():,} parameters, {args.classes} "
          f"classes; built in {time.perf_counter() - t0:.1f} s")
    candidates = {"head": args.head_batches, "finetune": args.finetune_batches}
    for stage in STAGES:
        for jit in (True, False) if not args.no_eager else (True,):
            found = largest_batch_rate(models, stage, jit, candidates[stage], args, args.classes)
            if found is None:
                print(f"  {stage:8s} jit={jit!s:5s}: no candidate batch fits")
                continue
            if jit:  # op by op starts from the batch XLA managed
                candidates[stage] = [b for b in candidates[stage] if b <= found[0]]
            peak = peak_memory_gib()
            print(f"  {stage:8s} jit={jit!s:5s} batch {found[0]:5d}: {found[1]:9.2f} images/s "
                  f"(warm-up incl. compilation {found[2]:.1f} s)"
                  + ("" if peak is None else f", peak device memory so far {peak:.1f} GiB"),
                  flush=True)
    keras.mixed_precision.set_global_policy("float32")


def sample_training(path: str, steps: int) -> None:
    """The tiny config's two stages on the sample, then the .keras round trip."""
    data = np.load(path)
    images, labels = data["images"].astype("float32"), data["labels"]
    num_classes = int(data["num_classes"])
    config = get_config("tiny")
    keras.utils.set_random_seed(config.seed)
    models = build_models(config, num_classes)
    rng = np.random.default_rng(config.seed)
    losses = []
    for stage, lr in (("head", config.head_lr), ("finetune", config.finetune_lr)):
        compile_stage(models, stage, True, lr)
        for _ in range(steps // 2):
            idx = rng.choice(len(labels), config.global_batch_size, replace=False)
            out = models.training.train_on_batch([images[idx], labels[idx]], labels[idx])
            losses.append(float(np.asarray(out).reshape(-1)[0]))
    print(f"sample: {len(labels)} train images, {num_classes} classes; {len(losses)} steps "
          f"(batch {config.global_batch_size}), loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    check_keras_export(models.embedding, images[:8])


def check_keras_export(embedding_model, images: np.ndarray) -> None:
    want = np.asarray(embedding_model.predict(images, verbose=0))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "embedding.keras")
        embedding_model.save(path)
        size = os.path.getsize(path)
        got = np.asarray(keras.saving.load_model(path).predict(images, verbose=0))
    norms = np.linalg.norm(got, axis=1)
    print(f"export: embedding.keras {size / 2**20:.1f} MiB, reloaded embeddings {got.shape}, "
          f"unit norm {np.allclose(norms, 1, atol=1e-4)}, max difference "
          f"{float(np.abs(got - want).max()):.2e}")
    if got.shape != want.shape or not np.allclose(got, want, atol=1e-4):
        raise SystemExit("the reloaded embedding model gives other embeddings")


def _batches(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",")}, reverse=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="vit_h14")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--pooled-feature", default="cls", choices=["cls", "projected"])
    p.add_argument("--precision", default="bf16", choices=["bf16", "float32"])
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--head-batches", type=_batches, default=_batches("2048,1024,512,256"))
    p.add_argument("--finetune-batches", type=_batches, default=_batches("256,192,128,96,64"))
    p.add_argument("--steps", type=int, default=10, help="timed steps (a third of them op by op)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-eager", action="store_true", help="skip the op-by-op (no XLA) runs")
    p.add_argument("--sample", default=".gpu_check/sample.npz")
    p.add_argument("--sample-steps", type=int, default=20)
    args = p.parse_args()
    import jax

    print(f"keras {keras.__version__} backend {keras.backend.backend()}, jax {jax.__version__}, "
          f"devices {[d.device_kind for d in jax.devices()]}")
    # the short part first: its figures are in even if the throughput runs hit a time limit
    if os.path.exists(args.sample):
        sample_training(args.sample, args.sample_steps)
    else:
        print(f"sample: {args.sample} missing (benchmarks/gpu_check_prepare.py writes it)")
    throughput(args)


if __name__ == "__main__":
    main()
