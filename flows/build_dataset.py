"""Prefect flow `build-dataset`: plan -> Beam run -> assemble -> validate -> publish.

Each stage is a task, so its logs, state and timing show in Prefect; the
Beam counters go to the run's log and a summary artifact (label space and
accounting) is attached to the run. The flow holds the output's build lock
for the whole run; a rerun over a complete output of the same recipe is a
no-op that says so.

`runner` picks the Beam runner ("local", "local-multiprocess", "dataflow";
beam_jobs/runner_options.py) and `runner_options` its settings (project,
region, temp_location, ...). Both are validated, and for Dataflow every
source and the output must be gs://, before the plan reads any metadata.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from beam_jobs import build, publish
from beam_jobs import runner_options as runner_options_module
from beam_jobs.runner_options import RunnerConfig
from schemas.manifest import Manifest
from schemas.recipe import load_recipe

# Plans hold whole source indexes: never hash them for caching.
_task = task(cache_policy=NO_CACHE)


@_task
def plan(recipe):
    result = build.plan_build(recipe)
    logger = get_run_logger()
    for selection in result.selections:
        first, last = result.label_map.ranges()[selection.source]
        images = "chosen while reading" if selection.wanted is None else len(selection.wanted)
        logger.info("%s: %d classes -> ids %d-%d, images: %s", selection.source, len(selection.classes), first, last, images)
    return result


@_task(name="beam-build")
def run_beam(build_plan, config: RunnerConfig):
    logger = get_run_logger()
    options = runner_options_module.pipeline_options(config)
    logger.info("beam runner %s: %s", config.runner, runner_options_module.describe(options))
    counters = build.run_build(build_plan, options)
    for name, value in sorted(counters.items()):
        logger.info("beam counter %s = %d", name, value)
    return counters


@_task
def assemble(build_plan) -> Manifest:
    return build.assemble_manifest(build_plan)


@_task
def validate(build_plan, manifest: Manifest) -> None:
    build.validate_build(build_plan, manifest)


@_task(name="publish")
def publish_output(build_plan, manifest: Manifest) -> None:
    build.publish_build(build_plan, manifest)


def summary_markdown(manifest: Manifest, output: str) -> str:
    lines = [
        f"# Dataset `{manifest.recipe.name}` at `{output}`",
        "",
        f"{manifest.num_classes} classes; "
        + ", ".join(f"{split}: {info.num_records} records in {len(info.shards)} shards"
                    for split, info in manifest.splits.items()),
        "",
        "| source | ids | inputs | written | duplicates | rejected | not selected |",
        "|---|---|---|---|---|---|---|",
    ]
    for source, acc in manifest.accounting.items():
        first, last = manifest.label_ranges[source]
        lines.append(f"| {source} | {first}-{last} | {acc.inputs} | {acc.written} | {acc.duplicates} "
                     f"| {acc.rejected} | {acc.not_selected} |")
    return "\n".join(lines)


@flow(name="build-dataset")
def build_dataset_flow(
    recipe: str = "recipes/sample.yaml",
    output: str | None = None,
    sources: dict[str, str] | None = None,
    runner: str = "local",
    runner_options: dict[str, Any] | None = None,
) -> dict:
    """Build the dataset a recipe describes; `sources` ({name: location}) and
    `output` override the recipe's locations (local paths or gs:// URLs)."""
    logger = get_run_logger()
    config = runner_options_module.runner_config(runner=runner, **(runner_options or {}))
    spec = load_recipe(recipe, output=output)
    if sources:
        spec = spec.with_source_locations(sources)
    runner_options_module.check_locations(config, build.recipe_locations(spec))
    build_plan = plan(spec)
    run_id = uuid.uuid4().hex
    with publish.build_lock(spec.output, run_id):
        if publish.prepare_output(spec.output, spec.digest(), run_id) == "complete":
            logger.info("%s already holds this recipe's dataset: nothing to do", spec.output)
            manifest, status = build.existing_manifest(spec.output), "complete"
        else:
            run_beam(build_plan, config)
            manifest = assemble(build_plan)
            validate(build_plan, manifest)
            publish_output(build_plan, manifest)
            status = "built"
    create_markdown_artifact(summary_markdown(manifest, spec.output), key="dataset-summary",
                             description="label space and accounting")
    return {
        "status": status,
        "output": spec.output,
        "num_classes": manifest.num_classes,
        "records": {split: info.num_records for split, info in manifest.splits.items()},
        "accounting": {s: a.model_dump() for s, a in manifest.accounting.items()},
    }
