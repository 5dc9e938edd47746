"""Image bytes stay out of the build's shuffles: Preprocess writes each image's
serialized Example to its bundle's work file and passes on only a reference,
which the shard writer reads back in any order it needs."""

from __future__ import annotations

import dataclasses
import os
import pickle

from apache_beam.coders.typecoders import registry
from test_build import sample_recipe

from unibed.dataplane.build.graph.elements import Candidate
from unibed.dataplane.build.graph.examples import keyed_candidate
from unibed.dataplane.build.graph.read import Preprocess
from unibed.dataplane.build.launcher import plan_build
from unibed.dataplane.build.payload import PayloadWriter, read_in_order
from unibed.dataplane.images.preprocess import preprocess
from unibed.dataplane.records.codec import decode_example
from unibed.dataplane.sources import read_unit
from unibed.schemas import features
from unibed.schemas.source_record import SourceImage


def test_candidates_carry_a_small_reference_to_the_example_in_the_work_file(sample_root, tmp_path):
    recipe = sample_recipe(sample_root, str(tmp_path / "out"))
    plan = plan_build(recipe)
    index = plan.indexes["products10k"]
    items = [i for i in read_unit(index.units[0], index) if isinstance(i, SourceImage)][:12]
    work = str(tmp_path / "_work")
    step = Preprocess(recipe, plan.label_map, work)
    step.start_bundle()
    made = [(item, out) for item in items for out in step.process(item) if isinstance(out, Candidate)]
    step.finish_bundle()

    assert len(made) >= 8
    coder = registry.get_coder(object)  # what the local runner holds per shuffled record
    for _, candidate in made:  # what the split join and the shard grouping move
        assert not any(isinstance(getattr(candidate, f.name), bytes) for f in dataclasses.fields(candidate))
        assert len(pickle.dumps(candidate)) < 1024
        # The split join gets only what ToRecord reads; Meta carries no location.
        key, joined = keyed_candidate(candidate)
        assert joined == (candidate.where, candidate.source, candidate.label, candidate.payload)
        assert len(coder.encode((key, joined))) < 0.6 * len(coder.encode((key, candidate)))
        assert not hasattr(candidate.meta(), "where")
    assert os.listdir(tmp_path / "_work" / "payload") == [made[0][1].payload.file]  # one per bundle
    backwards = list(read_in_order(work, [c.payload for _, c in reversed(made)], batch_bytes=3000))
    for (item, candidate), example in zip(reversed(made), backwards, strict=True):
        values = decode_example(example)
        assert values[features.IMAGE_ID].decode() == candidate.key
        assert values[features.ENCODED] == preprocess(item.data, recipe.image).jpeg


def test_a_shard_reads_its_examples_from_a_gs_work_file_in_one_request(gcs_emulator, monkeypatch):
    """One shard of 8 wants every 8th Example of a work file (40 KB each, so 280 KB
    apart): the shard writer's read fetches them in one ranged GET, not one per Example."""
    from google.cloud.storage import Blob

    gcs_emulator.create_bucket("unibed-work")
    work = "gs://unibed-work/out/_work"
    writer = PayloadWriter(work)
    payloads = [bytes([i]) * 40_000 for i in range(96)]
    refs = [writer.append(p) for p in payloads]
    writer.close()
    requests = []
    download = Blob.download_as_bytes

    def counted(self, *args, **kwargs):
        requests.append(kwargs.get("start"))
        return download(self, *args, **kwargs)

    monkeypatch.setattr(Blob, "download_as_bytes", counted)
    shard = list(range(3, 96, 8))
    assert list(read_in_order(work, [refs[i] for i in shard])) == [payloads[i] for i in shard]
    assert len(requests) == 1
