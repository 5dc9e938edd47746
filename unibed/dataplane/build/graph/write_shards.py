"""WriteShards: records -> train-*/validation-* shards. Each split's shard
count comes from its total size; a record's shard and its place in it from its
shuffle key (unibed/dataplane/build/shards.py). The shard grouping moves only
references: each shard's writer reads its Examples from the work files, in
shuffle-key order, a batch at a time (unibed/dataplane/build/payload.py)."""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam

from unibed.dataplane.build import payload, shards
from unibed.dataplane.build.graph.examples import Record
from unibed.schemas.manifest import ShardInfo
from unibed.schemas.recipe import ShardSpec


class WrittenShard(NamedTuple):
    split: str
    info: ShardInfo


class WriteShards(beam.PTransform):
    """Record -> WrittenShard, one per shard of each split."""

    def __init__(self, output: str, work: str, spec: ShardSpec, salt: str):
        super().__init__()
        self._output = output
        self._work = work
        self._spec = spec
        self._salt = salt

    def expand(self, records):
        shard_counts = (
            records
            | "SplitSize" >> beam.Map(split_and_size)
            | "SumSizes" >> beam.CombinePerKey(beam.combiners.TupleCombineFn(sum, sum))
            | "ShardCount" >> beam.Map(shard_count, self._spec)
        )
        # every shard index gets a write, even one the hash left empty
        every_shard = shard_counts | "EveryShard" >> beam.FlatMap(every_shard_of)
        placed = records | "AssignShard" >> beam.Map(
            place_in_shard, self._salt, counts=beam.pvalue.AsDict(shard_counts)
        )
        return (
            (placed, every_shard)
            | "WithEmpty" >> beam.Flatten()
            | "Shards" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(WriteShard(self._output, self._work), counts=beam.pvalue.AsDict(shard_counts))
        )


def split_and_size(record: Record) -> tuple:
    """(split, (bytes, records)), to be summed per split."""
    _, _, length = record.payload
    return record.split, (length, 1)


def shard_count(split_total: tuple, spec: ShardSpec) -> tuple:
    split, (total_bytes, num_records) = split_total
    return split, shards.num_shards(total_bytes, num_records, spec)


def every_shard_of(split_count: tuple) -> list:
    """((split, index), None) for every shard of the split."""
    split, count = split_count
    return [((split, index), None) for index in range(count)]


def place_in_shard(record: Record, salt: str, counts: dict) -> tuple:
    """((split, shard index), (shuffle key, payload)): the shard writes in shuffle-key order."""
    index = shards.shard_index(record.key, salt, counts[record.split])
    return (record.split, index), (shards.shuffle_key(record.key, salt), record.payload)


class WriteShard(beam.DoFn):
    def __init__(self, output: str, work: str):
        self._output = output
        self._work = work

    def process(self, element, counts: dict):
        (split, index), records = element
        # None: the placeholder of an empty shard; sha256 shuffle keys never tie
        ordered = sorted(r for r in records if r is not None)
        examples = payload.read_in_order(self._work, (ref for _, ref in ordered))
        yield WrittenShard(split, shards.write_ordered_shard(self._output, split, index, counts[split], examples))
