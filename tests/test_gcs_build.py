"""The sample built from gs:// sources into a gs:// output on a real local GCS
server (gcp-storage-emulator, tests/gcs_emulator.py): validated there, byte-
identical to the local build, guarded by the GCS build lock, rerun a no-op."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from google.cloud import storage as gcs
from test_build import sample_recipe

from unibed.dataplane import storage
from unibed.dataplane.build.launcher import build_dataset
from unibed.dataplane.build.lock import LOCK, OutputLockedError, acquire_lock, release_lock
from unibed.dataplane.build.output import claim_output
from unibed.dataplane.build.validate import validate_output
from unibed.schemas.label_map import LabelMap
from unibed.schemas.manifest import Manifest

pytestmark = pytest.mark.slow

OUT = "gs://unibed-out"


def _blob(url: str) -> gcs.Blob:
    bucket, _, name = url.removeprefix("gs://").partition("/")
    return gcs.Client().bucket(bucket).get_blob(name)


def _names(output: str) -> set[str]:
    prefix = output.rstrip("/") + "/"
    return {path.removeprefix(prefix) for path, _ in storage.list_files(f"{output}/**")}


def _shard_digests(manifest: Manifest) -> dict[str, tuple[int, str]]:
    return {s.path: (s.num_records, s.sha256) for info in manifest.splits.values() for s in info.shards}


@pytest.fixture(scope="module")
def gcs_build(gcs_emulator, gcs_sample):
    gcs_emulator.create_bucket(OUT.removeprefix("gs://"))
    start = time.perf_counter()
    result = build_dataset(sample_recipe(gcs_sample, f"{OUT}/sample-v1"))
    result.seconds = time.perf_counter() - start
    return result


def test_the_gs_output_is_complete_and_validates_where_it_was_written(gcs_build):
    output = gcs_build.output
    assert gcs_build.status == "built" and output.startswith("gs://")
    manifest = Manifest.from_json(storage.read_text(f"{output}/manifest.json"))
    assert manifest == gcs_build.manifest
    label_map = LabelMap.from_csv(storage.read_text(f"{output}/label_map.csv"))
    validate_output(output, manifest, label_map)  # re-reads every shard from gs://
    for acc in manifest.accounting.values():
        assert acc.inputs == acc.written + acc.duplicates + acc.rejected > 0
    shards = {s.path for info in manifest.splits.values() for s in info.shards}
    # nothing left behind: no work folder, temp files, manifest.json.tmp-* or lock
    assert _names(output) == shards | {"manifest.json", "label_map.csv", *manifest.reports.values()}
    assert set(manifest.reports) == {"duplicates", "rejects", "duplicate_groups"}


def test_gs_output_is_byte_identical_to_the_local_build(gcs_build, local_build, sample_root, gcs_sample):
    assert _shard_digests(gcs_build.manifest) == _shard_digests(local_build.manifest)
    for name in ("label_map.csv", "duplicates.csv", "rejects.csv"):
        with open(f"{local_build.output}/{name}", "rb") as f:
            # rejects.csv says where each rejected input lives: the roots differ
            local = f.read().replace(sample_root.encode(), gcs_sample.encode())
        assert storage.read_bytes(f"{gcs_build.output}/{name}") == local, name
    assert gcs_build.manifest.accounting == local_build.manifest.accounting
    print(f"\nsample build: gs:// -> gs:// {gcs_build.seconds:.1f}s, local {local_build.seconds:.1f}s")


def test_a_rerun_over_a_complete_gs_output_is_a_no_op(gcs_build, gcs_sample):
    before = _blob(f"{gcs_build.output}/manifest.json").generation
    again = build_dataset(sample_recipe(gcs_sample, gcs_build.output))
    assert again.status == "complete"
    assert _blob(f"{gcs_build.output}/manifest.json").generation == before
    assert not storage.exists(f"{gcs_build.output}/{LOCK}")


def test_the_gcs_lock_is_created_only_if_absent_even_under_a_race(gcs_emulator):
    gcs_emulator.create_bucket(OUT.removeprefix("gs://"))
    lock = f"{OUT}/race/{LOCK}"
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def contend(run_id: str) -> None:
        barrier.wait()
        results.append(storage.create_if_absent(lock, run_id.encode()))

    threads = [threading.Thread(target=contend, args=(f"run-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    winner = storage.read_text(lock)
    assert storage.create_if_absent(lock, b"late") is False
    assert storage.read_text(lock) == winner  # never overwritten


def test_a_second_build_into_a_locked_gs_output_is_refused_then_a_partial_one_is_rebuilt(
    gcs_emulator, gcs_sample
):
    gcs_emulator.create_bucket(OUT.removeprefix("gs://"))
    output = f"{OUT}/contended"
    acquire_lock(output, "another-run")  # a build in progress elsewhere
    claim_output(output)  # which took the output before writing into it
    storage.write_bytes(f"{output}/train-00000-of-00777.tfrecord", b"half written")
    storage.write_bytes(f"{output}/_work/shards.jsonl", b"{}")
    with pytest.raises(OutputLockedError, match="another-run"):
        build_dataset(sample_recipe(gcs_sample, output))
    assert storage.read_text(f"{output}/{LOCK}") == "another-run"
    assert storage.exists(f"{output}/train-00000-of-00777.tfrecord")  # the refused build touched nothing

    release_lock(output, "another-run")  # that run ended without publishing
    result = build_dataset(sample_recipe(gcs_sample, output))
    assert result.status == "built"
    names = _names(output)
    assert "train-00000-of-00777.tfrecord" not in names
    assert not any(n.startswith("_work/") for n in names)


def test_the_cli_reruns_a_gs_output_through_the_flow(gcs_build, gcs_sample, prefect_api):
    """`unibed build --output gs://... --source NAME=gs://...` in a real process
    (the session's Prefect server, the emulator's env inherited): a no-op that says so."""
    sources = [arg for s in ("imagenet", "products10k", "gldv2") for arg in ("--source", f"{s}={gcs_sample}/{s}")]
    done = subprocess.run(
        [sys.executable, "-m", "unibed.cli", "build", "--output", gcs_build.output, *sources],
        check=False, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd(), "PREFECT_API_URL": prefect_api},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"dataset complete at {gcs_build.output}" in done.stdout
