"""Deduplicate: which images survive, and a Drop for each one that does not.

Identical hashes first (a GroupByKey: every member of a group is a duplicate
of its best image), then the near-duplicate search on the groups' best images
only (their pHashes within the threshold, or a probe hash of one within its
kind's radius of the other's pHash: a mirrored, cropped, letterboxed or
captioned copy, see images/robust_hashes.py), then the keep rule over every
image that has a near neighbour. Images
of the recipe's exclusion sets take part (they win every tie, see keep_rule)
but never survive: they are not the build's to write.
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
from apache_beam.pvalue import PCollection, TaggedOutput

from unibed.dataplane import storage
from unibed.dataplane.build.graph.elements import EXCLUSION, Meta
from unibed.dataplane.build.graph.join import by_tag, tagged
from unibed.dataplane.dedup import keep_rule
from unibed.dataplane.dedup.near_duplicates import NearDuplicatePairs, signed_hash
from unibed.dataplane.dedup.probe_pairs import ProbePairs
from unibed.dataplane.images.preprocess import Rejected, preprocess
from unibed.dataplane.images.robust_hashes import IDENTITY, Rule, pack_probes, rules_from
from unibed.schemas.errors import SchemaError
from unibed.schemas.recipe import DedupSpec, ImageSpec


class Deduplicated(NamedTuple):
    """Deduplicate's outputs."""

    survivors: PCollection  # (label, key): the images to write
    drops: PCollection  # keep_rule.Drop: every image dropped, exclusion images' copies included


class Deduplicate(beam.PTransform):
    """Meta (one per key) -> Deduplicated."""

    def __init__(self, dedup: DedupSpec, image: ImageSpec):
        super().__init__()
        self._dedup = dedup
        self._image = image

    def expand(self, metas):
        exclusions = [m for loc in self._dedup.exclusion_sets for m in read_exclusion_set(loc, self._image)]
        if exclusions:
            excluded = metas.pipeline | "Exclusions" >> beam.Create(exclusions)
            metas = (metas, excluded) | "WithExclusions" >> beam.Flatten()
        drops = self._drops(metas)
        by_key = metas | "SourceAndLabelByKey" >> beam.Map(tagged, "meta", source_and_label)
        dropped = drops | "DroppedKey" >> beam.Map(tagged, "dropped", dropped_key)
        survivors = (
            (by_key, dropped)
            | "DropTagged" >> beam.Flatten()
            | "DropJoin" >> beam.GroupByKey()
            | "Survivors" >> beam.FlatMap(survivors_of)
        )
        return Deduplicated(survivors, drops)

    def _drops(self, metas):
        """Identical hashes collapse onto their best image; the best images meet the
        near-duplicate search; an identical copy follows its best image's fate."""
        pipeline, threshold = metas.pipeline, self._dedup.near_hamming_threshold
        if threshold is not None or self._dedup.exact:
            groups = metas | "IdenticalHashes" >> CollapseIdenticalHashes(by_phash=threshold is not None)
        else:
            groups = IdenticalGroups(metas, pipeline | "NoCopies" >> beam.Create([]))
        if threshold is not None:
            rules = rules_from(self._dedup.probes.model_dump())
            best_drops = groups.representatives | "NearDuplicates" >> NearDuplicateDrops(threshold, rules)
        else:
            best_drops = pipeline | "NoNearDuplicates" >> beam.Create([])
        by_dropped = beam.pvalue.AsDict(best_drops | "DropByKey" >> beam.Map(keyed_drop))
        copy_drops = groups.copies | "CopyDrops" >> beam.Map(drop_copy, representative_drops=by_dropped)
        return (best_drops, copy_drops) | "AllDrops" >> beam.Flatten()


def read_exclusion_set(location: str, spec: ImageSpec) -> list[Meta]:
    """Hashes of the images no kept image may near-duplicate (never written).
    Read by the launcher while it builds the graph."""
    metas = []
    for path, _ in storage.list_files(storage.join(location, "**")):
        result = preprocess(storage.read_bytes(path), spec)
        if isinstance(result, Rejected):
            raise SchemaError(
                f"exclusion image {path} cannot be used: {result.reason.value}: {result.detail}"
            )
        key = f"{EXCLUSION}/{path}"
        metas.append(Meta(key, EXCLUSION, EXCLUSION, result.phash, bytes.fromhex(result.sha256),
                          keep_rule.preference(True, 0, -1, key), pack_probes(result.probes)))
    return metas


def keyed_drop(drop: keep_rule.Drop) -> tuple:
    return drop.dropped, drop


def dropped_key(drop: keep_rule.Drop) -> tuple:
    return drop.dropped, None


def source_and_label(meta: Meta) -> tuple:
    """(key, (source, label)): all the survivors' join needs (not the whole Meta)."""
    return meta.key, (meta.source, meta.label)


def survivors_of(element) -> list[tuple[str, str]]:
    """A key nobody dropped survives, as (label, key), unless it is an exclusion image."""
    key, values = element
    grouped = by_tag(values, "meta", "dropped")
    if grouped["dropped"]:
        return []
    return [(label, key) for source, label in grouped["meta"] if source != EXCLUSION]


# --- identical hashes -----------------------------------------------------------------


class IdenticalCopy(NamedTuple):
    """An image whose hash equals that of a better one, its group's representative."""

    copy: Meta
    representative: Meta
    kind: str  # "exact" (same bytes) or the kind of the group's hash


class IdenticalGroups(NamedTuple):
    representatives: PCollection  # Meta: the best image of each hash
    copies: PCollection  # IdenticalCopy: every other image


class CollapseIdenticalHashes(beam.PTransform):
    """Meta -> IdenticalGroups, grouped by pHash (for the near-duplicate search:
    identical pHashes are near duplicates at distance 0) or else by sha256."""

    def __init__(self, by_phash: bool):
        super().__init__()
        self._by_phash = by_phash

    def expand(self, metas):
        group_kind = "near" if self._by_phash else "exact"
        groups = (
            metas
            | "KeyByHash" >> beam.Map(keyed_by_phash if self._by_phash else keyed_by_sha256)
            | "SameHash" >> beam.GroupByKey()
            | "Collapse" >> beam.FlatMap(collapse_identical, group_kind).with_outputs(
                "copy", main="representative"
            )
        )
        return IdenticalGroups(groups.representative, groups.copy)


def keyed_by_phash(meta: Meta) -> tuple:
    """As int64: Beam encodes a larger int (half of all pHashes) by pickling it."""
    return signed_hash(meta.phash), meta


def keyed_by_sha256(meta: Meta) -> tuple:
    return meta.sha256, meta


def collapse_identical(element, kind_of_group: str):
    """Images with an identical hash are duplicates of the group's best image."""
    _, metas = element
    metas = sorted(metas, key=lambda m: m.preference)
    best = metas[0]
    yield best
    for m in metas[1:]:
        kind = "exact" if m.sha256 == best.sha256 else kind_of_group
        yield TaggedOutput("copy", IdenticalCopy(m, best, kind))


def drop_copy(copy: IdenticalCopy, representative_drops: dict) -> keep_rule.Drop:
    """A copy follows its representative: if the representative was dropped,
    the copy is a duplicate of what the representative lost to."""
    image, best, kind = copy
    lost_to = representative_drops.get(best.key)
    if lost_to is None:
        kept, distance, kept_label = best.key, 0, best.label
    else:
        kept, distance, kept_label, kind = lost_to.kept, lost_to.distance, lost_to.kept_label, lost_to.kind
    # what the copy lost to is at least as preferred as its representative
    kind = keep_rule.guard_kind(kind, best.preference, image.preference)
    if kept_label == EXCLUSION:
        kind = EXCLUSION
    conflicting = kept_label != image.label
    return keep_rule.Drop(image.key, kept, distance, kind, conflicting, image.label, kept_label)


# --- near duplicates -------------------------------------------------------------------


class NearDuplicateDrops(beam.PTransform):
    """Meta (distinct hashes) -> keep_rule.Drop, by the keep rule over every image within
    `threshold` of another, or paired with another by a probe-hash rule."""

    def __init__(self, threshold: int, rules: tuple[Rule, ...] = ()):
        super().__init__()
        self._threshold = threshold
        self._rules = rules

    def expand(self, metas):
        pairs = (
            metas
            | "HashByKey" >> beam.Map(key_and_phash)
            | "NearPairs" >> NearDuplicatePairs(self._threshold)
            | "PlainKind" >> beam.Map(with_kind, IDENTITY)
        )
        if self._rules:
            probe_pairs = (
                metas
                | "HashesByKey" >> beam.Map(key_and_hashes)
                | "ProbePairs" >> ProbePairs(self._rules)
            )
            pairs = (pairs, probe_pairs) | "AllPairs" >> beam.Flatten()
        edges = pairs | "Edges" >> beam.FlatMap(both_directions)
        return (
            (metas | "NodeFacts" >> beam.Map(tagged, "meta", node_facts), edges)
            | "NodeTagged" >> beam.Flatten()
            | "NodeJoin" >> beam.GroupByKey()
            | "Nodes" >> beam.FlatMap(node_of)
            # one group: the keep rule visits every involved image (a GroupByKey,
            # not combiners.ToList, which adds two stages for an empty input's [])
            | "AllNodes" >> beam.GroupByKey()
            | "KeepRule" >> beam.FlatMap(keep_rule_of_group)
        )


def node_facts(meta: Meta) -> tuple:
    """(key, (preference, label)): what the keep rule needs of an image (not the whole Meta)."""
    return meta.key, (meta.preference, meta.label)


def key_and_phash(meta: Meta) -> tuple:
    return meta.key, meta.phash


def key_and_hashes(meta: Meta) -> tuple:
    """Every hash of the image, its pHash as kind IDENTITY; as int64, which Beam encodes
    natively (it pickles larger ints: this shuffle would pickle ~4 per image)."""
    hashes = ((IDENTITY, meta.phash), *meta.probes)
    return meta.key, tuple((kind, signed_hash(value)) for kind, value in hashes)


def with_kind(pair: tuple, kind: str) -> tuple:
    return (*pair, kind)


def both_directions(pair: tuple) -> list:
    """(a, b, distance, kind) -> each image's neighbour (other key, distance, kind), tagged
    "pair" for the node join; kind as duplicates.csv names it: "near" for the pHashes,
    "near:<probe kind>" for a probe."""
    key_a, key_b, distance, kind = pair
    named = IDENTITY if kind == IDENTITY else f"{IDENTITY}:{kind}"
    return [(key_a, ("pair", (key_b, distance, named))), (key_b, ("pair", (key_a, distance, named)))]


_ALL = "all"  # the single key of the keep rule's group


def node_of(element) -> list[tuple[str, keep_rule.Node]]:
    """(_ALL, Node) for an image with a near neighbour; nothing for the others."""
    key, values = element
    grouped = by_tag(values, "meta", "pair")
    if not grouped["pair"]:
        return []
    ((preference, label),) = grouped["meta"]
    neighbours = tuple(sorted(grouped["pair"]))
    return [(_ALL, keep_rule.Node(key, preference, label, neighbours))]


def keep_rule_of_group(element) -> list[keep_rule.Drop]:
    _, nodes = element
    return keep_rule.choose(list(nodes))
