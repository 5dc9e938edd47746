"""ResolveKeys: one input per image key.

Two inputs may share a key (the same image listed twice, or read from two
places): the first by location wins and the others are DUPLICATE_ID. A key a
listing promised that nobody read, and nobody rejected, is MISSING_IMAGE.
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
from apache_beam.pvalue import PCollection, TaggedOutput

from unibed.dataplane.build.graph.join import by_tag, tagged, tagged_pair
from unibed.dataplane.build.graph.read import Read
from unibed.schemas.source_record import Rejection, RejectReason


class Resolved(NamedTuple):
    """ResolveKeys' outputs."""

    metas: PCollection  # Meta: one per key
    rejected: tuple[PCollection, ...]  # Rejection: every rejection so far (read's, these)
    losing_inputs: PCollection  # (key, where): the inputs a key's winner beat, never to be written


class ResolveKeys(beam.PTransform):
    """Read -> Resolved."""

    def expand(self, read: Read):
        resolved = (
            (
                read.metas | "Meta" >> beam.Map(tagged_pair, "meta"),
                read.wanted | "KeyWanted" >> beam.Map(tagged, "wanted", key_only),
                read.rejected | "SeenKey" >> beam.Map(tagged, "seen", rejected_key),
            )
            | "Tagged" >> beam.Flatten()
            | "ByKey" >> beam.GroupByKey()
            | "Resolve" >> beam.FlatMap(resolve_key).with_outputs(
                "rejected", "losing_input", main="meta"
            )
        )
        # two collections, not one Flatten: its writer flattens them with the other side products
        return Resolved(resolved.meta, (read.rejected, resolved.rejected), resolved.losing_input)


def key_only(key: str) -> tuple:
    return key, None


def rejected_key(rejection: Rejection) -> tuple:
    return f"{rejection.source}/{rejection.image_id}", None


def resolve_key(element):
    """One input per key: the first by location wins, later ones are DUPLICATE_ID;
    a wanted key nobody read is MISSING_IMAGE."""
    key, values = element
    grouped = by_tag(values, "meta", "wanted", "seen")
    source, _, image_id = key.partition("/")
    located = sorted(grouped["meta"], key=lambda where_meta: where_meta[0])
    # no meta but rejected earlier: reported there already
    if not located and grouped["wanted"] and not grouped["seen"]:
        detail = "listed in the metadata but no such image in the data"
        missing = Rejection(source, image_id, RejectReason.MISSING_IMAGE, detail, source)
        yield TaggedOutput("rejected", missing)
    if located:
        yield located[0][1]
    for extra_where, _ in located[1:]:
        detail = f"also read from {located[0][0]}, which wins"
        duplicate = Rejection(source, image_id, RejectReason.DUPLICATE_ID, detail, extra_where)
        yield TaggedOutput("rejected", duplicate)
        yield TaggedOutput("losing_input", (key, extra_where))
