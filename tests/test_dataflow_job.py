"""The reference build's Dataflow job, built offline and never submitted:
Beam's DataflowRunner with dry_run translates it, the job's packages and
pipeline are staged to gs:// (the GCS emulator), and the CreateJob request a
submission would send is checked for what Dataflow would refuse or workers
could not use: its size (Dataflow's 10 MB limit, tensorflow/datasets#2711),
launcher-local paths, the worker packaging, side inputs embedded in the graph.

The metadata has the reference's class counts (1,000 synset tars, 9,691 SKUs,
over 7,000 landmarks) with fewer GLDv2 images than the real data, to keep the
test quick; benchmarks/bench_dataflow_job.py prints the same job's
figures on full-size metadata.
"""

from __future__ import annotations

import base64
import bz2
import importlib.util
import os
import re
import tempfile
import zlib
from pathlib import Path

import pytest

from unibed.dataplane import storage
from unibed.dataplane.build.dataflow_job import REQUEST_LIMIT_BYTES, job_request
from unibed.dataplane.build.graph.read import READ_CONTEXT
from unibed.dataplane.build.launcher import plan_build
from unibed.dataplane.build.runner_options import pipeline_options
from unibed.flows.build_parameters import check_parameters
from unibed.flows.stages import ParameterError
from unibed.sample.full_metadata import FullMetadataConfig, write_full_metadata

pytestmark = pytest.mark.slow

CONFIG = FullMetadataConfig(products_images=20_000, gldv2_landmarks=8_000, gldv2_clean_images=40_000)
IMAGE = "europe-docker.pkg.dev/unibed-test/unibed/worker:1"
RAW, DATASETS, DATAFLOW = "gs://unibed-raw-full", "gs://unibed-datasets", "gs://unibed-dataflow"
SOURCES = ("imagenet", "products10k", "gldv2")


def runner_options() -> dict:
    return {"project": "unibed-test", "region": "europe-west4", "temp_location": f"{DATAFLOW}/temp",
            "sdk_container_image": IMAGE, "max_num_workers": 64}


@pytest.fixture(scope="module")
def built(gcs_emulator, tmp_path_factory):
    for bucket in (RAW, DATASETS, DATAFLOW):
        gcs_emulator.create_bucket(bucket.removeprefix("gs://"))
    write_full_metadata(f"{RAW}/full", CONFIG)
    recipe, config = check_parameters("recipes/reference.yaml", f"{DATASETS}/reference",
                                      {s: f"{RAW}/full/{s}" for s in SOURCES}, "dataflow", runner_options())
    plan = plan_build(recipe, lambda message: None)
    package_dir = str(tmp_path_factory.mktemp("dataflow-packages"))
    return plan, package_dir, job_request(plan, pipeline_options(config, package_dir))


def pickled_payloads(pipeline_proto: bytes) -> bytes:
    """Every pickled payload of the pipeline (DoFns, Create's values), unpacked:
    Beam stores them base64-encoded and compressed, so a plain search misses them."""
    found = []
    for run in re.findall(rb"[A-Za-z0-9+/]{40,}={0,2}", pipeline_proto):
        try:
            packed = base64.b64decode(run, validate=True)
        except ValueError:
            continue
        for unpack in (zlib.decompress, bz2.decompress):
            try:
                found.append(unpack(packed))
                break
            except (zlib.error, OSError, ValueError):
                continue
    return b"\n".join(found)


def test_the_request_is_far_under_dataflows_limit(built):
    _, _, job = built
    assert job.request_bytes < REQUEST_LIMIT_BYTES / 10, job.request_bytes
    # the graph itself is staged (pipeline.pb), not sent: bounded too, whatever the image count
    assert len(job.pipeline_proto) < REQUEST_LIMIT_BYTES, len(job.pipeline_proto)


def test_the_workers_get_the_image_and_the_staged_wheel(built):
    _, _, job = built
    assert job.options["sdk_container_image"] == IMAGE and job.options["save_main_session"] is False
    assert "requirements_file" not in job.options  # the image holds the pinned dependencies
    (wheel,) = [p for p in job.worker_packages if p["name"].startswith("unibed-") and p["name"].endswith(".whl")]
    staged = "gs://" + wheel["location"].removeprefix("storage.googleapis.com/")
    assert staged.startswith(f"{DATAFLOW}/temp/staging/") and storage.exists(staged)
    assert storage.exists(job.options["pipelineUrl"])  # the graph, staged next to it


def _launcher_paths(text: str, package_dir: str) -> set[str]:
    """Paths of the launcher's disk in `text`; a `.py` path is a pickled
    function's source file name (code, never opened by a worker)."""
    roots = {tempfile.gettempdir(), str(Path.home()), os.getcwd(), package_dir}
    paths = re.findall(r"(?<![\w.:/])(/[\w.\-]+(?:/[\w.\-]+)+)", text)
    return {p for p in paths if not p.endswith(".py") and any(p.startswith(root + "/") for root in roots)}


def test_no_launcher_local_path_reaches_the_workers(built):
    _, package_dir, job = built
    # Beam copies its launcher-side packaging option into the options it sends;
    # the workers install the staged copy listed in workerPools instead
    launcher_side = {v for k in ("extra_packages", "requirements_file") for v in job.options.get(k) or []}
    assert all(v.startswith(package_dir) for v in launcher_side), launcher_side
    request = job.request
    for value in launcher_side:
        request = request.replace(value, "")
    assert _launcher_paths(request, package_dir) == set()
    assert _launcher_paths(pickled_payloads(job.pipeline_proto).decode("latin-1"), package_dir) == set()


def test_the_read_context_is_staged_not_embedded(built):
    plan, _, job = built
    payloads = pickled_payloads(job.pipeline_proto)
    context = f"{DATASETS}/reference/_work/{READ_CONTEXT}"
    assert context.encode() in payloads and storage.exists(context)
    # the indexes could not fit in the graph: the staged context outweighs all of it
    assert storage.size(context) > len(job.pipeline_proto)
    gldv2 = next(s for s in plan.selections if s.source == "gldv2")
    assert not any(image_id.encode() in payloads for image_id in list(gldv2.wanted)[:50])
    assert f"{RAW}/full/imagenet/ILSVRC2012_img_train.tar".encode() in payloads  # units name gs:// archives


@pytest.mark.skipif(importlib.util.find_spec("pip") is not None, reason="this interpreter has pip")
def test_dataflow_without_image_or_pip_fails_before_planning(gcs_emulator):
    """Beam's stager would fail with 'No package metadata was found for pip'
    after planning; the parameter check says so first."""
    options = {k: v for k, v in runner_options().items() if k != "sdk_container_image"}
    with pytest.raises(ParameterError, match="sdk_container_image.*no pip"):
        check_parameters("recipes/reference.yaml", f"{DATASETS}/reference",
                         {s: f"{RAW}/full/{s}" for s in SOURCES}, "dataflow", options)
