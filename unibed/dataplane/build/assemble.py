"""Assembling a build from the Beam stage's side products: the reports
(label map, rejects, duplicates, the duplicate-groups sheet) and the manifest,
whose accounting proves every input is written, a duplicate or rejected."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from unibed import __version__
from unibed.dataplane import storage
from unibed.dataplane.build import reports
from unibed.dataplane.build.duplicate_sheet import SHEET, draw_sheet
from unibed.dataplane.build.graph import side_products
from unibed.dataplane.build.graph.side_products import Counts
from unibed.dataplane.build.output import WORK
from unibed.dataplane.dedup.keep_rule import Drop
from unibed.schemas.manifest import EvaluationInfo, Manifest, ShardInfo, SourceAccounting, SplitInfo
from unibed.schemas.source_record import Rejection

if TYPE_CHECKING:
    from unibed.dataplane.build.launcher import BuildPlan

_LOG = logging.getLogger(__name__)
REPORTS = {"duplicates": "duplicates.csv", "rejects": "rejects.csv"}


def assemble(plan: BuildPlan, warn: Callable[[str], None] = _LOG.warning) -> Manifest:
    """Reports and the manifest, with the duplicate-groups sheet listed when it could be drawn."""
    manifest = assemble_manifest(plan)
    where = plan.recipe.output
    try:  # the sheet is a report like the CSVs, but a picture never fails a build
        png = draw_sheet(storage.read_text(storage.join(where, REPORTS["duplicates"])), plan.indexes)
    except Exception as e:  # noqa: BLE001
        warn(f"duplicate-groups sheet not drawn: {type(e).__name__}: {e}")
        return manifest
    storage.write_bytes(storage.join(where, SHEET), png)
    return manifest.model_copy(update={"reports": {**manifest.reports, "duplicate_groups": SHEET}})


def assemble_manifest(plan: BuildPlan) -> Manifest:
    """The CSV reports and the manifest, from the pipeline's side products."""
    recipe, where = plan.recipe, plan.recipe.output
    work = storage.join(where, WORK)
    rejections = side_products.read_rejections(work)
    for index in plan.indexes.values():
        rejections += index.rejections
    drops = [d for d in side_products.read_drops(work) if not d.dropped.startswith("exclusion/")]
    _write_reports(plan, rejections, drops)
    counts = _count(side_products.read_counts(work), plan, rejections)
    return Manifest(
        unibed_version=__version__,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        recipe=recipe,
        recipe_digest=recipe.digest(),
        num_classes=plan.label_map.num_classes,
        label_ranges=plan.label_map.ranges(),
        label_map_sha256=plan.label_map.digest(),
        splits=_splits(side_products.read_shard_infos(work)),
        records_per_source={s: dict(sorted(c.items())) for s, c in sorted(counts.per_source.items())},
        records_per_class={s: dict(sorted(c.items())) for s, c in sorted(counts.per_class.items())},
        accounting=_accounting(plan, counts, rejections, drops),
        reports=REPORTS,
        evaluation=_evaluation(plan, drops),
    )


def _evaluation(plan: BuildPlan, drops: list[Drop]) -> EvaluationInfo | None:
    """The held-out label map, written beside label_map.csv, and the leak guard's drops."""
    heldout = plan.heldout
    if heldout is None:
        return None
    info = EvaluationInfo(label_map_sha256=heldout.digest(), first_id=heldout.first_id,
                          num_classes=heldout.num_classes, label_ranges=heldout.ranges(),
                          leak_guard_drops=dict(sorted(Counter(
                              d.dropped.split("/", 1)[0] for d in drops if d.kind == "evaluation").items())))
    storage.write_text(storage.join(plan.recipe.output, info.label_map), heldout.to_csv())
    return info


def _write_reports(plan: BuildPlan, rejections: list[Rejection], drops: list[Drop]) -> None:
    where = plan.recipe.output
    reports.write_label_map(storage.join(where, "label_map.csv"), plan.label_map)
    reports.write_rejects_report(storage.join(where, REPORTS["rejects"]), rejections)
    reports.write_duplicates_report(storage.join(where, REPORTS["duplicates"]),
                                    [reports.DuplicateRow(**asdict(d)) for d in drops])


def _count(counts: Counts, plan: BuildPlan, rejections: list[Rejection]) -> Counts:
    """The pipeline's counts plus the inputs it never saw: metadata rejections, missing images."""
    for index in plan.indexes.values():  # metadata rejections are inputs too
        counts.inputs[index.source] += len(index.rejections)
    # listed images nobody read are inputs that never arrived
    counts.inputs.update(r.source for r in rejections if r.reason.value == "missing_image")
    return counts


def _splits(by_split: dict[str, list[ShardInfo]]) -> dict[str, SplitInfo]:
    return {
        split: SplitInfo(num_records=sum(s.num_records for s in infos), num_bytes=sum(s.num_bytes for s in infos),
                         shards=tuple(sorted(infos, key=lambda s: s.path)))
        for split, infos in sorted(by_split.items())
    }


def _accounting(plan: BuildPlan, counts: Counts, rejections: list[Rejection],
                drops: list[Drop]) -> dict[str, SourceAccounting]:
    duplicates = Counter(d.dropped.split("/", 1)[0] for d in drops)
    accounting = {}
    for source in (spec.name for spec in plan.recipe.sources):
        rejected = Counter(r.reason.value for r in rejections if r.source == source)
        accounting[source] = SourceAccounting(
            inputs=counts.inputs[source], written=sum(c[source] for c in counts.per_source.values()),
            duplicates=duplicates[source], rejected=sum(rejected.values()),
            rejected_by_reason=dict(sorted(rejected.items())), not_selected=counts.not_selected[source],
        )
    return accounting
