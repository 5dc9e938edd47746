"""Shared fixtures: one generated sample per test session (it is deterministic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import pytest

from unibed.schemas.trainer_events import parse_events

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
# A Prefect home (and SQLite database) of the test session's own, so runs
# never share state with a developer's Prefect or a concurrent test run.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="unibed-prefect-")


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> str:
    """The default generated sample, written once per session."""
    from unibed.sample import generate_sample

    root = str(tmp_path_factory.mktemp("sample"))
    generate_sample(root)
    return root


@pytest.fixture(scope="session")
def ground_truth(sample_root) -> dict:
    with open(os.path.join(sample_root, "ground_truth.json")) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def extended_root(sample_root, tmp_path_factory) -> str:
    """The extended sample's extra sources (sop/, food101/, shopee/ and
    ground_truth_extended.json) beside the default sample, which stays as it is:
    their planted duplicates copy images of `sample_root`."""
    from unibed.sample.extras import generate_extras

    root = str(tmp_path_factory.mktemp("sample-extras"))
    generate_extras(root, base_root=sample_root)
    return root


@pytest.fixture(scope="session")
def sample_build(sample_root, tmp_path_factory):
    """The sample built once per session with the sample recipe (a BuildResult:
    `.output` is the folder holding manifest.json and the shards)."""
    from unibed.dataplane.build.launcher import build_dataset
    from unibed.dataplane.recipes import load_recipe

    output = str(tmp_path_factory.mktemp("sample-build") / "out")
    recipe = load_recipe(os.path.join(os.path.dirname(__file__), "..", "recipes", "sample.yaml"))
    locations = {s.name: os.path.join(sample_root, s.name) for s in recipe.sources}
    recipe = recipe.with_source_locations(locations).with_overrides(output=output)
    return build_dataset(recipe)


@pytest.fixture(scope="session")
def gcs_emulator():
    """A real local GCS server (gcp-storage-emulator) for the session; its
    environment (STORAGE_EMULATOR_HOST, fake credentials, project) is exported
    to this process and every subprocess it starts. See tests/gcs_emulator.py."""
    from gcs_emulator import start_emulator

    saved = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS",
                                            "GOOGLE_CLOUD_PROJECT")}
    emulator = start_emulator()
    try:
        yield emulator
    finally:
        emulator.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def gcs_sample(gcs_emulator, sample_root) -> str:
    """The generated sample uploaded to gs://unibed-sources/sample."""
    from gcs_emulator import upload_tree

    gcs_emulator.create_bucket("unibed-sources")
    return upload_tree(sample_root, "gs://unibed-sources/sample")


@pytest.fixture(scope="session")
def local_build(sample_build):
    """The sample built once on the single-process local runner: the reference
    that gs:// and multi-process builds must reproduce byte for byte."""
    return sample_build


@dataclass(frozen=True)
class TrainedRun:
    workdir: str
    stopped: subprocess.CompletedProcess  # `--stop-at-step 100`
    resumed: subprocess.CompletedProcess  # the same command without the stop
    export_dir: str


@pytest.fixture(scope="session")
def trained_run(sample_build, tmp_path_factory) -> TrainedRun:
    """The tiny CLIP trained on the sample build through the trainer's command
    line, stopped at step 100 and resumed: a couple of minutes, so done once
    for the trainer's own checks and the retrieval rig's, which all live in
    tests/test_trained_run.py: `make test`'s workers take a module each."""
    workdir = str(tmp_path_factory.mktemp("trained-run") / "run")
    args = [sys.executable, "-m", "unibed.trainer", "run", "--dataset", sample_build.output, "--workdir", workdir,
            "--config", "tiny"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def run(*extra):
        return subprocess.run([*args, *extra], check=False, cwd=repo, capture_output=True, text=True, timeout=1500)

    stopped = run("--stop-at-step", "100")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    resumed = run()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    export_dir = next(e["export_dir"] for e in parse_events(resumed.stdout) if e.get("event") == "exported")
    return TrainedRun(workdir, stopped, resumed, export_dir)


@pytest.fixture(scope="session")
def prefect_api():
    """One real temporary Prefect server for every in-process flow test (its
    start-up costs ~20 s on 2 cores); subprocess flows reach it through the
    API URL it returns. Tests tell their runs apart by flow run id."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()
