"""`unibed build` without a Prefect API: the same build sequence run directly,
no temporary Prefect server (unibed/flows/build_direct.py)."""

from __future__ import annotations

import pytest

from unibed.cli.main import main
from unibed.flows.build_direct import prefect_api_configured, stage_directly
from unibed.flows.stages import StageFailed


def test_the_cli_builds_directly_without_a_prefect_api(sample_build, sample_root, tmp_path, monkeypatch, capsys):
    """A rerun over the session's sample build with no PREFECT_API_URL and no
    profile (in this process: the imports are paid already): the same result
    lines, no flow run, and the user is told the run is not recorded."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    sources = [a for s in ("imagenet", "products10k", "gldv2") for a in ("--source", f"{s}={sample_root}/{s}")]
    assert main(["build", "--output", sample_build.output, *sources]) == 0
    out, err = capsys.readouterr()
    assert f"dataset complete at {sample_build.output}" in out
    assert "not recorded in Prefect" in err and "already holds this recipe's dataset" in err
    assert "Flow run" not in out + err and not (tmp_path / "prefect-home").exists()


def test_the_prefect_api_comes_from_the_environment_or_the_active_profile(tmp_path):
    assert prefect_api_configured({"PREFECT_HOME": str(tmp_path)}) is None
    (tmp_path / "profiles.toml").write_text(
        'active = "team"\n[profiles.ephemeral]\nPREFECT_SERVER_ALLOW_EPHEMERAL_MODE = "true"\n'
        '[profiles.team]\nPREFECT_API_URL = "http://prefect.internal:4200/api"\n')
    assert prefect_api_configured({"PREFECT_HOME": str(tmp_path)}) == "http://prefect.internal:4200/api"
    assert prefect_api_configured({"PREFECT_HOME": str(tmp_path), "PREFECT_PROFILE": "ephemeral"}) is None
    assert prefect_api_configured({"PREFECT_HOME": str(tmp_path), "PREFECT_API_URL": "http://x/api"}) == "http://x/api"


def test_a_direct_stage_retries_transient_failures_only_and_names_itself():
    waits: list[float] = []
    run_stage = stage_directly({"output": "gs://b/v1", "recipe": "r.yaml (r)"}, sleep=waits.append)
    calls = []

    def flaky(x):
        calls.append(x)
        if len(calls) < 3:
            raise ConnectionResetError("connection reset by peer")
        return x * 2

    assert run_stage("beam-build", flaky, 21) == 42
    assert len(calls) == 3 and len(waits) == 2 and 8 <= waits[0] <= 12 and 16 <= waits[1] <= 24

    def bad_input():
        calls.append("bad")
        raise ValueError("recipe says 0 classes")

    with pytest.raises(StageFailed, match=r"build-dataset: stage plan failed for output gs://b/v1, "
                                          r"recipe r.yaml \(r\): ValueError: recipe says 0 classes"):
        run_stage("plan", bad_input)
    assert calls.count("bad") == 1 and len(waits) == 2  # never retried
