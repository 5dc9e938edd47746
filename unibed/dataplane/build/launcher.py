"""The one build sequence, which tests, benchmarks and the Prefect flow all run:

    plan            metadata only: indexes, selection, label map (bad sources fail here,
                    as does an output that holds a source or lies inside one)
    lock            the output's build lock (lock.py)
    prepare-output  "build", "resume" (the Beam stage finished earlier) or "complete" (output.py)
    beam-build      the Beam pipeline -> shards + side products (pipeline.py)
    assemble        reports, the duplicate-groups sheet and the manifest (assemble.py)
    validate        re-read every shard against the manifest (validate.py)
    publish         manifest.json last: the output is complete (output.py)

An orchestrator adds itself through `BuildHooks`: a wrapper around each stage
(the flow makes each a Prefect task with retries and stage-named failures),
a judge of lock holders this host cannot see, and where messages go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from unibed.dataplane import storage
from unibed.dataplane.build import lock, output
from unibed.dataplane.build.assemble import assemble
from unibed.dataplane.build.pipeline import build_pipeline
from unibed.dataplane.build.runner_options import RunnerConfig, describe, pipeline_options
from unibed.dataplane.build.selection import SourceSelection, build_heldout_map, select
from unibed.dataplane.build.validate import validate_output
from unibed.dataplane.sources import open_source
from unibed.dataplane.sources.base import SourceIndex
from unibed.schemas.heldout import HeldOutMap
from unibed.schemas.label_map import LabelMap
from unibed.schemas.manifest import Manifest
from unibed.schemas.recipe import Recipe


@dataclass
class BuildPlan:
    recipe: Recipe
    indexes: dict[str, SourceIndex]
    selections: list[SourceSelection]
    label_map: LabelMap
    heldout: HeldOutMap | None = None  # the evaluation split's classes (recipe `evaluation`)


@dataclass
class BuildResult:
    output: str
    status: str  # "built" | "resumed" (Beam done in an earlier run) | "complete" (nothing to do)
    manifest: Manifest
    seconds: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)


_LOG = logging.getLogger(__name__)


def _run_directly(name: str, step: Callable[..., Any], *args: Any) -> Any:
    return step(*args)


@dataclass(frozen=True)
class BuildHooks:
    """What an orchestrator adds around the sequence (defaults: each stage run
    directly, messages to Python logging)."""

    run_stage: Callable[..., Any] = _run_directly  # (stage name, step, *args) -> step(*args)
    holder_gone: Callable[[str], str | None] = lambda holder: None  # why a lock holder is over
    force_unlock: bool = False  # break any lock (the user knows no build is writing)
    log: Callable[[str], None] = _LOG.info
    warn: Callable[[str], None] = _LOG.warning


Runner = RunnerConfig | PipelineOptions | None


def build_dataset(recipe: Recipe, runner: Runner = None, run_id: str | None = None,
                  hooks: BuildHooks = BuildHooks()) -> BuildResult:
    """Plan, run, finish; a rerun over a complete output of the same recipe is a
    no-op, one after a failure past the Beam stage resumes after it."""
    start, stage, where = time.perf_counter(), hooks.run_stage, recipe.output
    plan = stage("plan", plan_build, recipe, hooks.log)
    run_id = run_id or lock.new_run_id("build")
    stage("lock", lock.acquire, where, run_id, hooks.holder_gone, hooks.force_unlock, hooks.warn)
    try:
        todo = stage("prepare-output", output.prepare_output, where, recipe.digest(), run_id)
        if todo == "complete":
            hooks.log(f"{where} already holds this recipe's dataset: nothing to do (skipped all stages)")
            return BuildResult(where, "complete", output.read_manifest(where))
        counters = _beam_stage(plan, runner, todo, hooks)
        manifest = stage("assemble", assemble, plan, hooks.warn)
        stage("validate", validate_build, plan, manifest)
        stage("publish", publish_build, plan, manifest)
    finally:
        lock.release_lock(where, run_id)
    status = "resumed" if todo == "resume" else "built"
    return BuildResult(where, status, manifest, time.perf_counter() - start, counters)


def _beam_stage(plan: BuildPlan, runner: Runner, todo: str, hooks: BuildHooks) -> dict[str, int]:
    if todo == "resume":
        hooks.log(f"resuming {plan.recipe.output}: the Beam stage finished in an earlier run "
                  f"({output.BEAM_DONE}); skipping beam-build, running assemble -> validate -> publish")
        return output.beam_done(plan.recipe.output)["counters"]
    return hooks.run_stage("beam-build", run_beam_stage, plan, runner, hooks.log)


def plan_build(recipe: Recipe, log: Callable[[str], None] = _LOG.info) -> BuildPlan:
    """Everything decided from metadata, before any image is read."""
    output.check_apart(recipe.output, recipe_inputs(recipe))
    indexes = {s.name: open_source(s) for s in recipe.sources}
    selections, label_map = select(recipe, indexes)
    for selection in selections:
        first, last = label_map.ranges()[selection.source]
        images = "chosen while reading" if selection.wanted is None else len(selection.wanted)
        log(f"{selection.source}: {len(selection.classes)} classes -> ids {first}-{last}, images: {images}")
    heldout = build_heldout_map(selections, indexes, label_map) if recipe.evaluation else None
    for source, (first, last) in (heldout.ranges() if heldout else {}).items():
        log(f"{source}: held out for evaluation: ids {first}-{last} (never trained on)")
    return BuildPlan(recipe, indexes, selections, label_map, heldout)


def recipe_locations(recipe: Recipe) -> dict[str, str]:
    """Every location the Beam workers read or write, by what it is (exclusion
    sets are read by the launcher while it builds the graph)."""
    return {**{f"source {s.name}": s.location for s in recipe.sources}, "output": recipe.output}


def recipe_inputs(recipe: Recipe) -> dict[str, str]:
    """Every location the build reads, by what it is: none may hold the output
    or lie inside it (output.check_apart)."""
    exclusions = {f"exclusion set {where}": where for where in recipe.dedup.exclusion_sets}
    return {**{f"source {s.name}": s.location for s in recipe.sources}, **exclusions}


def run_beam_stage(plan: BuildPlan, runner: Runner = None, log: Callable[[str], None] = _LOG.info) -> dict[str, int]:
    """The Beam stage as a unit that may be retried: it starts from an output
    holding nothing of an earlier attempt (the lock stays)."""
    output.discard_partial(plan.recipe.output)
    options = runner if isinstance(runner, PipelineOptions) else pipeline_options(runner or RunnerConfig())
    log(f"beam runner: {describe(options)}")
    counters = run_build(plan, options)
    for name, value in sorted(counters.items()):
        log(f"beam counter {name} = {value}")
    log(f"beam stage done: marker {output.BEAM_DONE} written (a rerun resumes after it)")
    return counters


def run_build(plan: BuildPlan, options: PipelineOptions) -> dict[str, int]:
    """Run the Beam pipeline; returns its counters."""
    recipe, where = plan.recipe, plan.recipe.output
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, recipe, plan.indexes, plan.selections, plan.label_map, where,
                   storage.join(where, output.WORK), plan.heldout)
    result = pipeline.run()
    result.wait_until_finish()
    counters: dict[str, int] = {}
    for counter in result.metrics().query()["counters"]:
        counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + counter.committed
    # the durable "Beam stage done" marker: a rerun after a later failure resumes here
    output.mark_beam_done(where, recipe.digest(), counters)
    return counters


def validate_build(plan: BuildPlan, manifest: Manifest) -> None:
    validate_output(plan.recipe.output, manifest, plan.label_map, plan.heldout)


def publish_build(plan: BuildPlan, manifest: Manifest) -> None:
    where = plan.recipe.output
    output.publish_manifest(where, manifest)
    # after the manifest: until the output is complete, the work folder keeps the resume marker
    storage.delete_tree(storage.join(where, output.WORK))
