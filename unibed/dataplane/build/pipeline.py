"""The dataset build as one Apache Beam pipeline (local runner or Dataflow).

    units --ReadAndPreprocess--> Meta (hashes), WriteInput (reference to its Example), rejections
                                 serialized Examples -> _work/payload/<bundle uuid>.bin
      on Meta:
        --ResolveKeys--> one per key (duplicate ids, missing images)
        --Deduplicate--> identical-hash groups -> near-duplicate pairs -> keep rule
        --AssignSplits--> (key, split) per class (held-out classes: retrieval-query / -index)
    WriteInput x split --JoinSplits--> Record --WriteShards--> train-*/validation-* shards
                                                (Examples read back from the work files)
    rejections, drops, shard infos, counts --WriteSideProducts--> JSON lines in the work folder

No image bytes cross a shuffle: Preprocess writes each bundle's serialized
Examples to a work file and passes on (file, offset, length); every decision
is taken on small metadata, and only the shard writer reads the bytes back
(unibed/dataplane/build/payload.py), so memory grows with the metadata, not
with the images. The side products go to a work folder
that assemble.py turns into reports and the manifest (reading them with
unibed/dataplane/build/graph/side_products.py, next to their writers). The stages live in
unibed/dataplane/build/graph/, one composite transform each.

Workers may be other processes or machines: they get everything through the
output's storage (local or gs://), never through launcher memory or files.
The plan's indexes and selections are staged as `_work/read_context.pickle`
and reach the read step as a side input, so the job graph stays small.
"""

from __future__ import annotations

import apache_beam as beam

from unibed.dataplane import storage
from unibed.dataplane.build.graph.dedup import Deduplicate
from unibed.dataplane.build.graph.examples import ExampleInputs, JoinSplits
from unibed.dataplane.build.graph.read import (
    READ_CONTEXT,
    ReadAndPreprocess,
    ReadContext,
    stage_read_context,
)
from unibed.dataplane.build.graph.resolve import ResolveKeys
from unibed.dataplane.build.graph.side_products import SideProducts, WriteSideProducts
from unibed.dataplane.build.graph.splits import AssignSplits
from unibed.dataplane.build.graph.write_shards import WriteShards
from unibed.dataplane.build.retrieval_split import RetrievalRoles
from unibed.dataplane.build.selection import SourceSelection
from unibed.dataplane.sources.base import SourceIndex
from unibed.schemas.heldout import HeldOutMap
from unibed.schemas.label_map import LabelMap
from unibed.schemas.recipe import Recipe


def build_pipeline(
    pipeline: beam.Pipeline,
    recipe: Recipe,
    indexes: dict[str, SourceIndex],
    selections: list[SourceSelection],
    label_map: LabelMap,
    output: str,
    work: str,
    heldout: HeldOutMap | None = None,
) -> None:
    """Add the build to `pipeline`: shards go to `output`, side products to `work`."""
    units = [u for s in recipe.sources for u in indexes[s.name].units]  # small: one per archive/batch
    context_path = stage_read_context(
        ReadContext(indexes, {s.source: s for s in selections}), storage.join(work, READ_CONTEXT)
    )

    read = pipeline | "ReadAndPreprocess" >> ReadAndPreprocess(units, context_path, recipe, label_map, work, heldout)
    resolved = read | "ResolveKeys" >> ResolveKeys()
    kept = resolved.metas | "Deduplicate" >> Deduplicate(recipe.dedup, recipe.image)
    roles = RetrievalRoles.of(recipe.evaluation, heldout) if heldout and heldout.num_classes else None
    splits = kept.survivors | "AssignSplits" >> AssignSplits(recipe.split, roles)
    examples = (
        ExampleInputs(read.write_inputs, splits, resolved.losing_inputs)
        | "JoinSplits" >> JoinSplits()
    )
    shards = examples.records | "WriteShards" >> WriteShards(output, work, recipe.shards, recipe.split.salt)
    (
        SideProducts(resolved.rejected, kept.drops, shards, read.inputs, read.not_selected, examples.written)
        | "WriteSideProducts" >> WriteSideProducts(work)
    )
