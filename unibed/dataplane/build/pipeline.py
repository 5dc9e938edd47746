"""The dataset build as one Apache Beam pipeline (local runner or Dataflow).

    units --read+select--> SourceImage --preprocess--> Candidate (stored JPEG + hashes)
                                                           |
      metadata plane (no image bytes):  Meta -> one per key (duplicate ids, missing images)
                                             -> identical-hash groups -> near-duplicate pairs
                                             -> keep rule -> per-class split  => Fate per key
                                                           |
    Candidate x Fate --(join by key)--> Example --(shard by hash)--> train-*/validation-* shards

Image bytes cross two shuffles (the fate join and the shard grouping); every
decision is taken on small metadata. Side products (rejections, drops, counts,
shard infos) go to JSON-lines files in a work folder that the launcher turns
into reports and the manifest (unibed/dataplane/build/launcher.py).

Workers may be other processes or machines: they get everything through the
output's storage (local or gs://), never through launcher memory or files.
The plan's indexes and selections are staged as `_work/read_context.pickle`
and reach the read step as a side input, so the job graph stays small.
"""

from __future__ import annotations

import json
import pickle
from collections import defaultdict
from dataclasses import asdict, dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from unibed.dataplane import storage
from unibed.dataplane.build import shards
from unibed.dataplane.build.selection import SourceSelection, rank_key
from unibed.dataplane.build.split import split_class
from unibed.dataplane.dedup import keep_rule
from unibed.dataplane.dedup.near_duplicates import NearDuplicatePairs
from unibed.dataplane.images.preprocess import Rejected, preprocess
from unibed.dataplane.records import codec as example_codec
from unibed.dataplane.sources import read_unit
from unibed.dataplane.sources.base import ReadUnit, SourceIndex
from unibed.schemas import features
from unibed.schemas.errors import SchemaError
from unibed.schemas.label_map import LabelMap
from unibed.schemas.recipe import Recipe
from unibed.schemas.source_record import Rejection, RejectReason, SourceImage

EXCLUSION = "exclusion"


@dataclass(frozen=True, slots=True)
class Candidate:
    """An input image that decoded: what the rest of the build needs of it."""

    key: str  # source/image_id
    source: str
    image_id: str
    source_label: str
    label: int  # unified id (-1 for exclusion images)
    where: str  # its location, to tell apart two inputs that share a key
    jpeg: bytes
    width: int
    height: int
    phash: int
    sha256: str
    preference: tuple  # keep_rule.preference(...)

    def meta(self) -> Meta:
        return Meta(self.key, self.source, str(self.label), self.where, self.phash, self.sha256, self.preference)


@dataclass(frozen=True, slots=True)
class Meta:
    key: str
    source: str
    label: str  # unified id as text, or "exclusion"
    where: str
    phash: int
    sha256: str
    preference: tuple


# --- reading and preprocessing ---------------------------------------------------------


@dataclass(frozen=True)
class ReadContext:
    """What reading needs of the plan: each source's index and selection."""

    indexes: dict[str, SourceIndex]
    selections: dict[str, SourceSelection]

    def wanted_keys(self) -> list[str]:
        return [f"{s.source}/{i}" for s in self.selections.values() if s.wanted is not None for i in sorted(s.wanted)]


def stage_read_context(context: ReadContext, path: str) -> str:
    """The launcher writes the read context next to the side products, where
    workers can read it (gs:// on Dataflow): the job graph stays small however
    many ids the sources list (Dataflow caps a job graph's size)."""
    storage.write_bytes(path, pickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load_read_context(path: str) -> ReadContext:
    return pickle.loads(storage.read_bytes(path))


class ReadSelected(beam.DoFn):
    """Read one unit, keep the images the recipe selected, pass every rejection on.

    Emits ('input', source) once per input it accounts for, so the launcher can
    check inputs = written + duplicates + rejected with an independent count.
    The read context arrives as a side input (loaded once per worker, cached by the runner).
    """

    def __init__(self, salt: str):
        self._salt = salt
        self._read = Metrics.counter("build", "images_read")

    def process(self, unit: ReadUnit, context: ReadContext):
        selection = context.selections[unit.source]
        chosen = set(selection.classes)
        buffered: list[SourceImage] = []
        for item in read_unit(unit, context.indexes[unit.source]):
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
                    yield TaggedOutput("not_selected", record.source)
            elif selection.wanted.get(record.image_id) == record.label:
                yield TaggedOutput("input", record.source)
                yield item
            else:
                yield TaggedOutput("not_selected", record.source)
        # layouts without an up-front listing: the cap applies to what the unit held
        by_class: dict[str, list[SourceImage]] = defaultdict(list)
        for item in buffered:
            by_class[item.record.label].append(item)
        for items in by_class.values():
            items.sort(key=lambda i: rank_key(self._salt, i.record.source, i.record.image_id))
            cap = selection.cap or len(items)
            for item in items[:cap]:
                yield TaggedOutput("input", item.record.source)
                yield item
            for item in items[cap:]:
                yield TaggedOutput("not_selected", item.record.source)


class Preprocess(beam.DoFn):
    def __init__(self, recipe: Recipe, label_map: LabelMap):
        self._spec = recipe.image
        self._ids = label_map.lookup()
        self._rank = {s.name: i for i, s in enumerate(recipe.sources)}
        self._rejected = Metrics.counter("build", "images_rejected")

    def process(self, item: SourceImage):
        record = item.record
        result = preprocess(item.data, self._spec)
        if isinstance(result, Rejected):
            self._rejected.inc()
            yield TaggedOutput(
                "rejected", Rejection(record.source, record.image_id, result.reason, result.detail, str(record.location))
            )
            return
        yield Candidate(
            record.key, record.source, record.image_id, record.label,
            self._ids[(record.source, record.label)], str(record.location),
            result.jpeg, result.width, result.height, result.phash, result.sha256,
            keep_rule.preference(False, result.source_width * result.source_height, self._rank[record.source], record.key),
        )


def read_exclusion_set(location: str, spec) -> list[Meta]:
    """Hashes of the images no kept image may near-duplicate (never written)."""
    metas = []
    for path, _ in storage.list_files(storage.join(location, "**")):
        result = preprocess(storage.read_bytes(path), spec)
        if isinstance(result, Rejected):
            raise SchemaError(f"exclusion image {path} cannot be used: {result.reason.value}: {result.detail}")
        key = f"{EXCLUSION}/{path}"
        metas.append(Meta(key, EXCLUSION, EXCLUSION, path, result.phash, result.sha256,
                          keep_rule.preference(True, 0, -1, key)))
    return metas


# --- metadata plane ----------------------------------------------------------------------


def resolve_keys(element):
    """One input per key: the first by location wins, later ones are DUPLICATE_ID;
    a wanted key nobody read is MISSING_IMAGE."""
    key, grouped = element
    source, _, image_id = key.partition("/")
    metas = sorted(grouped["meta"], key=lambda m: m.where)
    # no meta but rejected earlier: reported there already
    if not metas and grouped["wanted"] and not grouped["seen"]:
        yield TaggedOutput("rejected", Rejection(source, image_id, RejectReason.MISSING_IMAGE,
                                                 "listed in the metadata but no such image in the data", source))
    if metas:
        yield metas[0]
    for extra in metas[1:]:
        yield TaggedOutput("rejected", Rejection(source, image_id, RejectReason.DUPLICATE_ID,
                                                 f"also read from {metas[0].where}, which wins", extra.where))
        yield TaggedOutput("rejected_where", (key, extra.where))


def collapse_identical(element, kind_of_group: str):
    """Images with an identical hash are duplicates of the group's best image."""
    _, metas = element
    metas = sorted(metas, key=lambda m: m.preference)
    best = metas[0]
    yield best
    for m in metas[1:]:
        kind = "exact" if m.sha256 == best.sha256 else kind_of_group
        yield TaggedOutput("member", (m, best, kind))


def to_nodes(element):
    key, grouped = element
    (meta,) = grouped["meta"]
    neighbours = tuple(sorted(grouped["pair"]))
    return keep_rule.Node(key, meta.preference, meta.label, neighbours)


def choose_drops(nodes):
    return keep_rule.choose(list(nodes))


def member_drop(element, rep_drops: dict):
    """A member of an identical-hash group follows its representative: if the
    representative was dropped, the member is a duplicate of what it lost to."""
    member, best, kind = element
    rep = rep_drops.get(best.key)
    if rep is None:
        kept, distance, kept_label = best.key, 0, best.label
    else:
        kept, distance, kept_label, kind = rep.kept, rep.distance, rep.kept_label, rep.kind
    if kept_label == EXCLUSION:
        kind = EXCLUSION
    return keep_rule.Drop(member.key, kept, distance, kind, kept_label != member.label, member.label, kept_label)


def split_fates(element, fraction: float, salt: str):
    _, keys = element
    yield from split_class(sorted(keys), fraction, salt).items()


# --- records and shards --------------------------------------------------------------------


class ToExample(beam.DoFn):
    """Join an image with its fate; emit (split, shuffle key, serialized Example)."""

    def __init__(self, salt: str):
        self._salt = salt
        self._written = Metrics.counter("build", "records_written")

    def process(self, element, rejected_where: dict):
        key, grouped = element
        splits = list(grouped["split"])
        if splits:  # no split: dropped as a duplicate, or an exclusion image
            yield from self._record(key, splits[0], grouped["candidate"], rejected_where)

    def _record(self, key, split, candidates, rejected_where):
        (candidate,) = [c for c in candidates if (key, c.where) not in rejected_where]
        values = {
            features.ENCODED: candidate.jpeg,
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
        self._written.inc()
        yield TaggedOutput("count", json.dumps([split, candidate.source, candidate.label]))
        yield split, candidate.key, example_codec.encode_example(values)


class WriteShard(beam.DoFn):
    def __init__(self, output: str):
        self._output = output

    def process(self, element, counts: dict):
        (split, index), records = element
        records = [r for r in records if r is not None]
        info = shards.write_shard(self._output, split, index, counts[split], records)
        yield json.dumps({"split": split, **info.model_dump(mode="json")})


# --- the pipeline ------------------------------------------------------------------------


def _json_lines(pcoll, path: str, label: str):
    return pcoll | f"Write{label}" >> beam.io.WriteToText(path, shard_name_template="", num_shards=1)


def _rejection_json(r: Rejection) -> str:
    return json.dumps([r.source, r.image_id, r.reason.value, r.detail, r.where])


def _drop_json(d: keep_rule.Drop) -> str:
    return json.dumps(asdict(d))


def build_pipeline(
    pipeline: beam.Pipeline,
    recipe: Recipe,
    indexes: dict[str, SourceIndex],
    selections: list[SourceSelection],
    label_map: LabelMap,
    output: str,
    work: str,
) -> None:
    """Add the build to `pipeline`: shards go to `output`, side products to `work`."""
    salt = recipe.split.salt
    units = [u for s in recipe.sources for u in indexes[s.name].units]  # small: one per archive/batch
    context_path = stage_read_context(
        ReadContext(indexes, {s.source: s for s in selections}), storage.join(work, "read_context.pickle")
    )
    context = (
        pipeline
        | "ContextPath" >> beam.Create([context_path])
        | "LoadContext" >> beam.Map(load_read_context)
    )

    read = (
        pipeline
        | "Units" >> beam.Create(units, reshuffle=True)
        | "Read" >> beam.ParDo(ReadSelected(salt), context=beam.pvalue.AsSingleton(context)).with_outputs(
            "input", "rejected", "not_selected", main="image"
        )
    )
    processed = read.image | "Preprocess" >> beam.ParDo(Preprocess(recipe, label_map)).with_outputs(
        "rejected", main="candidate"
    )
    candidates = processed.candidate

    # one input per key; missing images
    metas = candidates | "Meta" >> beam.Map(lambda c: (c.key, c.meta()))
    wanted_keys = (
        context
        | "Wanted" >> beam.FlatMap(ReadContext.wanted_keys)
        | "SpreadWanted" >> beam.Reshuffle()
        | "KeyWanted" >> beam.Map(lambda k: (k, None))
    )
    rejected_upstream = (read.rejected, processed.rejected) | "Upstream" >> beam.Flatten()
    seen = rejected_upstream | "SeenKey" >> beam.Map(lambda r: (f"{r.source}/{r.image_id}", None))
    resolved = (
        {"meta": metas, "wanted": wanted_keys, "seen": seen}
        | "ByKey" >> beam.CoGroupByKey()
        | "Resolve" >> beam.FlatMap(resolve_keys).with_outputs("rejected", "rejected_where", main="meta")
    )
    unique = resolved.meta
    exclusions = [m for loc in recipe.dedup.exclusion_sets for m in read_exclusion_set(loc, recipe.image)]
    if exclusions:
        unique = (unique, pipeline | "Exclusions" >> beam.Create(exclusions)) | "WithExclusions" >> beam.Flatten()

    # duplicates: identical hashes first, then the near-duplicate search on what is left
    threshold = recipe.dedup.near_hamming_threshold
    if threshold is not None or recipe.dedup.exact:
        by_hash = (lambda m: (m.phash, m)) if threshold is not None else (lambda m: (m.sha256, m))
        groups = (
            unique
            | "KeyByHash" >> beam.Map(by_hash)
            | "SameHash" >> beam.GroupByKey()
            | "Collapse" >> beam.FlatMap(collapse_identical, "near" if threshold is not None else "exact").with_outputs(
                "member", main="rep"
            )
        )
        reps, members = groups.rep, groups.member
    else:
        reps, members = unique, pipeline | "NoMembers" >> beam.Create([])

    if threshold is not None:
        pairs = (
            reps
            | "HashByKey" >> beam.Map(lambda m: (m.key, m.phash))
            | "NearPairs" >> NearDuplicatePairs(threshold)
        )
        edges = pairs | "Edges" >> beam.FlatMap(
            lambda p: [(p[0], (p[1], p[2], "near")), (p[1], (p[0], p[2], "near"))]
        )
        rep_drops = (
            {"meta": reps | "RepByKey" >> beam.Map(lambda m: (m.key, m)), "pair": edges}
            | "NodeJoin" >> beam.CoGroupByKey()
            | "Involved" >> beam.Filter(lambda e: len(e[1]["pair"]) > 0)
            | "Nodes" >> beam.Map(to_nodes)
            | "AllNodes" >> beam.combiners.ToList()
            | "KeepRule" >> beam.FlatMap(choose_drops)
        )
    else:
        rep_drops = pipeline | "NoRepDrops" >> beam.Create([])
    member_drops = members | "MemberDrops" >> beam.Map(
        member_drop, rep_drops=beam.pvalue.AsDict(rep_drops | "DropByKey" >> beam.Map(lambda d: (d.dropped, d)))
    )
    drops = (rep_drops, member_drops) | "AllDrops" >> beam.Flatten()
    dropped_keys = drops | "DroppedKey" >> beam.Map(lambda d: (d.dropped, None))

    # the survivors' split, per class
    survivors = (
        {"meta": unique | "UniqueByKey" >> beam.Map(lambda m: (m.key, m)), "dropped": dropped_keys}
        | "DropJoin" >> beam.CoGroupByKey()
        | "Survivors" >> beam.FlatMap(
            lambda e: [m for m in e[1]["meta"] if m.source != EXCLUSION] if not e[1]["dropped"] else []
        )
    )
    fates = (
        survivors
        | "ByClass" >> beam.Map(lambda m: (m.label, m.key))
        | "Classes" >> beam.GroupByKey()
        | "Split" >> beam.FlatMap(split_fates, recipe.split.validation_fraction, salt)
    )

    # records and shards
    records = (
        {"candidate": candidates | "CandidateByKey" >> beam.Map(lambda c: (c.key, c)), "split": fates}
        | "FateJoin" >> beam.CoGroupByKey()
        | "Examples" >> beam.ParDo(
            ToExample(salt), rejected_where=beam.pvalue.AsDict(resolved.rejected_where | beam.Map(lambda kw: (kw, True)))
        ).with_outputs("count", main="record")
    )
    split_bytes = (
        records.record
        | "SplitSize" >> beam.Map(lambda r: (r[0], (len(r[2]), 1)))
        | "SumSizes" >> beam.CombinePerKey(beam.combiners.TupleCombineFn(sum, sum))
        | "ShardCount" >> beam.Map(lambda e: (e[0], shards.num_shards(e[1][0], e[1][1], recipe.shards)))
    )
    # every shard index gets a write, even one the hash left empty
    all_shards = split_bytes | "EveryShard" >> beam.FlatMap(lambda e: [((e[0], i), None) for i in range(e[1])])
    shard_infos = (
        (records.record
        | "AssignShard" >> beam.Map(
            lambda r, counts: (
                (r[0], shards.shard_index(r[1], salt, counts[r[0]])),
                (shards.shuffle_key(r[1], salt), r[2]),
            ),
            counts=beam.pvalue.AsDict(split_bytes),
        ), all_shards)
        | "WithEmpty" >> beam.Flatten()
        | "Shards" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShard(output), counts=beam.pvalue.AsDict(split_bytes))
    )

    # side products for the launcher
    rejected = (rejected_upstream, resolved.rejected) | "AllRejected" >> beam.Flatten()
    _json_lines(rejected | "RejectedJson" >> beam.Map(_rejection_json), f"{work}/rejected.jsonl", "Rejected")
    _json_lines(drops | "DropsJson" >> beam.Map(_drop_json), f"{work}/drops.jsonl", "Drops")
    _json_lines(shard_infos, f"{work}/shards.jsonl", "ShardInfos")
    counted = (
        (
            records.count,
            read.input | "InputJson" >> beam.Map(lambda s: json.dumps(["input", s])),
            read.not_selected | "NotSelectedJson" >> beam.Map(lambda s: json.dumps(["not_selected", s])),
        )
        | "AllCounts" >> beam.Flatten()
        | "Count" >> beam.combiners.Count.PerElement()
        | "CountJson" >> beam.MapTuple(lambda k, n: json.dumps([json.loads(k), n]))
    )
    _json_lines(counted, f"{work}/counts.jsonl", "Counts")
