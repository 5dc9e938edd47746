"""Closed-set vs open-set mP@5 of the tiny model on the generated sample, for several seeds.

For each seed: the sample generated with that seed, built with recipes/sample-eval.yaml
(the sample recipe plus an evaluation split of held-out classes), the tiny CLIP +
ArcFace trained with that seed (`python -m unibed.trainer run`, the config's default
steps), then its metrics.json read back: mP@5 closed set (validation queries against
the train split, classes trained on) and open set (retrieval-query against
retrieval-index, classes never trained on), trained and untrained.

    .venv/bin/python -m benchmarks.bench_open_set [--seeds 0,1,2] [--work out/bench-open-set]

About 3-5 minutes per seed on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from unibed.dataplane.build.launcher import build_dataset
from unibed.dataplane.recipes import load_recipe
from unibed.sample import generate_sample
from unibed.sample.config import SampleConfig

RECIPE = "recipes/sample-eval.yaml"


def build(seed: int, work: str) -> str:
    sample, output = f"{work}/sample-{seed}", f"{work}/build-{seed}"
    if not os.path.exists(f"{sample}/ground_truth.json"):
        generate_sample(sample, SampleConfig(seed=seed))
    if not os.path.exists(f"{output}/manifest.json"):
        recipe = load_recipe(RECIPE)
        recipe = recipe.with_source_locations({s.name: f"{sample}/{s.name}" for s in recipe.sources})
        build_dataset(recipe.with_overrides(output=output))
    return output


def train(seed: int, dataset: str, work: str) -> dict:
    workdir = f"{work}/train-{seed}"
    if not os.path.exists(f"{workdir}/metrics.json"):
        subprocess.run([sys.executable, "-m", "unibed.trainer", "run", "--dataset", dataset, "--workdir", workdir,
                        "--config", "tiny", "--set", f"seed={seed}"], check=True, stdout=subprocess.DEVNULL)
    with open(f"{workdir}/metrics.json") as f:
        return json.load(f)


def row(seed: int, metrics: dict) -> str:
    closed, opened = metrics, metrics["open_set"]
    figures = [closed["trained"]["mp_at_k"], closed["untrained"]["mp_at_k"],
               opened["trained"]["mp_at_k"], opened["untrained"]["mp_at_k"]]
    domains = " ".join(f"{d}={v:.3f}" for d, v in sorted(opened["trained"]["per_source"].items()))
    return (f"{seed:>4d}  " + "  ".join(f"{v:9.3f}" for v in figures)
            + f"   {opened['trained']['num_queries']:>3d} q / {opened['trained']['num_index']:>3d} idx   {domains}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--work", default="out/bench-open-set")
    args = parser.parse_args()
    print(f"mP@5 of the tiny model on the sample ({RECIPE}); closed = validation vs train "
          "(classes trained on), open = retrieval-query vs retrieval-index (held-out classes)")
    print("seed  closed tr  closed un    open tr    open un   open-set size   open-set trained per domain")
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        start = time.perf_counter()
        metrics = train(seed, build(seed, args.work), args.work)
        results.append(metrics)
        print(row(seed, metrics) + f"   ({time.perf_counter() - start:.0f}s)", flush=True)
    mean = [sum(m[k]["mp_at_k"] for m in results) / len(results) for k in ("trained", "untrained")]
    mean += [sum(m["open_set"][k]["mp_at_k"] for m in results) / len(results) for k in ("trained", "untrained")]
    print("mean  " + "  ".join(f"{v:9.3f}" for v in mean))


if __name__ == "__main__":
    main()
