"""The command line, run as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

UNIBED = [sys.executable, "-m", "unibed.cli"]


def _unibed(*args: str, cwd: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [*UNIBED, *args], check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_runs_the_main_job_from_sample_to_scores(tmp_path):
    # a short training: the score's quality is tests/test_trainer_run.py's business;
    # 90 s alone on 2 cores, more beside the other test worker
    done = _unibed("demo", "--workdir", str(tmp_path / "out"), "--train-steps", "10", timeout=840)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for source, layout in [("imagenet", "official_tar"), ("imagenet", "kaggle_folder"),
                           ("products10k", "folder"), ("products10k", "zip"), ("gldv2", "tars")]:
        assert any(line.split()[:2] == [source, layout] for line in lines), done.stdout
    assert (tmp_path / "out" / "sample" / "ground_truth.json").exists()
    assert (tmp_path / "out" / "build-sample" / "manifest.json").exists()
    assert (tmp_path / "out" / "train-sample" / "export" / "saved_model.pb").exists()
    scores = [line.split() for line in lines if line.split()[:1] in (["trained"], ["untrained"])]
    # closed set (classes trained on), then open set (recipes/sample-eval.yaml's held-out classes)
    assert [row[0] for row in scores] == ["trained", "untrained"] * 2, done.stdout[-2000:]
    assert any(line.startswith("mP@5 open set (held-out classes, never trained on)") for line in lines)
    assert all(0.0 <= float(x) <= 1.0 for row in scores for x in row[1:])


def test_inspect_json_accounts_for_every_input(sample_root, ground_truth):
    done = _unibed("inspect", "--json", "--source", f"products10k={sample_root}/products10k@zip")
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = json.loads(done.stdout)
    truth = [i for i in ground_truth["images"] if i["source"] == "products10k"]
    assert summary["layout"] == "zip"
    assert summary["inputs"] == len(truth)
    assert summary["rejected"] == {"missing_image": sum(i["quirk"] == "missing" for i in truth)}


def test_inspect_reports_a_wrong_root_clearly(tmp_path):
    done = _unibed("inspect", "--source", f"gldv2={tmp_path}")
    assert done.returncode == 2
    assert "no gldv2 layout found" in done.stderr and str(tmp_path) in done.stderr
    assert "Traceback" not in done.stderr


def test_inspect_reports_a_bad_recipe_clearly(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\noutput: out\nsources: [{name: imagenet}]\n")
    done = _unibed("inspect", "--recipe", str(recipe))
    assert done.returncode == 2
    assert "sources.0.location" in done.stderr and "Traceback" not in done.stderr
