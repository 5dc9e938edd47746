"""Prefect flow `build-dataset`: plan -> Beam run -> assemble -> validate -> publish.

Each stage is a task, so its logs, state and timing show in Prefect; the
Beam counters go to the run's log. Artifacts: `dataset-summary` (label space
and accounting, markdown), `dataset-accounting` (table), `duplicate-groups`
(a contact sheet of sample duplicate groups, also written to the output as
duplicate_groups.png and listed in the manifest's reports).

Parameters are validated before any metadata is read (recipe, locations,
runner and its options); a bad one fails with one message naming it.

Resilience:
- tasks retry transient failures (network, GCS 429/5xx, a Beam job dying of
  one) with exponential backoff; bad input fails at once (unibed/flows/retries.py);
- resume: the Beam stage leaves `_work/beam.done.json` for the recipe; a
  rerun after a failure or kill past it skips Beam and only assembles,
  validates and publishes (unibed/dataplane/build/publish.py); a complete output is a no-op;
- the output's `_BUILDING` lock keeps a second build out (refused, naming the
  holder). A lock left by a killed run on this host is broken when its
  process is gone, one from a Prefect flow run that has finished is broken
  too; otherwise `force_unlock=true` breaks it;
- a failing stage ends the run with "build-dataset: stage S failed for
  output O (recipe R): cause" (unibed/flows/stages.py).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from unibed.dataplane import storage
from unibed.dataplane.build import launcher as build
from unibed.dataplane.build import publish
from unibed.dataplane.build import runner_options as runner_options_module
from unibed.dataplane.build.runner_options import RunnerConfig
from unibed.dataplane.recipes import load_recipe
from unibed.flows import artifacts
from unibed.flows.retries import retry_settings
from unibed.flows.stages import ParameterError, stage
from unibed.schemas.errors import SchemaError
from unibed.schemas.manifest import Manifest
from unibed.schemas.recipe import Recipe

FLOW = "build-dataset"
SHEET = "duplicate_groups.png"
# Plans hold whole source indexes: never hash them for caching.
_task = task(cache_policy=NO_CACHE, **retry_settings())


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
    # a retry starts over: never mix two attempts' files (the lock stays)
    publish.discard_partial(build_plan.recipe.output)
    options = runner_options_module.pipeline_options(config)
    logger.info("beam runner %s: %s", config.runner, runner_options_module.describe(options))
    counters = build.run_build(build_plan, options)
    for name, value in sorted(counters.items()):
        logger.info("beam counter %s = %d", name, value)
    logger.info("beam stage done: marker %s written (a rerun resumes after it)", publish.BEAM_DONE)
    return counters


@_task
def assemble(build_plan) -> Manifest:
    manifest = build.assemble_manifest(build_plan)
    output = build_plan.recipe.output
    # the duplicate-groups sheet is a report like the CSVs: listed in the manifest
    try:
        png = duplicate_sheet(build_plan, output)
    except Exception as e:  # noqa: BLE001 - a picture never fails a build
        get_run_logger().warning("duplicate-groups sheet not drawn: %s: %s", type(e).__name__, e)
        return manifest
    storage.write_bytes(storage.join(output, SHEET), png)
    return manifest.model_copy(update={"reports": {**manifest.reports, "duplicate_groups": SHEET}})


@_task
def validate(build_plan, manifest: Manifest) -> None:
    build.validate_build(build_plan, manifest)


@_task(name="publish")
def publish_output(build_plan, manifest: Manifest) -> None:
    build.publish_build(build_plan, manifest)


def duplicate_sheet(build_plan, output: str) -> bytes:
    groups = artifacts.duplicate_groups(storage.read_text(storage.join(output, build.REPORTS["duplicates"])))
    keys = {k for kept, drops in groups for k in [kept, *(d for d, _, _ in drops)]}
    return artifacts.duplicate_sheet(groups, artifacts.find_images(build_plan, keys))


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


def accounting_rows(manifest: Manifest) -> list[dict]:
    """One row per source: every input is written, a duplicate or rejected (by reason)."""
    rows = []
    for source, acc in manifest.accounting.items():
        first, last = manifest.label_ranges[source]
        rows.append({"source": source, "first_id": first, "last_id": last, "inputs": acc.inputs,
                     "written": acc.written, "duplicates": acc.duplicates, "rejected": acc.rejected,
                     "not_selected": acc.not_selected,
                     "rejected_by_reason": ", ".join(f"{r}={n}" for r, n in acc.rejected_by_reason.items())})
    return rows


def attach_artifacts(manifest: Manifest, output: str) -> None:
    create_markdown_artifact(summary_markdown(manifest, output), key="dataset-summary",
                             description="label space and accounting")
    create_table_artifact(accounting_rows(manifest), key="dataset-accounting",
                          description=f"inputs = written + duplicates + rejected, per source ({output})")
    sheet = manifest.reports.get("duplicate_groups")
    if sheet:
        path = storage.join(output, sheet)
        create_image_artifact(artifacts.png_data_uri(storage.read_bytes(path)), key="duplicate-groups",
                              description=f"sample duplicate groups: kept (green) and dropped (red); {path}")


def check_parameters(recipe: str, output: str | None, sources: dict[str, str] | None,
                     runner: str, runner_options: dict[str, Any] | None) -> tuple[Recipe, RunnerConfig]:
    """Everything about the parameters that can be checked without reading data."""
    try:
        config = runner_options_module.runner_config(runner=runner, **(runner_options or {}))
    except (SchemaError, ValueError, TypeError) as e:
        raise ParameterError(FLOW, "runner_options", str(e)) from None
    try:
        spec = load_recipe(recipe, output=output)
    except SchemaError as e:
        raise ParameterError(FLOW, "recipe" if output is None else "recipe/output", str(e)) from None
    if sources:
        try:
            spec = spec.with_source_locations(sources)
        except SchemaError as e:
            raise ParameterError(FLOW, "sources", str(e)) from None
    try:
        runner_options_module.check_locations(config, build.recipe_locations(spec))
    except (SchemaError, ValueError) as e:
        raise ParameterError(FLOW, "sources/output", str(e)) from None
    return spec, config


_FLOW_RUN_LABEL = re.compile(r"^flow-run-(?P<id>[0-9a-f-]{36})@")


def _finished_flow_run(holder: str) -> str | None:
    """If the lock's holder is a Prefect flow run that is over, say so."""
    m = _FLOW_RUN_LABEL.match(holder)
    if not m:
        return None
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(m["id"]).state
    except Exception:  # noqa: BLE001 - unknown to this server: cannot judge
        return None
    if state is not None and state.is_final():
        return f"its flow run {m['id']} is {state.name}"
    return None


def acquire(output: str, run_id: str, force_unlock: bool, logger) -> None:
    """Take the output's lock, breaking it only when its owner is provably gone
    (or the user said force_unlock)."""
    try:
        publish.acquire_lock(output, run_id)
        return
    except publish.OutputLockedError:
        holder = publish._lock_holder(output)
        if holder is None:
            raise
        why = publish.stale_lock(output) or _finished_flow_run(holder)
        if why is None and not force_unlock:
            raise
        logger.warning("breaking the lock of %s held by %r: %s", output, holder,
                       why or "force_unlock=true")
        publish.break_lock(output, holder)
    publish.acquire_lock(output, run_id)


@flow(name=FLOW)
def build_dataset_flow(
    recipe: str = "recipes/sample.yaml",
    output: str | None = None,
    sources: dict[str, str] | None = None,
    runner: Literal["local", "local-multiprocess", "dataflow"] = "local",
    runner_options: dict[str, Any] | None = None,
    force_unlock: bool = False,
) -> dict:
    """Build the dataset a recipe describes; `sources` ({name: location}) and
    `output` override the recipe's locations (local paths or gs:// URLs).
    `force_unlock`: break a build lock whose run this host cannot see (another
    host) - only when you know no build is writing the output."""
    logger = get_run_logger()
    spec, config = check_parameters(recipe, output, sources, runner, runner_options)
    where = {"output": spec.output, "recipe": f"{recipe} ({spec.name})"}
    with stage(FLOW, "plan", **where):
        build_plan = plan(spec)
    flow_run_id = runtime.flow_run.id
    run_id = publish.new_run_id(f"flow-run-{flow_run_id}" if flow_run_id else "")
    with stage(FLOW, "lock", **where):
        acquire(spec.output, run_id, force_unlock, logger)
    try:
        with stage(FLOW, "prepare-output", **where):
            todo = publish.prepare_output(spec.output, spec.digest(), run_id)
        if todo == "complete":
            logger.info("%s already holds this recipe's dataset: nothing to do (skipped all stages)", spec.output)
            manifest, status = build.existing_manifest(spec.output), "complete"
        else:
            if todo == "resume":
                logger.info("resuming %s: the Beam stage finished in an earlier run (%s); "
                            "skipping beam-build, running assemble -> validate -> publish",
                            spec.output, publish.BEAM_DONE)
            else:
                with stage(FLOW, "beam-build", **where):
                    run_beam(build_plan, config)
            with stage(FLOW, "assemble", **where):
                manifest = assemble(build_plan)
            with stage(FLOW, "validate", **where):
                validate(build_plan, manifest)
            with stage(FLOW, "publish", **where):
                publish_output(build_plan, manifest)
            status = "resumed" if todo == "resume" else "built"
    finally:
        publish.release_lock(spec.output, run_id)
    try:
        attach_artifacts(manifest, spec.output)
    except Exception as e:  # noqa: BLE001 - the dataset is published; a missing picture is not a failure
        logger.warning("artifacts not attached: %s: %s", type(e).__name__, e)
    return {
        "status": status,
        "output": spec.output,
        "num_classes": manifest.num_classes,
        "records": {split: info.num_records for split, info in manifest.splits.items()},
        "accounting": {s: a.model_dump() for s, a in manifest.accounting.items()},
        "reports": dict(manifest.reports),
    }
