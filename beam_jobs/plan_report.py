"""What a build will produce and cost, from metadata alone (`unibed plan`).

Per source: classes and their unified ids, images after class choice and
caps, expected stored bytes and shards, and worker-hours estimated from the
per-image cost measured by benchmarks/bench_preprocess.py (decode + normalise
+ hash + encode dominate a build's CPU; reading, dedup and shard writing are
small next to it).
"""

from __future__ import annotations

from dataclasses import dataclass

from beam_jobs.build import BuildPlan
from beam_jobs.shards import num_shards

# Measured on this project's 2-core machine (benchmarks/bench_preprocess.py,
# resize="pow2", shorter side 288): CPU seconds per image and stored bytes per
# image for an ImageNet/Products-sized (500x375) and a landmark-sized
# (1600x1200) JPEG. GLDv2 images are landmark-sized; the others ImageNet-sized.
COST = {
    "imagenet": (0.00234, 46_655),
    "products10k": (0.00234, 46_655),
    "gldv2": (0.00775, 18_565),
}


@dataclass(frozen=True)
class SourcePlan:
    source: str
    classes: int
    first_id: int
    last_id: int
    images: int
    images_exact: bool  # False: an upper bound (classes x cap), the layout lists nothing up front
    not_selected: int
    stored_bytes: int
    cpu_hours: float


@dataclass(frozen=True)
class PlanReport:
    recipe: str
    num_classes: int
    sources: tuple[SourcePlan, ...]
    train_shards: int
    validation_shards: int

    @property
    def images(self) -> int:
        return sum(s.images for s in self.sources)

    @property
    def stored_bytes(self) -> int:
        return sum(s.stored_bytes for s in self.sources)

    @property
    def cpu_hours(self) -> float:
        return sum(s.cpu_hours for s in self.sources)


def describe_plan(plan: BuildPlan) -> PlanReport:
    ranges = plan.label_map.ranges()
    sources = []
    for selection in plan.selections:
        seconds, stored = COST[selection.source]
        exact = selection.wanted is not None
        images = len(selection.wanted) if exact else len(selection.classes) * (selection.cap or 1300)
        first, last = ranges.get(selection.source, (-1, -1))
        sources.append(SourcePlan(selection.source, len(selection.classes), first, last, images, exact,
                                  selection.not_selected, images * stored, images * seconds / 3600))
    total_bytes = sum(s.stored_bytes for s in sources)
    total_images = sum(s.images for s in sources)
    fraction = plan.recipe.split.validation_fraction
    shards = plan.recipe.shards
    return PlanReport(
        plan.recipe.name,
        plan.label_map.num_classes,
        tuple(sources),
        num_shards(int(total_bytes * (1 - fraction)), int(total_images * (1 - fraction)), shards),
        num_shards(int(total_bytes * fraction), int(total_images * fraction), shards),
    )


def format_plan(report: PlanReport) -> str:
    lines = [
        f"recipe {report.recipe}: {report.num_classes} classes",
        f"{'source':12s} {'classes':>8s} {'ids':>13s} {'images':>10s} {'not sel.':>10s} {'GB':>7s} {'CPU h':>7s}",
    ]
    for s in report.sources:
        images = f"{'' if s.images_exact else '<='}{s.images}"
        lines.append(f"{s.source:12s} {s.classes:8d} {f'{s.first_id}-{s.last_id}':>13s} {images:>10s} "
                     f"{s.not_selected:10d} {s.stored_bytes / 1e9:7.2f} {s.cpu_hours:7.2f}")
    lines.append(f"total: {report.images} images, {report.stored_bytes / 1e9:.1f} GB stored, "
                 f"{report.train_shards} train + {report.validation_shards} validation shards, "
                 f"{report.cpu_hours:.1f} worker CPU-hours for preprocessing "
                 f"(~{report.cpu_hours / 16:.1f} h on 16 vCPUs)")
    return "\n".join(lines)
