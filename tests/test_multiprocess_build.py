"""The sample built by separate worker processes (FnApiRunner, direct_num_workers=2,
multi_processing) from gs:// sources into a gs:// output: the workers share no
memory with the launcher and touch no launcher-local file (sources, read
context, shards and side products all live on the GCS server), and the output is
byte-identical to the single-process local build."""

from __future__ import annotations

import time

import pytest
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
from test_build import sample_recipe

from unibed.dataplane import storage
from unibed.dataplane.build.launcher import build_dataset
from unibed.dataplane.build.runner_options import pipeline_options, runner_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def multiprocess_build(gcs_emulator, gcs_sample):
    gcs_emulator.create_bucket("unibed-out")
    options = pipeline_options(runner_config(runner="local-multiprocess", num_workers=2))
    assert options.view_as(StandardOptions).runner == "FnApiRunner"
    assert options.view_as(DirectOptions).direct_num_workers == 2
    assert options.view_as(DirectOptions).direct_running_mode == "multi_processing"
    start = time.perf_counter()
    result = build_dataset(sample_recipe(gcs_sample, "gs://unibed-out/multiprocess"), options)
    result.seconds = time.perf_counter() - start
    return result


def test_two_worker_processes_write_the_same_bytes_as_one(multiprocess_build, local_build, sample_root, gcs_sample):
    multi, single = multiprocess_build, local_build
    assert multi.status == "built"
    assert multi.counters == single.counters
    for split, info in single.manifest.splits.items():
        assert [s.model_dump() for s in multi.manifest.splits[split].shards] == [s.model_dump() for s in info.shards]
        for shard in info.shards:
            with open(f"{single.output}/{shard.path}", "rb") as f:
                assert storage.read_bytes(f"{multi.output}/{shard.path}") == f.read(), shard.path
    for name in ("label_map.csv", "duplicates.csv", "rejects.csv"):
        with open(f"{single.output}/{name}", "rb") as f:
            expected = f.read().replace(sample_root.encode(), gcs_sample.encode())  # rejects name their files
        assert storage.read_bytes(f"{multi.output}/{name}") == expected, name
    first, second = (m.model_dump(mode="json") for m in (single.manifest, multi.manifest))
    for manifest in (first, second):  # all that may differ: when, and where it was written
        for field in ("created_at", "recipe", "recipe_digest"):
            manifest.pop(field)
    assert first == second
    print(f"\nsample build gs:// -> gs://: 2 worker processes {multi.seconds:.1f}s; "
          f"local single process {single.seconds:.1f}s")
