"""The dataset build end to end on the generated sample, checked against its ground truth."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from unibed.dataplane.build.launcher import build_dataset, plan_build
from unibed.dataplane.build.output import OutputExistsError, claim_output
from unibed.dataplane.build.split import validation_count
from unibed.dataplane.recipes import load_recipe
from unibed.dataplane.records.codec import decode_example
from unibed.dataplane.records.framing import iter_records
from unibed.schemas import features
from unibed.schemas.errors import SchemaError, SourceLayoutError
from unibed.schemas.label_map import LabelMap
from unibed.schemas.manifest import Manifest
from unibed.schemas.recipe import parse_recipe

LAYOUT_READ = {"imagenet": "official_tar", "products10k": "folder", "gldv2": "tars"}
REASON_OF_QUIRK = {
    "truncated": "truncated", "empty": "empty_file", "not_an_image": "not_an_image",
    "pixel_bomb": "too_many_pixels", "missing": "missing_image", "unlabelled": "unlabelled_image",
}


def sample_recipe(sample_root: str, output: str, **dedup) -> object:
    data = load_recipe("recipes/sample.yaml").to_dict()
    for source in data["sources"]:
        source["location"] = f"{sample_root}/{source['name']}"
    data["output"] = output
    data["dedup"].update(dedup)
    return parse_recipe(data)


def read_output(output: str) -> list[dict]:
    manifest = Manifest.from_json(Path(output, "manifest.json").read_text())
    records = []
    for split, info in manifest.splits.items():
        for shard in info.shards:
            with open(os.path.join(output, shard.path), "rb") as f:
                for raw in iter_records(f):
                    records.append({**decode_example(raw), "split": split})
    return records


def csv_rows(path: str) -> list[dict]:
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def build(sample_build):
    return sample_build  # conftest: the sample recipe built once per session


@pytest.fixture(scope="module")
def inputs(ground_truth):
    """Ground-truth entries for the inputs the sample recipe reads (GLDv2-clean, train split)."""
    return [
        i for i in ground_truth["images"]
        if i["split"] == "train" and (LAYOUT_READ[i["source"]] in i["in_layouts"] or i["quirk"] == "missing")
    ]


@pytest.fixture(scope="module")
def written(build):
    return read_output(build.output)


def test_accounting_holds_for_every_source(build, inputs):
    manifest = build.manifest
    for source, acc in manifest.accounting.items():
        assert acc.inputs == acc.written + acc.duplicates + acc.rejected
        assert acc.inputs == sum(1 for i in inputs if i["source"] == source), source
    assert sum(a.written for a in manifest.accounting.values()) == sum(
        s.num_records for s in manifest.splits.values()
    )


def test_every_planted_broken_file_is_rejected_with_its_reason(build, inputs):
    rejected = {(r["source"], r["image_id"]): r["reason"] for r in csv_rows(f"{build.output}/rejects.csv")}
    planted = {(i["source"], i["image_id"]): REASON_OF_QUIRK[i["quirk"]]
               for i in inputs if i["quirk"] in REASON_OF_QUIRK}
    assert rejected == planted


def test_every_planted_duplicate_is_removed_and_nothing_else(build, inputs, ground_truth, written):
    keys = {f"{i['source']}/{i['image_id']}" for i in inputs}
    dropped = {r["dropped"]: r for r in csv_rows(f"{build.output}/duplicates.csv")}
    written_keys = {r[features.IMAGE_ID].decode() for r in written}
    for group in ground_truth["duplicate_groups"]:
        members = [m for m in group["members"] if m in keys]
        if len(members) < 2:
            continue
        survivors = [m for m in members if m in written_keys]
        assert len(survivors) == 1, (group, survivors)
        for m in members:
            if m not in survivors:
                assert dropped[m]["kept"] in members
                assert int(dropped[m]["distance"]) <= 10
                # the hash kind that matched: exact, near (pHashes), or near:<probe kind>
                # for the edited copies (mirror, crops, bars, caption, rotation)
                assert dropped[m]["kind"] == group["match"], (group, dropped[m])
    expected_written = {f"{i['source']}/{i['image_id']}" for i in inputs if i["expected"] != "reject"} - set(dropped)
    assert written_keys == expected_written
    assert set(dropped) <= {m for g in ground_truth["duplicate_groups"] for m in g["members"]}


def test_odd_but_valid_images_are_normalised(written, inputs):
    by_key = {r[features.IMAGE_ID].decode(): r for r in written}
    for i in inputs:
        key = f"{i['source']}/{i['image_id']}"
        if i["quirk"] in {"cmyk", "grayscale", "png_named_jpeg", "exif_rotated", "very_large"} and key in by_key:
            r = by_key[key]
            assert r[features.ENCODED][:3] == b"\xff\xd8\xff"
            assert min(r[features.WIDTH], r[features.HEIGHT]) < 2 * 288  # reduced to [288, 576)
            if i["quirk"] == "exif_rotated":
                assert r[features.HEIGHT] > r[features.WIDTH]  # stored upright


def test_labels_follow_the_label_map_and_splits_are_per_class(build, written):
    label_map = LabelMap.from_csv(Path(build.output, "label_map.csv").read_text())
    lookup = label_map.lookup()
    assert label_map.num_classes == build.manifest.num_classes == 8 + 12 + 10
    for r in written:
        source = r[features.SOURCE].decode()
        assert lookup[(source, r[features.SOURCE_LABEL].decode())] == r[features.LABEL]
    per_class = {}
    for r in written:
        per_class.setdefault(r[features.LABEL], []).append(r["split"])
    for splits in per_class.values():
        assert splits.count("train") >= 1
        assert splits.count("validation") == validation_count(len(splits), 0.1)


def test_no_training_image_near_duplicates_a_validation_image(written):
    train = np.array([features.int64_to_phash(r[features.PHASH]) for r in written if r["split"] == "train"], dtype=np.uint64)
    val = np.array([features.int64_to_phash(r[features.PHASH]) for r in written if r["split"] == "validation"], dtype=np.uint64)
    distances = np.bitwise_count(train[:, None] ^ val[None, :])
    assert distances.min() > 10


def test_two_builds_give_byte_identical_outputs(build, sample_root, tmp_path):
    again = build_dataset(sample_recipe(sample_root, str(tmp_path / "again")))
    names = sorted(os.listdir(build.output))
    assert names == sorted(os.listdir(again.output))
    for name in names:
        if name != "manifest.json":
            assert filecmp.cmp(f"{build.output}/{name}", f"{again.output}/{name}", shallow=False), name
    first, second = (m.model_dump(mode="json") for m in (build.manifest, again.manifest))
    for manifest in (first, second):  # all that may differ: when, and where it was written
        for field in ("created_at", "recipe", "recipe_digest"):
            manifest.pop(field)
    assert first == second


def test_rerun_is_a_no_op_and_another_recipe_is_refused(build, sample_root):
    before = os.path.getmtime(f"{build.output}/manifest.json")
    again = build_dataset(sample_recipe(sample_root, build.output))
    assert again.status == "complete"
    assert os.path.getmtime(f"{build.output}/manifest.json") == before
    with pytest.raises(OutputExistsError, match="another output"):
        build_dataset(sample_recipe(sample_root, build.output, near_hamming_threshold=4))


def test_a_partial_output_is_rebuilt(sample_root, tmp_path):
    output = tmp_path / "partial"
    claim_output(str(output))  # a crashed build of it leaves its ownership record
    (output / "train-00000-of-00777.tfrecord").write_bytes(b"left by a crashed run")
    result = build_dataset(sample_recipe(sample_root, str(output)))
    assert result.status == "built"
    assert not (output / "train-00000-of-00777.tfrecord").exists()


def test_exclusion_set_images_and_their_near_copies_never_reach_the_shards(sample_root, ground_truth, tmp_path):
    group = next(g for g in ground_truth["duplicate_groups"] if g["kind"] == "near" and not g["cross_source"])
    original = next(i for i in ground_truth["images"] if f"{i['source']}/{i['image_id']}" == group["members"][0])
    assert original["source"] == "imagenet" or original["source"] in ("products10k", "gldv2")
    path = {
        "imagenet": f"imagenet/ILSVRC/Data/CLS-LOC/train/{original['label']}/{original['image_id']}.JPEG",
        "products10k": f"products10k/train/{original['image_id']}",
        "gldv2": None,
    }[original["source"]]
    if path is None:
        pytest.skip("the planted near pair is in GLDv2 tars")
    exclusion = tmp_path / "queries"
    exclusion.mkdir()
    (exclusion / "query.jpg").write_bytes(Path(sample_root, path).read_bytes())
    result = build_dataset(sample_recipe(sample_root, str(tmp_path / "out"), exclusion_sets=[str(exclusion)]))
    written = {r[features.IMAGE_ID].decode() for r in read_output(result.output)}
    assert not set(group["members"]) & written
    kinds = {r["dropped"]: r["kind"] for r in csv_rows(f"{result.output}/duplicates.csv")}
    assert all(kinds[m] == "exclusion" for m in group["members"])


def test_tensorflow_reads_the_shards_with_the_competition_keys(build):
    code = f"""
        import glob, json, tensorflow as tf
        from unibed.trainer.features import parse_example
        files = sorted(glob.glob({build.output!r} + "/*.tfrecord"))
        def decode(x):
            return tf.io.decode_jpeg(x["image/encoded"], channels=3), x["image/class/label"]
        labels, shapes = [], set()
        for image, label in tf.data.TFRecordDataset(files).map(parse_example).map(decode):
            labels.append(int(label)); shapes.add(int(image.shape[-1]))
        print(json.dumps([len(labels), min(labels), max(labels), sorted(shapes)]))
        """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    count, low, high, channels = json.loads(done.stdout.strip().splitlines()[-1])
    assert count == sum(s.num_records for s in build.manifest.splits.values())
    assert 0 <= low and high < build.manifest.num_classes and channels == [3]


def test_bad_recipes_fail_before_any_heavy_work(sample_root, tmp_path):
    with pytest.raises(SourceLayoutError, match="no imagenet layout"):
        plan_build(sample_recipe(str(tmp_path), str(tmp_path / "out")))
    data = sample_recipe(sample_root, str(tmp_path / "out")).to_dict()
    data["sources"][0]["classes"] = {"mode": "top_k", "k": 3}  # official tar lists no counts
    with pytest.raises(SchemaError, match="top_k needs per-class image counts"):
        plan_build(parse_recipe(data))
    data = sample_recipe(sample_root, str(tmp_path / "out")).to_dict()
    data["expect_classes"] = 17691
    with pytest.raises(SchemaError, match="expects 17691 classes"):
        plan_build(parse_recipe(data))
    assert not (tmp_path / "out").exists()
