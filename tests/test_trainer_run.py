"""The trainer end to end through its command line, on the generated sample:
a tiny CLIP trained for about a minute beats the same architecture untrained
by a clear margin, the run resumes after a stop, and failures are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from unibed.schemas.trainer_events import parse_events

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _trainer(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unibed.trainer", *args], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_tiny_clip_trained_on_the_sample_beats_untrained(sample_build, trained_run):
    # trained_run (conftest): `run --stop-at-step 100`, then the same command again
    workdir = trained_run.workdir
    events = parse_events(trained_run.stopped.stdout)
    assert events[-1]["event"] == "stopped" and events[-1]["global_step"] == 100
    assert not any(e["event"] == "exported" for e in events)

    events = parse_events(trained_run.resumed.stdout)
    resume = next(e for e in events if e["event"] == "resume")
    assert (resume["stage"], resume["step"]) == ("finetune", 50)  # head stage is 50 steps
    assert {e["stage"] for e in events if e["event"] == "train"} == {"finetune"}
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    trained, untrained = metrics["trained"]["mp_at_k"], metrics["untrained"]["mp_at_k"]
    print(f"\nsample mP@5: trained {trained:.3f}, untrained {untrained:.3f} "
          f"({metrics['global_step']} steps, {metrics['steps_run']} in the resumed call, "
          f"{metrics['ms_per_step']} ms/step)")
    assert metrics["completed"] and metrics["global_step"] == 450
    assert metrics["trained"]["num_queries"] == sample_build.manifest.splits["validation"].num_records
    assert trained >= untrained + 0.15
    final = events[-1]
    assert final["event"] == "done" and final["trained_mp_at_5"] == trained
    names = zipfile.ZipFile(os.path.join(workdir, "submission.zip")).namelist()
    assert "saved_model.pb" in names and "variables/variables.index" in names


def test_cli_failures_are_one_clear_line(tmp_path):
    bad = _trainer("run", "--dataset", str(tmp_path), "--workdir", str(tmp_path / "w"),
                   "--set", "head_stpes=3")
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ConfigError: unknown config key 'head_stpes'")
    assert "Traceback" not in bad.stderr
