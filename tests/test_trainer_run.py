"""The trainer's command line fails in one clear line (the trained run on the
sample, which beats the same architecture untrained and resumes after a stop, is
checked in tests/test_trained_run.py)."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _trainer(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unibed.trainer", *args], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_failures_are_one_clear_line(tmp_path):
    bad = _trainer("run", "--dataset", str(tmp_path), "--workdir", str(tmp_path / "w"),
                   "--set", "head_stpes=3")
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ConfigError: unknown config key 'head_stpes'")
    assert "Traceback" not in bad.stderr
