"""JoinSplits: each image joined with its split becomes a Record: the split,
the key and a reference to its serialized tf.train.Example, which Preprocess
wrote to a work file (unibed/dataplane/build/payload.py). No image bytes
cross this shuffle; example_values is the Example's content, encoded there."""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import PCollection, TaggedOutput

from unibed.dataplane.build.graph.elements import Candidate
from unibed.dataplane.build.graph.join import by_tag, tagged_pair
from unibed.dataplane.build.payload import PayloadRef
from unibed.schemas import features


class ExampleInputs(NamedTuple):
    write_inputs: PCollection  # (key, WriteInput): every image that decoded
    splits: PCollection  # (key, ("split", split)): the images to write (AssignSplits)
    losing_inputs: PCollection  # (key, where): inputs that lost their key to another


class Record(NamedTuple):
    split: str
    key: str  # source/image_id
    payload: PayloadRef  # where its serialized tf.train.Example lies


class Written(NamedTuple):
    """What the counts need of a written record."""

    split: str
    source: str
    label: int


class Examples(NamedTuple):
    records: PCollection  # Record
    written: PCollection  # Written, one per record


class JoinSplits(beam.PTransform):
    """ExampleInputs -> Examples."""

    def expand(self, inputs: ExampleInputs):
        losing = beam.pvalue.AsDict(inputs.losing_inputs | "LosingInput" >> beam.Map(as_present))
        candidates = inputs.write_inputs | "CandidateByKey" >> beam.Map(tagged_pair, "candidate")
        examples = (
            (candidates, inputs.splits)
            | "SplitTagged" >> beam.Flatten()
            | "SplitJoin" >> beam.GroupByKey()
            | "ToRecord" >> beam.ParDo(ToRecord(), losing_inputs=losing).with_outputs(
                "written", main="record"
            )
        )
        return Examples(examples.record, examples.written)


def as_present(key_and_where: tuple) -> tuple:
    return key_and_where, True


class ToRecord(beam.DoFn):
    """Join an image with its split; emit a Record and (tagged 'written') what counts need."""

    def __init__(self):
        self._written = Metrics.counter("build", "records_written")

    def process(self, element, losing_inputs: dict):
        key, values = element
        grouped = by_tag(values, "candidate", "split")
        splits = grouped["split"]
        if splits:  # no split: dropped as a duplicate, or an exclusion image
            ((_, source, label, payload),) = [
                c for c in grouped["candidate"] if (key, c[0]) not in losing_inputs
            ]
            self._written.inc()
            yield TaggedOutput("written", Written(splits[0], source, label))
            yield Record(splits[0], key, payload)


def example_values(candidate: Candidate, jpeg: bytes) -> dict:
    """What a written image's Example holds (features.FEATURES fixes their order)."""
    return {
        features.ENCODED: jpeg,
        features.LABEL: candidate.label,
        features.IMAGE_ID: candidate.key,
        features.SOURCE: candidate.source,
        features.SOURCE_LABEL: candidate.source_label,
        features.HEIGHT: candidate.height,
        features.WIDTH: candidate.width,
        features.FORMAT: "jpeg",
        features.CHANNELS: 3,
        features.COLORSPACE: "RGB",
        features.PHASH: features.phash_to_int64(candidate.phash),
    }
