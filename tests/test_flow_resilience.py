"""What users expect from Prefect, on a real Prefect server and Beam's local runner:
transient errors retried and bad input not; a build killed mid-Beam or between
stages reruns to the same bytes (resuming after Beam when its marker is there);
a killed run's lock is broken, a live one is respected; concurrent builds into
different outputs both succeed, into one output exactly one does; failures name
stage, input and cause."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from google.api_core import exceptions as gexc
from prefect import flow, task

from unibed.dataplane.build.lock import LOCK, OutputLockedError, acquire_lock
from unibed.dataplane.build.output import BEAM_DONE, OutputExistsError
from unibed.dataplane.build.validate import ValidationError
from unibed.flows.retries import is_transient, retry_settings
from unibed.flows.stages import ParameterError, StageFailed
from unibed.flows.train import TrainerFailed
from unibed.schemas.errors import SchemaError, SourceLayoutError
from unibed.schemas.manifest import Manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("imagenet", "products10k", "gldv2")


# --- the retry classifier --------------------------------------------------------

def _caused(outer: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as c:
            raise outer from c
    except BaseException as e:  # noqa: BLE001 - the exception is the value wanted
        return e


@pytest.mark.parametrize("exc", [
    ConnectionResetError(errno.ECONNRESET, "connection reset by peer"),
    TimeoutError("read timed out"),
    OSError(errno.EIO, "input/output error"),
    gexc.ServiceUnavailable("backend"), gexc.TooManyRequests("slow down"),
    gexc.InternalServerError("oops"), gexc.DeadlineExceeded("late"),
    RuntimeError("Pipeline failed: ... google.api_core.exceptions.ServiceUnavailable: 503 GET ..."),
    _caused(RuntimeError("beam job failed"), ConnectionError("worker connection aborted")),
    TrainerFailed("trainer exited with code -9", -9),
], ids=lambda e: type(e).__name__)
def test_transient_errors_are_retried(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    SchemaError("recipe: bad"), SourceLayoutError("/x/train.csv", "missing column"),
    OutputExistsError("holds another recipe"), OutputLockedError("locked"),
    ValidationError("/out", ["shard missing"]), ValueError("bad value"),
    FileNotFoundError(errno.ENOENT, "no such file"), PermissionError(errno.EACCES, "denied"),
    gexc.NotFound("no bucket"), gexc.Forbidden("no access"),
    ParameterError("build-dataset", "runner", "bad"),
    _caused(RuntimeError("beam job failed"), SchemaError("bad record")),  # bad input under Beam's wrapper
    RuntimeError("Pipeline failed: unibed.schemas.errors.SchemaError: location uri must be ..."),
    TrainerFailed("trainer exited with code 1: error: ConfigError: head_lr", 1),
    KeyError("x"), RuntimeError("unknown"),
], ids=lambda e: type(e).__name__)
def test_bad_input_and_unknown_errors_are_not_retried(exc):
    assert not is_transient(exc)


def test_stage_failure_names_stage_input_and_cause():
    err = StageFailed("build-dataset", "beam-build", {"output": "/o", "recipe": "r.yaml (sample)"},
                      OSError(errno.EIO, "disk"))
    assert str(err) == ("build-dataset: stage beam-build failed for output /o, recipe r.yaml (sample): "
                        "OSError: [Errno 5] disk")


# --- on a Prefect server ---------------------------------------------------------

_calls: dict[str, int] = {}


@task(**retry_settings(retries=3, backoff=0.1))
def _flaky(name: str, exc: BaseException) -> str:
    _calls[name] = _calls.get(name, 0) + 1
    if _calls[name] == 1:
        raise exc
    return f"ok after {_calls[name]}"


@flow
def _flaky_flow(name: str, kind: str) -> str:
    exc = ConnectionResetError(errno.ECONNRESET, "reset") if kind == "transient" else SchemaError("bad")
    return _flaky(name, exc)


@pytest.mark.slow
def test_a_task_retries_a_transient_error_but_not_bad_input(prefect_api):
    assert _flaky_flow("net", "transient") == "ok after 2"
    state = _flaky_flow("schema", "permanent", return_state=True)
    assert state.is_failed() and _calls["schema"] == 1  # not retried


def _env(api_url: str) -> dict:
    return {**os.environ, "PREFECT_API_URL": api_url, "PYTHONPATH": ROOT}


_RUN = ("import json, sys; from unibed.flows.build_dataset import build_dataset_flow; "
        "r = build_dataset_flow(**json.loads(sys.argv[1])); print('RESULT ' + json.dumps(r))")


def start_build(api_url: str, sample_root: str, output: str, **extra) -> subprocess.Popen:
    params = {"recipe": "recipes/sample.yaml", "output": output,
              "sources": {s: f"{sample_root}/{s}" for s in SOURCES}, **extra}
    return subprocess.Popen([sys.executable, "-c", _RUN, json.dumps(params)], cwd=ROOT, env=_env(api_url),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, str, dict | None]:
    out, _ = proc.communicate(timeout=timeout)
    results = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    return proc.returncode, out, results[0] if results else None


def kill_when(proc: subprocess.Popen, path: str, timeout: float = 300) -> None:
    """SIGKILL the run (its whole process group, Beam included) once `path` exists."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def shard_digests(output: str) -> dict[str, str]:
    with open(os.path.join(output, "manifest.json")) as f:
        manifest = Manifest.from_json(f.read())
    return {s.path: s.sha256 for info in manifest.splits.values() for s in info.shards}


@pytest.mark.slow
def test_killed_builds_rerun_to_the_same_bytes_resuming_after_beam(prefect_api, sample_root, local_build, tmp_path):
    reference = shard_digests(local_build.output)

    # killed mid-Beam: the partial output and the dead run's lock are left behind
    output = str(tmp_path / "killed-mid-beam")
    # (the read context is staged as the Beam stage starts; _work/ itself appears earlier,
    # with the output's ownership record)
    kill_when(start_build(prefect_api, sample_root, output), os.path.join(output, "_work", "read_context.pickle"))
    assert os.path.exists(os.path.join(output, LOCK))
    assert not os.path.exists(os.path.join(output, "manifest.json"))
    code, log, result = finish(start_build(prefect_api, sample_root, output))
    assert code == 0, log[-3000:]
    assert result["status"] == "built" and "breaking the lock" in log and "has exited" in log
    assert shard_digests(output) == reference
    assert sorted(os.listdir(output)) == sorted(
        [*reference, "manifest.json", "label_map.csv", "duplicates.csv", "rejects.csv", "duplicate_groups.png"])

    # killed after the Beam stage (its marker written): the rerun skips Beam
    output = str(tmp_path / "killed-after-beam")
    kill_when(start_build(prefect_api, sample_root, output), os.path.join(output, BEAM_DONE))
    assert not os.path.exists(os.path.join(output, "manifest.json")), "the run finished before the kill"
    code, log, result = finish(start_build(prefect_api, sample_root, output))
    assert code == 0, log[-3000:]
    assert result["status"] == "resumed" and "skipping beam-build" in log
    assert "beam counter" not in log  # Beam did not run again
    assert shard_digests(output) == reference
    assert not os.path.exists(os.path.join(output, "_work"))
    assert not os.path.exists(os.path.join(output, LOCK))


@pytest.mark.slow
def test_concurrent_builds_different_outputs_both_succeed_same_output_one_is_refused(
        prefect_api, sample_root, local_build, tmp_path):
    reference = shard_digests(local_build.output)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    runs = [start_build(prefect_api, sample_root, out) for out in (a, b)]
    for proc in runs:
        code, log, result = finish(proc)
        assert code == 0 and result["status"] == "built", log[-3000:]
    assert shard_digests(a) == shard_digests(b) == reference

    same = str(tmp_path / "same")
    outcomes = [finish(p) for p in [start_build(prefect_api, sample_root, same) for _ in range(2)]]
    winners = [o for o in outcomes if o[0] == 0]
    losers = [o for o in outcomes if o[0] != 0]
    assert len(winners) == 1 and len(losers) == 1, [o[1][-2000:] for o in outcomes]
    assert winners[0][2]["status"] == "built"
    log = losers[0][1]
    assert f"build-dataset: stage lock failed for output {same}" in log and "is locked by build run" in log
    assert shard_digests(same) == reference  # the refused run touched nothing
    assert not os.path.exists(os.path.join(same, LOCK))


@pytest.mark.slow
def test_a_live_foreign_lock_is_respected_and_force_unlock_breaks_it(prefect_api, sample_root, tmp_path):
    output = str(tmp_path / "locked")
    # a lock from another host: this host cannot tell whether that run lives
    acquire_lock(output, "elsewhere@other-host:pid=1:start=1:t=2026-01-01T00:00:00Z")
    code, log, _ = finish(start_build(prefect_api, sample_root, output))
    assert code != 0 and "stage lock failed" in log and "force_unlock=true" in log
    code, log, result = finish(start_build(prefect_api, sample_root, output, force_unlock=True))
    assert code == 0 and result["status"] == "built", log[-3000:]
    assert "breaking the lock" in log and "force_unlock=true" in log


@pytest.mark.slow
def test_bad_parameters_fail_before_any_work_naming_the_parameter(prefect_api, sample_root, tmp_path):
    from unibed.flows.build_dataset import build_dataset_flow

    sources = {s: f"{sample_root}/{s}" for s in SOURCES}
    cases = [
        ({"runner_options": {"num_workrs": 2}}, "parameter 'runner_options'"),
        ({"recipe": "recipes/nope.yaml"}, "parameter 'recipe"),
        ({"sources": {**sources, "coco": "/x"}}, "parameter 'sources'"),
        ({"runner": "dataflow", "runner_options": {"project": "p", "region": "r", "temp_location": "gs://t/x"}},
         "parameter 'sources/output'"),
    ]
    for extra, message in cases:
        output = str(tmp_path / "never")
        state = build_dataset_flow(**{"recipe": "recipes/sample.yaml", "output": output, "sources": sources,
                                      **extra}, return_state=True)
        assert state.is_failed()
        with pytest.raises(ParameterError, match=message.replace("(", r"\(")):
            state.result()
        assert not os.path.exists(output)
