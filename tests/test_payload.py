"""Image bytes stay out of the build's shuffles: Preprocess writes each image's
serialized Example to its bundle's work file and passes on only a reference,
which the shard writer reads back in any order it needs."""

from __future__ import annotations

import os

from apache_beam.coders.typecoders import registry
from test_build import sample_recipe

from unibed.dataplane.build.graph.read import Preprocess
from unibed.dataplane.build.launcher import plan_build
from unibed.dataplane.build.payload import PayloadWriter, read_in_order
from unibed.dataplane.images.preprocess import preprocess
from unibed.dataplane.records.codec import decode_example
from unibed.dataplane.sources import read_unit
from unibed.schemas import features
from unibed.schemas.source_record import SourceImage


def test_preprocess_passes_on_small_records_and_a_reference_to_the_example(sample_root, tmp_path):
    recipe = sample_recipe(sample_root, str(tmp_path / "out"))
    plan = plan_build(recipe)
    index = plan.indexes["products10k"]
    items = [i for i in read_unit(index.units[0], index) if isinstance(i, SourceImage)][:12]
    work = str(tmp_path / "_work")
    step = Preprocess(recipe, plan.label_map, work)
    step.start_bundle()
    made = [(item, *outputs) for item in items if len(outputs := list(step.process(item))) == 2]
    step.finish_bundle()

    assert len(made) >= 8
    coder = registry.get_coder(object)  # what the local runner holds per shuffled record
    for item, (key, (where, meta)), tagged in made:
        assert tagged.tag == "write_input"
        write_key, (write_where, source, label, _) = tagged.value
        assert (write_key, write_where, source, str(label)) == (key, where, meta.source, meta.label)
        assert not hasattr(meta, "where")  # the location travels beside the Meta, to ResolveKeys only
        processed = preprocess(item.data, recipe.image)
        # probes packed into one bytes object and the digest as 32 bytes, both exact
        assert meta.probes == processed.probes and meta.sha256.hex() == processed.sha256
        unpacked = (meta.key, meta.source, meta.label, meta.phash, processed.sha256, meta.preference,
                    processed.probes)  # the same fields as tuples of (kind, hash) and hex
        assert len(coder.encode(meta)) < 0.8 * len(coder.encode(unpacked))
        assert len(coder.encode(tagged.value)) < len(where) + len(key) + 150
    assert os.listdir(tmp_path / "_work" / "payload") == [made[0][2].value[1][3][0]]  # one per bundle
    refs = [tagged.value[1][3] for _, _, tagged in made]
    backwards = list(read_in_order(work, refs[::-1], batch_bytes=3000))
    for (item, (key, _), _), example in zip(reversed(made), backwards, strict=True):
        values = decode_example(example)
        assert values[features.IMAGE_ID].decode() == key
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
