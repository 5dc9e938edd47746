"""The build-dataset flow on a real (temporary) Prefect server: stages as tasks,
Beam counters in the run's logs, the summary artifact in Prefect."""

from __future__ import annotations

import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler

from unibed.flows.build_dataset import build_dataset_flow


@pytest.fixture(scope="module")
def prefect_server(prefect_api):  # conftest: one temporary Prefect server per session
    return prefect_api


@pytest.mark.slow
def test_flow_builds_the_sample_and_reports_in_prefect(prefect_server, sample_root, tmp_path):
    sources = {s: f"{sample_root}/{s}" for s in ("imagenet", "products10k", "gldv2")}
    output = str(tmp_path / "build")
    state = build_dataset_flow(recipe="recipes/sample.yaml", output=output, sources=sources, return_state=True)
    result = state.result()
    assert result["status"] == "built" and result["num_classes"] == 30
    for acc in result["accounting"].values():
        assert acc["inputs"] == acc["written"] + acc["duplicates"] + acc["rejected"]

    run_id = state.state_details.flow_run_id
    APILogHandler().flush()  # run logs reach the server in batches
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
        messages = ""
        for _ in range(30):  # and the server stores them a moment later
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            messages = "\n".join(log.message for log in logs)
            if "beam counter records_written" in messages:
                break
            time.sleep(1)
    (summary,) = [a for a in artifacts if a.key == "dataset-summary"]
    assert "| gldv2 | 20-29 |" in summary.data
    assert "beam counter records_written" in messages

    again = build_dataset_flow(recipe="recipes/sample.yaml", output=output, sources=sources)
    assert again["status"] == "complete"
