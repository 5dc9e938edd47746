"""The held-out label space of the evaluation split: `heldout_label_map.csv`.

Header `unified_id,source,source_label,name,role`. Ids continue after the
training label space (first id = its class count), one contiguous block per
source in recipe order, inside a block ordered by source label, so a held-out
id can never be mistaken for a class the model trained on. `role` is `query`
(a class with query and index images) or `distractor` (index images only).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass

from unibed.schemas.errors import SchemaError

HEADER = ("unified_id", "source", "source_label", "name", "role")
ROLES = ("query", "distractor")
QUERY_SPLIT, INDEX_SPLIT = "retrieval-query", "retrieval-index"
RETRIEVAL_SPLITS = (QUERY_SPLIT, INDEX_SPLIT)


@dataclass(frozen=True)
class HeldOutClass:
    unified_id: int
    source: str
    source_label: str
    name: str
    role: str


@dataclass(frozen=True)
class HeldOutMap:
    first_id: int  # the training label space's class count
    entries: tuple[HeldOutClass, ...]

    def __post_init__(self):
        seen: set[tuple[str, str]] = set()
        for i, e in enumerate(self.entries):
            if e.unified_id != self.first_id + i:
                raise SchemaError(f"held-out ids must run {self.first_id}.. in order; row {i} has {e.unified_id}")
            if e.role not in ROLES:
                raise SchemaError(f"held-out id {e.unified_id}: role {e.role!r} is not one of {ROLES}")
            if (e.source, e.source_label) in seen:
                raise SchemaError(f"held-out id {e.unified_id}: {e.source}/{e.source_label} appears twice")
            seen.add((e.source, e.source_label))

    @property
    def num_classes(self) -> int:
        return len(self.entries)

    def id_range(self) -> range:
        return range(self.first_id, self.first_id + len(self.entries))

    def lookup(self) -> dict[tuple[str, str], int]:
        return {(e.source, e.source_label): e.unified_id for e in self.entries}

    def distractor_ids(self) -> frozenset[int]:
        return frozenset(e.unified_id for e in self.entries if e.role == "distractor")

    def ranges(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for e in self.entries:
            out[e.source] = (out.get(e.source, (e.unified_id,))[0], e.unified_id)
        return out

    def name_of(self, unified_id: int) -> str:
        return self.entries[unified_id - self.first_id].name

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(HEADER)
        for e in self.entries:
            writer.writerow((e.unified_id, e.source, e.source_label, e.name, e.role))
        return buf.getvalue()

    def digest(self) -> str:
        return hashlib.sha256(self.to_csv().encode("utf-8")).hexdigest()

    @classmethod
    def from_csv(cls, text: str, first_id: int, where: str = "heldout_label_map.csv") -> HeldOutMap:
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or tuple(rows[0]) != HEADER:
            raise SchemaError(f"{where}:1: header must be {','.join(HEADER)}")
        entries = []
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(HEADER) or not row[0].isdigit():
                raise SchemaError(f"{where}:{line}: expected {len(HEADER)} fields and an integer id, got {row}")
            entries.append(HeldOutClass(int(row[0]), row[1], row[2], row[3], row[4]))
        try:
            return cls(first_id, tuple(entries))
        except SchemaError as e:
            raise SchemaError(f"{where}: {e}") from None
