"""What the web pages show of a build besides search: duplicate groups, rejects, summary.

Dropped duplicates are not in the shards; duplicates.csv names them by key
('source/image_id'), so their pictures are read back from the sources the
build read (manifest.recipe.sources) through the readers, in a background
thread: each source's units are streamed until every wanted key of that
source has been seen. That is cheap for the sample and for a few groups; on
a full-size source it reads until the last wanted image turns up, which is
why the page shows at most MAX_GROUPS groups and `unibed serve
--no-source-thumbnails` turns it off. An image that cannot be read gets the
reason instead of a thumbnail.
"""

from __future__ import annotations

import csv
import io
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from unibed.dataplane import storage
from unibed.dataplane.build.accounting import COLUMNS, accounting_rows
from unibed.dataplane.build.reports import read_duplicates_report
from unibed.dataplane.sources import find_images, open_source
from unibed.retrieval.images import decode_untrusted, thumbnail_jpeg
from unibed.schemas.manifest import Manifest

MAX_GROUPS = 200


@dataclass
class DuplicateGroup:
    kept: str
    kept_label: str
    dropped: list[dict] = field(default_factory=list)  # dropped, distance, kind, conflicting, label


def _read_csv(root: str, name: str | None) -> list[dict]:
    if not name:
        return []
    path = storage.join(root, name)
    if not storage.exists(path):
        return []
    return list(csv.DictReader(io.StringIO(storage.read_text(path))))


def duplicate_groups(root: str, manifest: Manifest) -> list[DuplicateGroup]:
    """duplicates.csv grouped by the kept image, groups in the report's order."""
    name = manifest.reports.get("duplicates")
    path = storage.join(root, name) if name else None
    if path is None or not storage.exists(path):
        return []
    return [DuplicateGroup(kept, rows[0].kept_label,
                           [{"key": r.dropped, "distance": r.distance, "kind": r.kind,
                             "conflicting": r.conflicting_labels, "label": r.dropped_label} for r in rows])
            for kept, rows in read_duplicates_report(storage.read_text(path)).items()]


def rejects(root: str, manifest: Manifest) -> list[dict]:
    return _read_csv(root, manifest.reports.get("rejects"))


class SourceThumbnails:
    """Thumbnails of images that live only in the build's sources, by key."""

    def __init__(self, manifest: Manifest, wanted: set[str]):
        self.manifest = manifest
        self.wanted = set(wanted)
        self.thumbs: dict[str, bytes] = {}
        self.errors: dict[str, str] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="source-thumbnails", daemon=True)

    def start(self) -> SourceThumbnails:
        self.thread.start()
        return self

    def _run(self) -> None:
        by_source: dict[str, set[str]] = defaultdict(set)
        for key in self.wanted:
            by_source[key.split("/", 1)[0]].add(key)
        specs = {s.name: s for s in self.manifest.recipe.sources}
        spec = self.manifest.recipe.image
        try:
            for source, keys in by_source.items():
                where = specs[source].location if source in specs else None
                if where is None:
                    self.errors.update({k: f"source {source!r} is not one the build read" for k in keys})
                    continue
                pending = set(keys)
                try:
                    index = open_source(specs[source])
                    for item in find_images(index, keys):
                        pending.discard(item.record.key)
                        try:
                            self.thumbs[item.record.key] = thumbnail_jpeg(decode_untrusted(item.data, spec))
                        except ValueError as e:
                            self.errors[item.record.key] = str(e)
                except Exception as e:  # noqa: BLE001 - any reader failure is shown as the reason
                    self.errors.update({k: f"cannot read {where}: {type(e).__name__}: {e}" for k in pending})
                    continue
                self.errors.update({k: f"not found in {where}" for k in pending})
        finally:
            self.done.set()

    def status(self, key: str) -> tuple[bytes | None, str]:
        """(thumbnail, '') or (None, reason)."""
        if key in self.thumbs:
            return self.thumbs[key], ""
        if not self.done.is_set():
            return None, "still reading the sources"
        return None, self.errors.get(key, "not requested")


def summary(manifest: Manifest, label_names: list[str]) -> dict:
    """The numbers the summary page shows."""
    per_class = []
    for cid, name in enumerate(label_names):
        counts = {split: manifest.records_per_class.get(split, {}).get(cid, 0) for split in manifest.splits}
        per_class.append({"id": cid, "name": name, **counts})
    return {
        "name": manifest.recipe.name, "created_at": manifest.created_at, "num_classes": manifest.num_classes,
        "label_ranges": manifest.label_ranges, "splits": {s: i.num_records for s, i in manifest.splits.items()},
        "num_shards": {s: len(i.shards) for s, i in manifest.splits.items()},
        "records_per_source": manifest.records_per_source,
        "accounting": accounting_rows(manifest), "accounting_columns": COLUMNS,
        "per_class": per_class,
    }
