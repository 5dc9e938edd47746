"""The label map: unified class id <-> (source, source label, name).

Stored as `label_map.csv` next to the shards with the header
`unified_id,source,source_label,name`. Ids are 0..N-1 with no gaps, each
source owns one contiguous block (in recipe order), and (source,
source_label) is unique - checked on every load and build.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass

from unibed.schemas.errors import SchemaError
from unibed.schemas.source_record import SOURCE_NAME

HEADER = ("unified_id", "source", "source_label", "name")


@dataclass(frozen=True)
class LabelEntry:
    unified_id: int
    source: str
    source_label: str
    name: str


@dataclass(frozen=True)
class LabelMap:
    entries: tuple[LabelEntry, ...]

    def __post_init__(self):
        seen: set[tuple[str, str]] = set()
        finished: set[str] = set()  # sources whose block has ended
        previous = None
        for i, e in enumerate(self.entries):
            if e.unified_id != i:
                raise SchemaError(f"label map ids must be 0..N-1 in order; row {i} has id {e.unified_id}")
            if not SOURCE_NAME.match(e.source):
                raise SchemaError(f"label map id {i}: bad source name {e.source!r}")
            if not e.source_label:
                raise SchemaError(f"label map id {i}: empty source label")
            if (e.source, e.source_label) in seen:
                raise SchemaError(f"label map id {i}: {e.source}/{e.source_label} appears twice")
            if e.source != previous:
                if e.source in finished:
                    raise SchemaError(f"label map id {i}: source {e.source} is not one contiguous block")
                if previous is not None:
                    finished.add(previous)
                previous = e.source
            seen.add((e.source, e.source_label))

    @property
    def num_classes(self) -> int:
        return len(self.entries)

    def ranges(self) -> dict[str, tuple[int, int]]:
        """{source: (first id, last id)} inclusive, in id order."""
        out: dict[str, tuple[int, int]] = {}
        for e in self.entries:
            first = out.get(e.source, (e.unified_id, e.unified_id))[0]
            out[e.source] = (first, e.unified_id)
        return out

    def lookup(self) -> dict[tuple[str, str], int]:
        return {(e.source, e.source_label): e.unified_id for e in self.entries}

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(HEADER)
        for e in self.entries:
            writer.writerow((e.unified_id, e.source, e.source_label, e.name))
        return buf.getvalue()

    def digest(self) -> str:
        return hashlib.sha256(self.to_csv().encode("utf-8")).hexdigest()

    @classmethod
    def from_csv(cls, text: str, where: str = "label_map.csv") -> LabelMap:
        reader = csv.reader(io.StringIO(text))
        header = tuple(next(reader, ()))
        if header != HEADER:
            raise SchemaError(f"{where}:1: header must be {','.join(HEADER)}, got {','.join(header)}")
        entries = []
        for line, row in enumerate(reader, start=2):
            if len(row) != len(HEADER):
                raise SchemaError(f"{where}:{line}: expected {len(HEADER)} fields, got {len(row)}")
            try:
                uid = int(row[0])
            except ValueError:
                raise SchemaError(f"{where}:{line}: unified_id {row[0]!r} is not an integer") from None
            entries.append(LabelEntry(uid, row[1], row[2], row[3]))
        try:
            return cls(tuple(entries))
        except SchemaError as e:
            raise SchemaError(f"{where}: {e}") from None
