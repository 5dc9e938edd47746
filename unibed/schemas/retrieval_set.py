"""An outside retrieval benchmark (a user's own GUIE-like set), as a listing: no IO here.

Two forms, read by the trainer (`python -m unibed.trainer evaluate --retrieval-set`)
and the rig (`unibed search --retrieval-set`) through this one parser:

- a CSV file with the header `role,label,path` (an optional fourth column
  `domain`): role `query` or `index`; path relative to the CSV's folder, or
  absolute, or a gs:// URL;
- a folder holding `query/<label>/<image>` and `index/<label>/<image>`
  (domain: the set's own name, `outside`).

Labels are text; they become ids 0..L-1 in sorted order, shared by queries and
index. A listed file is a query or an index image once: a path listed twice
in one role is an error naming both lines.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from unibed.schemas.errors import SchemaError

ROLES = ("query", "index")
HEADER = ("role", "label", "path")
DEFAULT_DOMAIN = "outside"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


@dataclass(frozen=True)
class Entry:
    path: str  # as listed (CSV: resolved against the CSV's folder by the caller)
    label: str
    domain: str


@dataclass(frozen=True)
class RetrievalSet:
    queries: tuple[Entry, ...]
    index: tuple[Entry, ...]

    def label_ids(self) -> dict[str, int]:
        labels = sorted({e.label for e in self.queries + self.index})
        return {label: i for i, label in enumerate(labels)}


def _checked(entries: dict[str, list[Entry]], where: str) -> RetrievalSet:
    for role in ROLES:
        if not entries[role]:
            raise SchemaError(f"{where}: no {role} images listed")
    return RetrievalSet(tuple(entries["query"]), tuple(entries["index"]))


def parse_csv(text: str, where: str) -> RetrievalSet:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0][:3]) != HEADER or len(rows[0]) > 4:
        raise SchemaError(f"{where}:1: header must be role,label,path[,domain]")
    entries: dict[str, list[Entry]] = {role: [] for role in ROLES}
    seen: dict[tuple[str, str], int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(rows[0]) or row[0] not in ROLES or not row[1] or not row[2]:
            raise SchemaError(f"{where}:{line}: expected role (query|index), label, path, got {row}")
        if (row[0], row[2]) in seen:
            raise SchemaError(f"{where}:{line}: {row[2]} is listed as {row[0]} already at line {seen[row[0], row[2]]}")
        seen[row[0], row[2]] = line
        entries[row[0]].append(Entry(row[2], row[1], row[3] if len(row) == 4 and row[3] else DEFAULT_DOMAIN))
    return _checked(entries, where)


def parse_folder(relative_paths: list[str], where: str) -> RetrievalSet:
    """From the image files below a folder (paths relative to it, '/'-separated)."""
    entries: dict[str, list[Entry]] = {role: [] for role in ROLES}
    for rel in sorted(relative_paths):
        parts = rel.split("/")
        if not rel.lower().endswith(IMAGE_SUFFIXES):
            continue
        if len(parts) != 3 or parts[0] not in ROLES:
            raise SchemaError(f"{where}: {rel} is not query/<label>/<image> or index/<label>/<image>")
        entries[parts[0]].append(Entry(rel, parts[1], DEFAULT_DOMAIN))
    return _checked(entries, where)
