"""The pipeline's side products: JSON-lines files in the work folder that the
launcher turns into reports and the manifest (unibed/dataplane/build/launcher.py).

Each file's writer (a step of WriteSideProducts) and its reader (a function
the launcher calls once the pipeline has run) live here together, so one
module knows each format:

    rejected.jsonl  read_rejections(work)   every Rejection of the pipeline
    drops.jsonl     read_drops(work)        every keep_rule.Drop
    shards.jsonl    read_shard_infos(work)  every shard written, by split
    counts.jsonl    read_counts(work)       inputs, not selected, records per split
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import apache_beam as beam
from apache_beam.pvalue import PCollection

from unibed.dataplane import storage
from unibed.dataplane.build.graph.examples import Written
from unibed.dataplane.build.graph.write_shards import WrittenShard
from unibed.dataplane.dedup import keep_rule
from unibed.schemas.manifest import ShardInfo
from unibed.schemas.source_record import Rejection

REJECTED = "rejected.jsonl"
DROPS = "drops.jsonl"
SHARD_INFOS = "shards.jsonl"
COUNTS = "counts.jsonl"
INPUT, NOT_SELECTED = "input", "not_selected"  # count keys beside (split, source, label)


class SideProducts(NamedTuple):
    rejected: tuple[PCollection, ...]  # Rejection, in one collection or more
    drops: PCollection  # keep_rule.Drop
    shards: PCollection  # WrittenShard
    inputs: PCollection  # str: the source of each input accounted for
    not_selected: PCollection  # str: the source of each image the recipe left out
    written: PCollection  # examples.Written: one per record


class WriteSideProducts(beam.PTransform):
    """SideProducts -> one JSON-lines file each in `work` (returns the names of the files written).

    Every line, of every file, goes through one combine keyed by file name,
    which counts equal lines (the counts file's keys are such lines, one per
    record or input), and one writer. Four WriteToText transforms and a Count
    were 51 of the graph's 183 steps (now 11) and more than 14 of its 59 fused
    stages, each with Beam's fixed cost to build and run, for files of a few
    lines. A file with no lines is not written; its reader finds nothing.
    Lines are written sorted (their readers count or sort them anyway). A
    file's distinct lines are held by one worker, as assemble.py holds them
    all in the launcher afterwards: a few tens of MB at the reference build's
    scale (one line per rejection, duplicate and shard, one key per source)."""

    def __init__(self, work: str):
        super().__init__()
        self._work = work

    def expand(self, products: SideProducts):
        rejected = tuple(
            pcoll | f"Rejected{i}" >> beam.Map(file_line, REJECTED, rejection_line)
            for i, pcoll in enumerate(products.rejected)
        )
        lines = (
            *rejected,
            products.drops | "Drops" >> beam.Map(file_line, DROPS, drop_line),
            products.shards | "ShardInfos" >> beam.Map(file_line, SHARD_INFOS, shard_line),
            products.written | "WrittenKey" >> beam.Map(file_line, COUNTS, written_count_key),
            products.inputs | "InputKey" >> beam.Map(file_line, COUNTS, count_key, INPUT),
            products.not_selected | "NotSelectedKey" >> beam.Map(file_line, COUNTS, count_key, NOT_SELECTED),
        )
        return (
            lines
            | "AllLines" >> beam.Flatten()
            | "ByFile" >> beam.CombinePerKey(CountLines())
            | "Write" >> beam.Map(write_lines, self._work)
        )


def file_line(element, name: str, to_line, *args) -> tuple[str, str]:
    """(file name, its line for `element`)."""
    return name, to_line(element, *args)


class CountLines(beam.CombineFn):
    """A file's lines -> Counter(line: times seen)."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, counted: Counter, line: str) -> Counter:
        counted[line] += 1
        return counted

    def merge_accumulators(self, accumulators) -> Counter:
        merged = Counter()
        for counted in accumulators:
            merged.update(counted)
        return merged

    def extract_output(self, counted: Counter) -> Counter:
        return counted


def write_lines(name_and_lines: tuple, work: str) -> str:
    """Write one side-product file whole (a retried bundle rewrites it whole):
    the counts file as [key, count] lines, the others each line as often as seen."""
    name, counted = name_and_lines
    with storage.open_write(_path(work, name)) as f:
        for line, n in sorted(counted.items()):
            rows = [count_line((line, n))] if name == COUNTS else [line] * n
            f.write("".join(row + "\n" for row in rows).encode())
    return name


def _path(work: str, name: str) -> str:
    return f"{work}/{name}"


def _read_lines(work: str, name: str) -> list:
    path = _path(work, name)
    if not storage.exists(path):
        return []
    return [json.loads(line) for line in storage.read_text(path).splitlines() if line]


# --- rejections ---------------------------------------------------------------------------


def rejection_line(rejection: Rejection) -> str:
    r = rejection
    return json.dumps([r.source, r.image_id, r.reason.value, r.detail, r.where])


def read_rejections(work: str) -> list[Rejection]:
    return [Rejection(*row) for row in _read_lines(work, REJECTED)]


# --- drops --------------------------------------------------------------------------------


def drop_line(drop: keep_rule.Drop) -> str:
    return json.dumps(asdict(drop))


def read_drops(work: str) -> list[keep_rule.Drop]:
    return [keep_rule.Drop(**row) for row in _read_lines(work, DROPS)]


# --- shard infos --------------------------------------------------------------------------


def shard_line(shard: WrittenShard) -> str:
    return json.dumps({"split": shard.split, **shard.info.model_dump(mode="json")})


def read_shard_infos(work: str) -> dict[str, list[ShardInfo]]:
    """split -> its shards, in the file's order."""
    splits: dict[str, list[ShardInfo]] = defaultdict(list)
    for row in _read_lines(work, SHARD_INFOS):
        split = row.pop("split")
        splits[split].append(ShardInfo(**row))
    return splits


# --- counts -------------------------------------------------------------------------------


def written_count_key(written: Written) -> str:
    return json.dumps([written.split, written.source, written.label])


def count_key(source: str, kind: str) -> str:
    return json.dumps([kind, source])


def count_line(key_and_count: tuple) -> str:
    key, n = key_and_count
    return json.dumps([json.loads(key), n])


@dataclass
class Counts:
    """counts.jsonl read back."""

    # source -> inputs the pipeline accounted for / images the recipe left out
    inputs: Counter = field(default_factory=Counter)
    not_selected: Counter = field(default_factory=Counter)
    # split -> source -> records written / split -> unified label (int) -> records written
    per_source: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    per_class: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))


def read_counts(work: str) -> Counts:
    counts = Counts()
    for key, n in _read_lines(work, COUNTS):
        if key[0] == INPUT:
            counts.inputs[key[1]] += n
        elif key[0] == NOT_SELECTED:
            counts.not_selected[key[1]] += n
        else:
            split, source, label = key
            counts.per_source[split][source] += n
            counts.per_class[split][label] += n
    return counts
