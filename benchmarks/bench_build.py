"""The sample build end to end (plan, Beam on the local FnApiRunner, assemble,
validate, publish): wall time and input images per second.

    .venv/bin/python -m benchmarks.bench_build [--sample out/bench-sample] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from unibed.dataplane.build.launcher import build_dataset
from unibed.dataplane.recipes import load_recipe
from unibed.sample import generate_sample


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", default="out/bench-sample")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.sample, "ground_truth.json")):
        generate_sample(args.sample)
    recipe = load_recipe("recipes/sample.yaml").with_source_locations(
        {s: f"{args.sample}/{s}" for s in ("imagenet", "products10k", "gldv2")}
    )
    for run in range(args.repeat):
        output = tempfile.mkdtemp(prefix="unibed-bench-build-")
        try:
            start = time.perf_counter()
            result = build_dataset(recipe.with_overrides(output=output))
            seconds = time.perf_counter() - start
        finally:
            shutil.rmtree(output, ignore_errors=True)
        inputs = sum(a.inputs for a in result.manifest.accounting.values())
        written = sum(a.written for a in result.manifest.accounting.values())
        print(f"run {run + 1}: {seconds:.1f} s wall, {inputs} inputs -> {written} records, "
              f"{inputs / seconds:.1f} input images/s (FnApiRunner, 1 process)")


if __name__ == "__main__":
    main()
