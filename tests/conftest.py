"""Shared fixtures: one generated sample per test session (it is deterministic)."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

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
