"""The build's human-readable reports, written next to the shards (local or gs://).

CSV with a header row; rows sorted, so identical builds write identical
reports.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import NamedTuple

from unibed.dataplane import storage
from unibed.dataplane.sources.archives import escaped
from unibed.schemas.label_map import LabelMap
from unibed.schemas.source_record import Rejection

DUPLICATE_KINDS = ("exact", "near", "exclusion", "evaluation")
DUPLICATES_HEADER = (
    "dropped", "kept", "distance", "kind", "conflicting_labels", "dropped_label", "kept_label"
)
REJECTS_HEADER = ("source", "image_id", "reason", "detail", "where")


class DuplicateRow(NamedTuple):
    """One image dropped as a duplicate of another (`kind`: exact | near | near:<probe
    kind> (the hash that matched: near:mirror, near:crop84, ...) | exclusion | evaluation: a
    training candidate near an evaluation-split image, dropped by the leak guard)."""

    dropped: str  # image key 'source/image_id'
    kept: str  # the image it duplicates (for 'exclusion': the excluded image)
    distance: int  # Hamming distance of the matched hashes; 0 for exact
    kind: str
    conflicting_labels: bool  # the two images carry different unified labels
    dropped_label: str
    kept_label: str


def write_duplicates_report(path: str, rows: Iterable[DuplicateRow]) -> None:
    checked = sorted(DuplicateRow(*row) for row in rows)
    bad = sorted({row.kind for row in checked if row.kind.split(":")[0] not in DUPLICATE_KINDS})
    if bad:
        raise ValueError(f"duplicate kinds must be one of {DUPLICATE_KINDS}, got {bad}")
    _write_csv(
        path,
        DUPLICATES_HEADER,
        (row._replace(conflicting_labels=str(row.conflicting_labels).lower()) for row in checked),
    )


def read_duplicates_report(text: str) -> dict[str, list[DuplicateRow]]:
    """duplicates.csv read back, grouped by the kept image (groups and rows in
    the report's order): what the duplicate pages and pictures show."""
    groups: dict[str, list[DuplicateRow]] = {}
    for r in csv.DictReader(io.StringIO(text)):
        row = DuplicateRow(r["dropped"], r["kept"], int(r["distance"]), r["kind"],
                           r["conflicting_labels"] == "true", r["dropped_label"], r["kept_label"])
        groups.setdefault(row.kept, []).append(row)
    return groups


def write_rejects_report(path: str, rejections: Iterable[Rejection]) -> None:
    # readers escape names that are not UTF-8; escaping again here means one
    # that slipped through is shown as \xe9 rather than failing the whole report
    rows = sorted(
        tuple(map(escaped, (r.source, r.image_id, r.reason.value, r.detail, r.where)))
        for r in rejections
    )
    _write_csv(path, REJECTS_HEADER, rows)


def write_label_map(path: str, label_map: LabelMap) -> None:
    # exactly to_csv(), so the file's sha256 is label_map.digest()
    storage.write_text(path, label_map.to_csv())


def _write_csv(path: str, header: tuple[str, ...], rows: Iterable[tuple]) -> None:
    with io.TextIOWrapper(storage.open_write(path), encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
