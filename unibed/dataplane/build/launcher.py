"""Launching a dataset build: plan on metadata, run the Beam pipeline, assemble
the reports and the manifest, validate, publish.

    plan_build(recipe)            metadata only: indexes, selection, label map
    run_build(plan, options)      the Beam pipeline -> shards + side products
    assemble_manifest(plan)       reports and the manifest, from the side products
    validate_build(plan, m)       re-read every shard against the manifest
    publish_build(plan, m)        manifest.json last: the output is complete

`build_dataset` runs them in order under the output's build lock (a rerun
after a failure past the Beam stage resumes from its marker, see publish.py); the
Prefect flow `build-dataset` (unibed/flows/build_dataset.py) runs each as a task.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from unibed import __version__
from unibed.dataplane import storage
from unibed.dataplane.build import publish, reports
from unibed.dataplane.build.pipeline import build_pipeline
from unibed.dataplane.build.selection import SourceSelection, select
from unibed.dataplane.sources import open_index
from unibed.dataplane.sources.base import SourceIndex
from unibed.schemas.label_map import LabelMap
from unibed.schemas.manifest import Manifest, ShardInfo, SourceAccounting, SplitInfo
from unibed.schemas.recipe import Recipe
from unibed.schemas.source_record import Rejection

WORK = "_work"
REPORTS = {"duplicates": "duplicates.csv", "rejects": "rejects.csv"}


@dataclass
class BuildPlan:
    recipe: Recipe
    indexes: dict[str, SourceIndex]
    selections: list[SourceSelection]
    label_map: LabelMap


@dataclass
class BuildResult:
    output: str
    status: str  # "built" | "complete" (nothing to do)
    manifest: Manifest
    seconds: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)


def plan_build(recipe: Recipe) -> BuildPlan:
    """Everything decided from metadata, before any image is read."""
    indexes = {s.name: open_index(s.name, s.location, s.layout) for s in recipe.sources}
    selections, label_map = select(recipe, indexes)
    return BuildPlan(recipe, indexes, selections, label_map)


def recipe_locations(recipe: Recipe) -> dict[str, str]:
    """Every location the Beam workers read or write, by what it is (exclusion
    sets are read by the launcher while it builds the graph)."""
    return {**{f"source {s.name}": s.location for s in recipe.sources}, "output": recipe.output}


def default_pipeline_options() -> PipelineOptions:
    # FnApiRunner: Beam's local portable runner, without the DirectRunner's
    # attempt to download Prism (REFERENCE section 7).
    # flags=[]: never parse the launching process's own command line.
    return PipelineOptions(flags=[], runner="FnApiRunner")


def run_build(plan: BuildPlan, options: PipelineOptions | None = None) -> dict[str, int]:
    """Run the Beam pipeline; returns its counters."""
    recipe, output = plan.recipe, plan.recipe.output
    pipeline = beam.Pipeline(options=options or default_pipeline_options())
    build_pipeline(pipeline, recipe, plan.indexes, plan.selections, plan.label_map, output,
                   storage.join(output, WORK))
    result = pipeline.run()
    result.wait_until_finish()
    counters = {}
    for counter in result.metrics().query()["counters"]:
        counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + counter.committed
    # the durable "Beam stage done" marker: a rerun after a later failure resumes here
    publish.mark_beam_done(output, recipe.digest(), counters)
    return counters


def _json_lines(path: str) -> list:
    if not storage.exists(path):
        return []
    return [json.loads(line) for line in storage.read_text(path).splitlines() if line]


def assemble_manifest(plan: BuildPlan) -> Manifest:
    """Reports and the manifest from the pipeline's side products."""
    recipe, output = plan.recipe, plan.recipe.output
    work = storage.join(output, WORK)
    rejections = [Rejection(*row) for row in _json_lines(f"{work}/rejected.jsonl")]
    for index in plan.indexes.values():
        rejections += index.rejections
    drops = _json_lines(f"{work}/drops.jsonl")
    shard_rows = _json_lines(f"{work}/shards.jsonl")
    counts = _json_lines(f"{work}/counts.jsonl")

    reports.write_label_map(storage.join(output, "label_map.csv"), plan.label_map)
    reports.write_rejects_report(storage.join(output, REPORTS["rejects"]), rejections)
    written_drops = [d for d in drops if not d["dropped"].startswith("exclusion/")]
    reports.write_duplicates_report(
        storage.join(output, REPORTS["duplicates"]),
        [reports.DuplicateRow(**d) for d in written_drops],
    )

    splits: dict[str, list[ShardInfo]] = defaultdict(list)
    for row in shard_rows:
        split = row.pop("split")
        splits[split].append(ShardInfo(**row))
    per_source: dict[str, Counter] = defaultdict(Counter)
    per_class: dict[str, Counter] = defaultdict(Counter)
    inputs, not_selected = Counter(), Counter()
    for key, n in counts:
        if key[0] == "input":
            inputs[key[1]] += n
        elif key[0] == "not_selected":
            not_selected[key[1]] += n
        else:
            split, source, label = key
            per_source[split][source] += n
            per_class[split][label] += n
    for index in plan.indexes.values():  # metadata rejections are inputs too
        inputs[index.source] += len(index.rejections)
    missing = Counter(r.source for r in rejections if r.reason.value == "missing_image")
    inputs.update(missing)  # listed images nobody read are inputs that never arrived

    accounting = {}
    duplicates = Counter(d["dropped"].split("/", 1)[0] for d in written_drops)
    for spec in recipe.sources:
        source = spec.name
        rejected = Counter(r.reason.value for r in rejections if r.source == source)
        written = sum(per_source[split][source] for split in per_source)
        accounting[source] = SourceAccounting(
            inputs=inputs[source], written=written, duplicates=duplicates[source],
            rejected=sum(rejected.values()), rejected_by_reason=dict(sorted(rejected.items())),
            not_selected=not_selected[source],
        )

    manifest = Manifest(
        unibed_version=__version__,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        recipe=recipe,
        recipe_digest=recipe.digest(),
        num_classes=plan.label_map.num_classes,
        label_ranges=plan.label_map.ranges(),
        label_map_sha256=plan.label_map.digest(),
        splits={
            split: SplitInfo(
                num_records=sum(s.num_records for s in infos),
                num_bytes=sum(s.num_bytes for s in infos),
                shards=tuple(sorted(infos, key=lambda s: s.path)),
            )
            for split, infos in sorted(splits.items())
        },
        records_per_source={s: dict(sorted(c.items())) for s, c in sorted(per_source.items())},
        records_per_class={s: dict(sorted(c.items())) for s, c in sorted(per_class.items())},
        accounting=accounting,
        reports=REPORTS,
    )
    return manifest


def validate_build(plan: BuildPlan, manifest: Manifest) -> None:
    publish.validate_output(plan.recipe.output, manifest, plan.label_map)


def publish_build(plan: BuildPlan, manifest: Manifest) -> None:
    output = plan.recipe.output
    publish.publish_manifest(output, manifest)
    # after the manifest: until the output is complete, the work folder keeps the resume marker
    storage.delete_tree(storage.join(output, WORK))


def existing_manifest(output: str) -> Manifest:
    return Manifest.from_json(storage.read_text(storage.join(output, publish.MANIFEST)))


def build_dataset(recipe: Recipe, options: PipelineOptions | None = None, run_id: str | None = None) -> BuildResult:
    """Plan, run, finish; a rerun over a complete output of the same recipe is a no-op."""
    start = time.perf_counter()
    plan = plan_build(recipe)  # bad sources fail here, before any heavy work
    output, run_id = recipe.output, run_id or publish.new_run_id("build")
    with publish.build_lock(output, run_id):
        todo = publish.prepare_output(output, recipe.digest(), run_id)
        if todo == "complete":
            return BuildResult(output, "complete", existing_manifest(output))
        # "resume": the Beam stage finished in an earlier run (publish.BEAM_DONE)
        counters = run_build(plan, options) if todo == "build" else publish.beam_done(output)["counters"]
        manifest = assemble_manifest(plan)
        validate_build(plan, manifest)
        publish_build(plan, manifest)
    return BuildResult(output, "built", manifest, time.perf_counter() - start, counters)
