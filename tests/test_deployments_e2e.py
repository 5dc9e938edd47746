"""The production path, as a user runs it: a real Prefect server on loopback, the
`unibed-local` process work pool, `prefect deploy --all` from this repository's
prefect.yaml, a real worker, then `prefect deployment run ... --watch` of the
sample build and of training. Checks the outputs (manifest, shards, exported
model, mP@5) and the runs' artifacts through the Prefect API. The server and
the worker are stopped (process groups) even when the test fails."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the project's environment: the worker runs flows with the interpreter it runs on
PREFECT = os.path.join(ROOT, ".venv", "bin", "prefect")
SOURCES = ("imagenet", "products10k", "gldv2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen | None) -> None:
    """SIGTERM the process group, SIGKILL what is left after 20 s."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


class Stack:
    """A Prefect server + worker started as a user would, with their own home."""

    def __init__(self, home: str):
        port = _free_port()
        self.api = f"http://127.0.0.1:{port}/api"
        self.env = {**os.environ, "PREFECT_HOME": home, "PREFECT_API_URL": self.api,
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "UNIBED_HOME": ROOT,
                    "PREFECT_LOGGING_LEVEL": "INFO", "PYTHONPATH": ROOT,
                    # the worker asks for scheduled runs every second, not every 10 s (default)
                    "PREFECT_WORKER_QUERY_SECONDS": "1"}
        self.port, self.home = port, home
        self.server = self.worker = None
        # closed in stop()
        self.logs = {name: open(os.path.join(home, f"{name}.log"), "w+")  # noqa: SIM115
                     for name in ("server", "worker")}

    def start_server(self, timeout: float = 240) -> None:
        self.server = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.home, env=self.env, stdout=self.logs["server"], stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            assert self.server.poll() is None, f"prefect server exited:\n{self.tail('server')}"
            try:
                with urllib.request.urlopen(f"{self.api}/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no /api/health after {timeout}s:\n{self.tail('server')}"
            time.sleep(1)

    def start_worker(self) -> None:
        self.worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "unibed-local"], cwd=ROOT, env=self.env,
            stdout=self.logs["worker"], stderr=subprocess.STDOUT, start_new_session=True)

    def cli(self, *args: str, timeout: float = 600) -> str:
        done = subprocess.run([PREFECT, "--no-prompt", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{output[-4000:]}\n" \
                                     f"worker:\n{self.tail('worker')}"
        return output

    def tail(self, name: str, chars: int = 4000) -> str:
        f = self.logs[name]
        f.flush()
        f.seek(0)
        return f.read()[-chars:]

    def stop(self) -> None:
        _stop(self.worker)
        _stop(self.server)
        for f in self.logs.values():
            f.close()


@pytest.fixture
def stack():
    home = tempfile.mkdtemp(prefix="unibed-e2e-prefect-")
    s = Stack(home)
    try:
        s.start_server()
        yield s
    finally:
        s.stop()
        shutil.rmtree(home, ignore_errors=True)


def _read_json(path: str):
    with open(path) as f:
        return json.load(f)


def _run_id(output: str) -> str:
    for line in output.splitlines():
        if "UUID:" in line:
            return line.split("UUID:")[1].strip()
    raise AssertionError(f"no flow run id in:\n{output[-2000:]}")


def _artifact_keys(api: str, flow_run_id: str) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
        assert state.is_completed(), f"flow run {flow_run_id}: {state.name} {state.message}"
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key for a in artifacts}


def _log_messages(api: str, flow_run_id: str, wait: float = 30) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + wait
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        while True:  # the worker's flow process ships logs in batches
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            messages = "\n".join(log.message for log in logs)
            if "stage train: skipped" in messages or time.monotonic() > deadline:
                return messages
            time.sleep(1)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_deploy_run_build_then_train_on_a_real_server_and_worker(stack, sample_root, tmp_path):
    output, workdir = str(tmp_path / "build"), str(tmp_path / "train")

    stack.cli("work-pool", "create", "unibed-local", "--type", "process")
    deployed = stack.cli("deploy", "--all")
    for name in ("build-sample", "build-full", "fetch-sources", "train", "pipeline"):
        assert name in deployed, deployed[-3000:]
    stack.start_worker()

    build_params = {"output": output, "sources": {s: f"{sample_root}/{s}" for s in SOURCES}}
    built = stack.cli("deployment", "run", "build-dataset/build-sample", "--params", json.dumps(build_params),
                      "--watch", "--watch-interval", "1")
    build_run = _run_id(built)
    manifest = _read_json(os.path.join(output, "manifest.json"))
    shards = [s["path"] for split in manifest["splits"].values() for s in split["shards"]]
    assert manifest["num_classes"] == 30 and shards
    assert all(os.path.getsize(os.path.join(output, p)) > 0 for p in shards)
    assert manifest["reports"]["duplicate_groups"] == "duplicate_groups.png"
    assert {"dataset-summary", "dataset-accounting", "duplicate-groups"} <= _artifact_keys(stack.api, build_run)

    train_params = {"dataset": output, "workdir": workdir, "config": "tiny", "steps": 4,
                    "overrides": ["log_every_steps=1"]}
    trained = stack.cli("deployment", "run", "train/train", "--params", json.dumps(train_params), "--watch", "--watch-interval", "1")
    train_run = _run_id(trained)
    assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))
    metrics = _read_json(os.path.join(workdir, "metrics.json"))
    score = metrics["trained"]["mp_at_k"]
    assert metrics["trained"]["k"] == 5 and 0.0 <= score <= 1.0
    assert set(metrics["trained"]["per_source"]) == set(SOURCES)
    assert {"retrieval-scores", "mp-at-5-per-source", "training-curves", "training-curves-plot"} <= \
        _artifact_keys(stack.api, train_run)

    # the pipeline over finished outputs resumes past both stages: nothing runs again
    mtime = os.path.getmtime(os.path.join(output, "manifest.json"))
    piped = stack.cli("deployment", "run", "unibed-pipeline/pipeline", "--params",
                      json.dumps({**build_params, "workdir": workdir}), "--watch", "--watch-interval", "1")
    _artifact_keys(stack.api, _run_id(piped))  # completed
    messages = _log_messages(stack.api, _run_id(piped))
    assert "stage build: skipped" in messages and "stage train: skipped" in messages, messages
    assert os.path.getmtime(os.path.join(output, "manifest.json")) == mtime
