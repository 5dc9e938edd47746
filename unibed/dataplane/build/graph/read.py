"""ReadAndPreprocess: every unit read, the recipe's selection kept, each kept
image preprocessed into a Candidate (hashes, metadata, and a reference to its
serialized Example, written to a work file: unibed/dataplane/build/payload.py),
which leaves as the two small records its two readers need: (key, (where,
Meta)) for ResolveKeys and (key, WriteInput) for the split join.

The plan's indexes and selections are staged as `_work/read_context.pickle`
and reach the read step as a side input, so the job graph stays small.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import PCollection, TaggedOutput

from unibed.dataplane import storage
from unibed.dataplane.build.graph.elements import Candidate
from unibed.dataplane.build.graph.examples import example_values
from unibed.dataplane.build.payload import PayloadWriter
from unibed.dataplane.build.selection import SourceSelection, rank_key
from unibed.dataplane.dedup import keep_rule
from unibed.dataplane.images.preprocess import ProcessedImage, Rejected, preprocess
from unibed.dataplane.records import codec as example_codec
from unibed.dataplane.sources import read_unit
from unibed.dataplane.sources.base import ReadUnit, SourceIndex
from unibed.schemas.heldout import HeldOutMap
from unibed.schemas.label_map import LabelMap
from unibed.schemas.recipe import Recipe
from unibed.schemas.source_record import Rejection, SourceImage, SourceRecord

READ_CONTEXT = "read_context.pickle"  # in the work folder


@dataclass(frozen=True)
class ReadContext:
    """What reading needs of the plan: each source's index and selection."""

    indexes: dict[str, SourceIndex]
    selections: dict[str, SourceSelection]

    def wanted_keys(self) -> list[str]:
        listed = [s for s in self.selections.values() if s.wanted is not None]
        return [f"{s.source}/{image_id}" for s in listed for image_id in sorted(s.wanted)]


def stage_read_context(context: ReadContext, path: str) -> str:
    """The launcher writes the read context next to the side products, where
    workers can read it (gs:// on Dataflow): the job graph stays small however
    many ids the sources list (Dataflow caps a job graph's size)."""
    storage.write_bytes(path, pickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load_read_context(path: str) -> ReadContext:
    return pickle.loads(storage.read_bytes(path))


class Read(NamedTuple):
    """ReadAndPreprocess's outputs."""

    metas: PCollection  # (key, (where, Meta)): every image that decoded
    write_inputs: PCollection  # (key, WriteInput): the same images, as the split join needs them
    rejected: PCollection  # Rejection: unreadable inputs and images preprocessing refused
    wanted: PCollection  # str: every key a listing layout promised ('source/image_id')
    inputs: PCollection  # str: the source of every input accounted for, once each
    not_selected: PCollection  # str: the source of every image the recipe left out


class ReadAndPreprocess(beam.PTransform):
    """pipeline -> Read, from the units (one per archive/batch) and the staged
    read context; the Examples go to work files under `work`."""

    def __init__(
        self, units: list[ReadUnit], context_path: str, recipe: Recipe, label_map: LabelMap, work: str,
        heldout: HeldOutMap | None = None,
    ):
        super().__init__()
        self._heldout = heldout
        self._units = units
        self._context_path = context_path
        self._recipe = recipe
        self._label_map = label_map
        self._work = work

    def expand(self, pipeline):
        context = (
            pipeline
            | "ContextPath" >> beam.Create([self._context_path])
            | "LoadContext" >> beam.Map(load_read_context)
        )
        read = (
            pipeline
            | "Units" >> beam.Create(self._units, reshuffle=True)
            | "Read" >> beam.ParDo(
                ReadSelected(self._recipe.split.salt, self._recipe.image.max_input_bytes),
                context=beam.pvalue.AsSingleton(context),
            ).with_outputs("input", "rejected", "not_selected", main="image")
        )
        processed = read.image | "Preprocess" >> beam.ParDo(
            Preprocess(self._recipe, self._label_map, self._work, self._heldout)
        ).with_outputs("rejected", "write_input", main="meta")
        rejected = (read.rejected, processed.rejected) | "AllRejected" >> beam.Flatten()
        wanted = (
            context
            | "Wanted" >> beam.FlatMap(ReadContext.wanted_keys)
            | "SpreadWanted" >> beam.Reshuffle()
        )
        return Read(processed.meta, processed.write_input, rejected, wanted, read.input, read.not_selected)


class ReadSelected(beam.DoFn):
    """Read one unit, keep the images the recipe selected, pass every rejection on.

    Emits ('input', source) once per input it accounts for, so the launcher can
    check inputs = written + duplicates + rejected with an independent count.
    The read context arrives as a side input (loaded once per worker, cached by the runner).
    An input over `max_input_bytes` is a rejection, never held in memory.
    """

    def __init__(self, salt: str, max_input_bytes: int):
        self._salt = salt
        self._max_input_bytes = max_input_bytes
        self._read = Metrics.counter("build", "images_read")

    def process(self, unit: ReadUnit, context: ReadContext):
        selection = context.selections[unit.source]
        chosen = set(selection.classes)
        buffered: list[SourceImage] = []
        for item in read_unit(unit, context.indexes[unit.source], self._max_input_bytes):
            if isinstance(item, Rejection):
                yield TaggedOutput("input", item.source)
                yield TaggedOutput("rejected", item)
                continue
            self._read.inc()
            record = item.record
            if selection.cap_in_unit:
                if record.label in chosen:
                    buffered.append(item)
                else:
                    yield from _not_selected(item)
            elif selection.wanted.get(record.image_id) == record.label:
                yield from _selected(item)
            else:
                yield from _not_selected(item)
        yield from self._cap_per_class(buffered, selection)

    def _cap_per_class(self, items: list[SourceImage], selection: SourceSelection):
        """Layouts without an up-front listing: the cap applies to what the unit held."""
        by_class: dict[str, list[SourceImage]] = defaultdict(list)
        for item in items:
            by_class[item.record.label].append(item)
        for in_class in by_class.values():
            in_class.sort(key=lambda i: rank_key(self._salt, i.record.source, i.record.image_id))
            cap = selection.cap or len(in_class)
            for item in in_class[:cap]:
                yield from _selected(item)
            for item in in_class[cap:]:
                yield from _not_selected(item)


def _selected(item: SourceImage) -> Iterable:
    yield TaggedOutput("input", item.record.source)
    yield item


def _not_selected(item: SourceImage) -> Iterable:
    yield TaggedOutput("not_selected", item.record.source)


class Preprocess(beam.DoFn):
    """SourceImage -> (key, (where, Meta)) and (key, WriteInput) (tagged 'write_input'), or a
    Rejection (tagged 'rejected') for an image the spec refuses.

    Each bundle appends its Examples to a work file of its own, closed in
    finish_bundle. Candidates leave before that, but nothing reads the file in
    this fused stage: its only reader, WriteShards, lies behind the split
    join's and the shard grouping's shuffles, which see a bundle's output only
    once the bundle committed, i.e. after finish_bundle (local runners and
    Dataflow alike). A failed bundle's file is an orphan no output refers to.
    """

    def __init__(self, recipe: Recipe, label_map: LabelMap, work: str, heldout: HeldOutMap | None = None):
        self._spec = recipe.image
        # held-out classes (the evaluation split) have ids after the training label space
        self._ids = label_map.lookup() | (heldout.lookup() if heldout else {})
        self._num_training = label_map.num_classes
        self._rank = {s.name: i for i, s in enumerate(recipe.sources)}
        self._work = work
        self._rejected = Metrics.counter("build", "images_rejected")
        self._payloads: PayloadWriter | None = None

    def start_bundle(self):
        self._payloads = PayloadWriter(self._work)

    def finish_bundle(self):
        self._payloads.close()

    def process(self, item: SourceImage):
        record = item.record
        result = preprocess(item.data, self._spec)
        if isinstance(result, Rejected):
            self._rejected.inc()
            where = str(record.location)
            yield TaggedOutput(
                "rejected", Rejection(record.source, record.image_id, result.reason, result.detail, where)
            )
            return
        candidate = self._candidate(record, result)
        yield candidate.key, (candidate.where, candidate.meta())
        yield TaggedOutput("write_input", (candidate.key, candidate.write_input()))

    def _candidate(self, record: SourceRecord, image: ProcessedImage) -> Candidate:
        pixels = image.source_width * image.source_height
        label = self._ids[(record.source, record.label)]
        candidate = Candidate(
            record.key, record.source, record.image_id, record.label,
            label, str(record.location),
            None, image.width, image.height, image.phash, image.sha256,
            keep_rule.preference(False, pixels, self._rank[record.source], record.key,
                                 is_evaluation=label >= self._num_training),
            image.probes,
        )
        example = example_codec.encode_example(example_values(candidate, image.jpeg))
        return dataclasses.replace(candidate, payload=self._payloads.append(example))
