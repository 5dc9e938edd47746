"""The reference build's Dataflow job on full-size metadata, built offline
(DataflowRunner dry run, staging to a local GCS emulator) and never
submitted: the CreateJob request's size against Dataflow's 10 MB limit, the
staged pipeline graph and read context, and how long each step takes.

    .venv/bin/python -m benchmarks.bench_dataflow_job [--scale 1.0]

`--scale` multiplies the image counts of unibed.sample.full_metadata (1.0: the
published sizes, 1.58M GLDv2-clean images; the class counts stay the
reference's). tests/test_dataflow_job.py checks the same job on less data.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from unibed.dataplane import storage
from unibed.dataplane.build.dataflow_job import REQUEST_LIMIT_BYTES, job_request
from unibed.dataplane.build.launcher import plan_build
from unibed.dataplane.build.runner_options import pipeline_options
from unibed.flows.build_parameters import check_parameters
from unibed.sample.full_metadata import FullMetadataConfig, write_full_metadata

SOURCES = ("imagenet", "products10k", "gldv2")
IMAGE = "europe-docker.pkg.dev/unibed-bench/unibed/worker:1"


def timed(label: str, call, *args):
    start = time.perf_counter()
    done = call(*args)
    print(f"  {label:44} {time.perf_counter() - start:6.1f} s")
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from gcs_emulator import start_emulator

    emulator = start_emulator()
    try:
        for bucket in ("raw", "datasets", "dataflow"):
            emulator.create_bucket(bucket)
        full = FullMetadataConfig()
        config = FullMetadataConfig(products_images=int(full.products_images * args.scale),
                                    gldv2_clean_images=int(full.gldv2_clean_images * args.scale))
        print(f"full-size metadata x{args.scale}: {config}")
        timed("write metadata to gs:// (emulator)", write_full_metadata, "gs://raw/full", config)
        recipe, runner = check_parameters(
            "recipes/reference.yaml", "gs://datasets/reference", {s: f"gs://raw/full/{s}" for s in SOURCES},
            "dataflow", {"project": "unibed-bench", "region": "europe-west4",
                         "temp_location": "gs://dataflow/temp", "sdk_container_image": IMAGE})
        plan = timed("plan (indexes, selection, label map)", plan_build, recipe, lambda message: None)
        options = timed("worker packaging (uv build of the wheel)", pipeline_options, runner, tempfile.mkdtemp())
        job = timed("build + stage the job (dry run)", job_request, plan, options)
        context = storage.size("gs://datasets/reference/_work/read_context.pickle")
        print(f"CreateJob request: {job.request_bytes / 1e3:.1f} kB (Dataflow's limit: "
              f"{REQUEST_LIMIT_BYTES / 2**20:.0f} MB)")
        print(f"staged pipeline graph (pipeline.pb): {len(job.pipeline_proto) / 1e6:.2f} MB; "
              f"staged read context (side input): {context / 1e6:.1f} MB")
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
