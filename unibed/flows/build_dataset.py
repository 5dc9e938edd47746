"""Prefect flow `build-dataset`: the data plane's one build sequence
(unibed/dataplane/build/launcher.py), each stage a Prefect task.

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
  validates and publishes (unibed/dataplane/build/output.py); a complete output is a no-op;
- the output's `_BUILDING` lock keeps a second build out (refused, naming the
  holder). A lock left by a killed run on this host is broken when its
  process is gone, one from a Prefect flow run that has finished is broken
  too; otherwise `force_unlock=true` breaks it (`unibed build --force-unlock`);
- only an empty output or one a unibed build claimed is built into or cleaned;
  an output holding a source or inside one is a bad parameter (output.check_apart);
- a failing stage ends the run with "build-dataset: stage S failed for
  output O (recipe R): cause" (unibed/flows/stages.py).
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from unibed.dataplane import storage
from unibed.dataplane.build import lock
from unibed.dataplane.build.accounting import accounting_markdown, accounting_rows
from unibed.dataplane.build.launcher import BuildHooks, build_dataset
from unibed.flows import artifacts
from unibed.flows.build_parameters import FLOW, build_summary, check_parameters, finished_flow_run
from unibed.flows.retries import retry_settings
from unibed.flows.stages import stage
from unibed.schemas.manifest import Manifest
from unibed.schemas.recipe import Recipe

__all__ = ["FLOW", "build_dataset_flow", "check_parameters", "finished_flow_run"]

# Plans hold whole source indexes: never hash them for caching.
_task = task(cache_policy=NO_CACHE, **retry_settings())


def _stage_as_task(where: dict[str, str]):
    """The sequence's stage wrapper: each stage a Prefect task (retries on
    transient failures) whose failure names the flow, stage and inputs."""
    def run_stage(name: str, step, *args):
        with stage(FLOW, name, **where):
            return _task(step).with_options(name=name)(*args)
    return run_stage


def summary_markdown(manifest: Manifest, output: str) -> str:
    splits = ", ".join(f"{split}: {info.num_records} records in {len(info.shards)} shards"
                       for split, info in manifest.splits.items())
    return "\n".join([f"# Dataset `{manifest.recipe.name}` at `{output}`", "",
                      f"{manifest.num_classes} classes; {splits}", "",
                      accounting_markdown(accounting_rows(manifest))])


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


def _hooks(where: dict[str, str], force_unlock: bool) -> BuildHooks:
    return BuildHooks(run_stage=_stage_as_task(where), holder_gone=finished_flow_run, force_unlock=force_unlock,
                      log=lambda message: get_run_logger().info(message),
                      warn=lambda message: get_run_logger().warning(message))


@flow(name=FLOW)
def build_dataset_flow(
    recipe: str | Recipe = "recipes/sample.yaml",
    output: str | None = None,
    sources: dict[str, str] | None = None,
    runner: Literal["local", "local-multiprocess", "dataflow"] = "local",
    runner_options: dict[str, Any] | None = None,
    force_unlock: bool = False,
) -> dict:
    """Build the dataset a recipe (a path, or one already checked) describes;
    `sources` ({name: location}) and `output` override the recipe's locations
    (local paths or gs:// URLs). `force_unlock`: break a build lock whose run
    this host cannot see (another host) - only when you know no build is
    writing the output."""
    spec, config = check_parameters(recipe, output, sources, runner, runner_options)
    name = recipe if isinstance(recipe, str) else "<checked>"
    where = {"output": spec.output, "recipe": f"{name} ({spec.name})"}
    flow_run_id = runtime.flow_run.id
    run_id = lock.new_run_id(f"flow-run-{flow_run_id}" if flow_run_id else "")
    result = build_dataset(spec, config, run_id, _hooks(where, force_unlock))
    try:
        attach_artifacts(result.manifest, spec.output)
    except Exception as e:  # noqa: BLE001 - the dataset is published; a missing picture is not a failure
        get_run_logger().warning("artifacts not attached: %s: %s", type(e).__name__, e)
    return build_summary(result.status, spec.output, result.manifest)
