"""Read sources end to end through the readers and summarise what they hold.

The main job's first stage on the embedded default, and a quick check a user
can run against real data (`unibed inspect`) before a build.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from unibed.dataplane import sources
from unibed.schemas.source_record import Rejection, SourceImage


@dataclass
class SourceSummary:
    source: str
    layout: str
    root: str
    classes: int
    units: int
    listed: int | None
    images: int = 0
    image_bytes: int = 0
    labels_seen: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def inputs(self) -> int:
        return self.images + sum(self.rejected.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "inputs": self.inputs}


def summarise(
    source: str, root: str, layout: str | None = None, reader: str | None = None, options=None
) -> SourceSummary:
    """Read a source whole; `reader` and `options` as sources.open_index takes them."""
    start = time.perf_counter()
    index = sources.open_index(source, root, layout, reader, options)
    summary = SourceSummary(
        source, index.layout, root, len(index.classes), len(index.units), index.num_listed
    )
    labels, splits, rejected = set(), Counter(), Counter()
    for item in sources.iter_source(index):
        if isinstance(item, SourceImage):
            summary.images += 1
            summary.image_bytes += len(item.data)
            labels.add(item.record.label)
            splits[item.record.split] += 1
        elif isinstance(item, Rejection):
            rejected[item.reason.value] += 1
    summary.labels_seen = len(labels)
    summary.splits, summary.rejected = dict(sorted(splits.items())), dict(sorted(rejected.items()))
    summary.seconds = time.perf_counter() - start
    return summary


def format_table(summaries: list[SourceSummary]) -> str:
    header = ("source", "layout", "classes", "units", "listed", "images", "MB", "rejected", "img/s")
    rows = [header]
    for s in summaries:
        rejected = ", ".join(f"{k}={v}" for k, v in s.rejected.items()) or "-"
        rate = s.images / s.seconds if s.seconds else 0.0
        listed = "-" if s.listed is None else str(s.listed)
        rows.append((s.source, s.layout, str(s.classes), str(s.units), listed, str(s.images),
                     f"{s.image_bytes / 1e6:.1f}", rejected, f"{rate:.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
