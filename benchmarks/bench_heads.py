"""mP@5 on the generated sample by margin head (printed figures, never pass/fail).

    .venv/bin/python -m benchmarks.bench_heads [--steps 160] [--seeds 0 1 2] [--dataset BUILD]

Generates the default sample and builds it with recipes/sample.yaml (or takes
an existing build), then trains the `tiny` config for the same number of steps
(split over the two stages as the preset splits them) with each head and each
seed through the trainer's own run (train -> export -> score the exported
SavedModel: validation queries against the train index, mP@5):

    arcface              ArcFace s=30, m=0.3 (the tiny preset)
    cosface              CosFace / additive margin s=30, m=0.3 (1st place's product)
    subcenter_dynamic    sub-centre ArcFace K=2, dynamic margins 0.05-0.5 by n^(-1/4)
                         (4th place's range) from the manifest's train counts

and prints each run's score, then per head the mean, the sample standard
deviation and the min-max over seeds. A tiny random ViT learnt from scratch on
a few hundred images says little about CLIP ViT-H/14 at 17,691 classes: this
checks the heads train and export end to end and shows the spread seeds give.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

HEADS = {
    "arcface": {},
    "cosface": {"margin_type": "cosface"},
    "subcenter_dynamic": {"subcenters": 2, "dynamic_margin": True, "dynamic_margin_range": (0.05, 0.5)},
}


def build_sample(root: str) -> str:
    """The default generated sample, built with the sample recipe; the build folder."""
    from unibed.dataplane.build.launcher import build_dataset
    from unibed.dataplane.recipes import load_recipe
    from unibed.sample import generate_sample

    generate_sample(os.path.join(root, "sample"))
    recipe = load_recipe(os.path.join(os.path.dirname(__file__), "..", "recipes", "sample.yaml"))
    locations = {s.name: os.path.join(root, "sample", s.name) for s in recipe.sources}
    recipe = recipe.with_source_locations(locations).with_overrides(output=os.path.join(root, "build"))
    return build_dataset(recipe).output


def train_and_score(dataset: str, workdir: str, head: str, seed: int, steps: int) -> dict:
    """One run of the tiny config with `head`'s overrides; its mP@5 and seconds."""
    from unibed.trainer.config import get_config
    from unibed.trainer.run import run, with_total_steps

    config = with_total_steps(get_config("tiny").with_overrides(seed=seed, **HEADS[head]), steps)
    start = time.perf_counter()
    metrics = run(dataset, workdir, config, cache_dir=os.path.join(workdir, "cache"), baseline=False,
                  emit=lambda event: None)
    return {"mp_at_5": metrics["trained"]["mp_at_k"], "seconds": time.perf_counter() - start}


def summarise(scores: dict[str, list[float]]) -> None:
    print(f"\n{'head':18s} {'runs':>4s} {'mean mP@5':>10s} {'std':>7s} {'min':>7s} {'max':>7s}")
    for head, values in scores.items():
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{head:18s} {len(values):4d} {statistics.mean(values):10.4f} {std:7.4f} "
              f"{min(values):7.4f} {max(values):7.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=160, help="training steps per run, both stages")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=list(HEADS))
    parser.add_argument("--dataset", help="an existing build folder (default: generate and build the sample)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-heads-") as root:
        start = time.perf_counter()
        dataset = args.dataset or build_sample(root)
        print(f"dataset {dataset} ready in {time.perf_counter() - start:.0f}s; "
              f"{args.steps} steps per run, seeds {args.seeds}", flush=True)
        scores: dict[str, list[float]] = {head: [] for head in args.heads}
        for seed in args.seeds:  # seeds outermost: a cut-short run still compares every head
            for head in args.heads:
                r = train_and_score(dataset, os.path.join(root, f"{head}-{seed}"), head, seed, args.steps)
                scores[head].append(r["mp_at_5"])
                print(f"{head:18s} seed {seed}: mP@5 {r['mp_at_5']:.4f} ({r['seconds']:.0f}s)", flush=True)
        summarise(scores)


if __name__ == "__main__":
    main()
