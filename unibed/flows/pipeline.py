"""Prefect flow `unibed-pipeline`: fetch? -> build -> train, resumable by stage.

Each stage is a subflow (its own run, logs and artifacts in Prefect). A stage
whose output is already complete is skipped, so rerunning a pipeline that
failed (or was killed) part-way resumes at the first unfinished stage:

    fetch   runs only when `fetch` parameters are given; the fetch itself
            skips staged, verified files and resumes partial ones
    build   skipped when <output>/manifest.json holds this recipe's digest;
            otherwise build-dataset runs (and itself resumes after its Beam
            stage when the marker is there)
    train   skipped when <workdir>/metrics.json and the export are present;
            otherwise train runs (the trainer resumes from its checkpoints)
"""

from __future__ import annotations

import json
from typing import Any, Literal

from prefect import flow, get_run_logger

from unibed.dataplane import storage
from unibed.dataplane.build.output import MANIFEST, read_manifest
from unibed.flows.build_dataset import build_dataset_flow
from unibed.flows.build_dataset import check_parameters as check_build_parameters
from unibed.flows.fetch_sources import fetch_sources_flow
from unibed.flows.stages import ParameterError
from unibed.flows.train import PRESETS, read_metrics, train_flow

FLOW = "unibed-pipeline"


def build_complete(output: str, recipe_digest: str) -> bool:
    return storage.exists(storage.join(output, MANIFEST)) and read_manifest(output).recipe_digest == recipe_digest


def train_complete(workdir: str) -> bool:
    metrics = storage.join(workdir, "metrics.json")
    if not (storage.exists(metrics) and storage.exists(storage.join(workdir, "export", "saved_model.pb"))):
        return False
    try:
        return "trained" in json.loads(storage.read_text(metrics))
    except ValueError:
        return False


@flow(name=FLOW)
def pipeline_flow(
    recipe: str = "recipes/sample.yaml",
    output: str | None = None,
    sources: dict[str, str] | None = None,
    runner: Literal["local", "local-multiprocess", "dataflow"] = "local",
    runner_options: dict[str, Any] | None = None,
    workdir: str = "out/train-sample",
    config: str = "tiny",
    overrides: list[str] | None = None,
    steps: int | None = None,
    fetch: dict[str, Any] | None = None,
    force_unlock: bool = False,
) -> dict:
    """fetch (when `fetch` holds fetch-sources parameters) -> build-dataset ->
    train; stages already complete are skipped."""
    logger = get_run_logger()
    spec, _ = check_build_parameters(recipe, output, sources, runner, runner_options)
    if config not in PRESETS and not config.endswith(".json"):
        raise ParameterError(FLOW, "config", f"{config!r} is neither a preset {PRESETS} nor a .json file")
    done: dict[str, Any] = {}
    if fetch:
        done["fetch"] = fetch_sources_flow(**fetch)
    if build_complete(spec.output, spec.digest()):
        logger.info("stage build: skipped, %s already holds recipe %s", spec.output, spec.name)
        done["build"] = "skipped"
    else:
        done["build"] = build_dataset_flow(recipe=spec, runner=runner, runner_options=runner_options,
                                           force_unlock=force_unlock)
    if train_complete(workdir):
        logger.info("stage train: skipped, %s holds an export and metrics.json", workdir)
        metrics = read_metrics(workdir)
        done["train"] = "skipped"
    else:
        metrics = train_flow(dataset=spec.output, workdir=workdir, config=config, overrides=overrides, steps=steps)
        done["train"] = "done"
    done["mp_at_5"] = metrics["trained"]["mp_at_k"]
    return done
