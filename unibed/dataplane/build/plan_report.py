"""What a build will produce and cost, from metadata alone (`unibed plan`).

Per source: classes and their unified ids, images after class choice and
caps, expected stored bytes and shards, and worker-hours estimated from the
per-image cost measured by benchmarks/bench_preprocess.py (decode + normalise
+ hash + encode dominate a build's CPU; reading, dedup and shard writing are
small next to it).
"""

from __future__ import annotations

from dataclasses import dataclass

from unibed.dataplane.build.launcher import BuildPlan
from unibed.dataplane.build.shards import num_shards

# Measured on this project's 2-core machine (benchmarks/bench_preprocess.py,
# resize="pow2", shorter side 288): CPU seconds per image and stored bytes per
# image for an ImageNet/Products-sized (500x375) and a landmark-sized
# (1600x1200) JPEG. GLDv2 images are landmark-sized; the others ImageNet-sized.
COST = {
    "imagenet": (0.00234, 46_655),
    "products10k": (0.00234, 46_655),
    "gldv2": (0.00775, 18_565),
}
# Any other reader (the named and generic ones): product, food and web photos are
# about ImageNet-sized, so they are estimated as such.
DEFAULT_COST = COST["products10k"]

# What a build reads from the published archives. GLDv2's 500 tars (~1 GB
# each, REFERENCE section 2) and ImageNet's official train tar (147.9 GB for
# 1,281,167 images) are streamed whole whatever the selection; folder and zip
# layouts are read per selected image. Products-10K publishes no size: 75 KB
# per image is an estimate for product photos.
STREAMED_BYTES = {"gldv2": 500e9, "imagenet/official_tar": 147.9e9}
BYTES_PER_SOURCE_IMAGE = {"imagenet": 115_000, "products10k": 75_000, "gldv2": 121_000}
DEFAULT_BYTES_PER_SOURCE_IMAGE = 75_000  # other readers: an estimate, like Products-10K's


@dataclass(frozen=True)
class CloudAssumptions:
    """Dataflow sizing and list prices (us-central1, batch, 2026; check the
    pricing pages before quoting): cost = workers x hours x worker price."""

    workers: int = 16
    vcpus_per_worker: int = 4  # n1-standard-4
    memory_gb_per_worker: float = 15.0
    disk_gb_per_worker: float = 250.0
    read_mb_s_per_worker: float = 100.0  # GCS -> worker, sustained
    startup_hours: float = 0.15  # job graph, worker boot, final teardown
    usd_per_vcpu_hour: float = 0.056
    usd_per_gb_memory_hour: float = 0.003557
    usd_per_gb_disk_hour: float = 0.000054
    usd_per_gb_month_storage: float = 0.020  # GCS standard, regional

    @property
    def usd_per_worker_hour(self) -> float:
        return (self.vcpus_per_worker * self.usd_per_vcpu_hour
                + self.memory_gb_per_worker * self.usd_per_gb_memory_hour
                + self.disk_gb_per_worker * self.usd_per_gb_disk_hour)


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
    read_bytes: int  # from the source archives, see STREAMED_BYTES


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

    @property
    def read_bytes(self) -> int:
        return sum(s.read_bytes for s in self.sources)


@dataclass(frozen=True)
class CloudEstimate:
    hours: float  # wall time of the Dataflow job
    usd: float  # Dataflow workers for that time
    staging_usd_per_month: float  # the fetched archives kept in a bucket
    output_usd_per_month: float


def estimate_cloud(report: PlanReport, cloud: CloudAssumptions = CloudAssumptions()) -> CloudEstimate:
    """The slower of CPU and reading bounds the job; both spread over all workers."""
    cpu = report.cpu_hours / (cloud.workers * cloud.vcpus_per_worker)
    read = report.read_bytes / (cloud.workers * cloud.read_mb_s_per_worker * 1e6) / 3600
    hours = max(cpu, read) + cloud.startup_hours
    return CloudEstimate(
        hours, hours * cloud.workers * cloud.usd_per_worker_hour,
        report.read_bytes / 1e9 * cloud.usd_per_gb_month_storage,
        report.stored_bytes / 1e9 * cloud.usd_per_gb_month_storage,
    )


def _read_bytes(plan: BuildPlan, source: str, images: int) -> int:
    layout = plan.indexes[source].layout if source in plan.indexes else None
    streamed = STREAMED_BYTES.get(source) or STREAMED_BYTES.get(f"{source}/{layout}")
    per_image = BYTES_PER_SOURCE_IMAGE.get(source, DEFAULT_BYTES_PER_SOURCE_IMAGE)
    return int(streamed) if streamed else images * per_image


def describe_plan(plan: BuildPlan) -> PlanReport:
    ranges = plan.label_map.ranges()
    sources = []
    for selection in plan.selections:
        seconds, stored = COST.get(selection.source, DEFAULT_COST)
        exact = selection.wanted is not None
        images = len(selection.wanted) if exact else len(selection.classes) * (selection.cap or 1300)
        first, last = ranges.get(selection.source, (-1, -1))
        sources.append(SourcePlan(selection.source, len(selection.classes), first, last, images, exact,
                                  selection.not_selected, images * stored, images * seconds / 3600,
                                  _read_bytes(plan, selection.source, images)))
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


def format_plan(report: PlanReport, cloud: CloudAssumptions = CloudAssumptions()) -> str:
    lines = [
        f"recipe {report.recipe}: {report.num_classes} classes",
        f"{'source':12s} {'classes':>8s} {'ids':>13s} {'images':>10s} {'not sel.':>10s} {'GB':>7s} {'CPU h':>7s}",
    ]
    for s in report.sources:
        images = f"{'' if s.images_exact else '<='}{s.images}"
        lines.append(f"{s.source:12s} {s.classes:8d} {f'{s.first_id}-{s.last_id}':>13s} {images:>10s} "
                     f"{s.not_selected:10d} {s.stored_bytes / 1e9:7.2f} {s.cpu_hours:7.2f} {s.read_bytes / 1e9:8.1f}")
    lines.append(f"total: {report.images} images, {report.stored_bytes / 1e9:.1f} GB stored, "
                 f"{report.train_shards} train + {report.validation_shards} validation shards, "
                 f"{report.cpu_hours:.1f} worker CPU-hours for preprocessing")
    est = estimate_cloud(report, cloud)
    lines.append(f"Dataflow estimate: {cloud.workers} workers x {cloud.vcpus_per_worker} vCPU, "
                 f"{report.read_bytes / 1e9:.0f} GB read: ~{est.hours:.2f} h, ~${est.usd:.0f} "
                 f"(list prices); storage ~${est.staging_usd_per_month:.0f}/month for the fetched "
                 f"archives, ~${est.output_usd_per_month:.2f}/month for the output")
    return "\n".join(lines)
