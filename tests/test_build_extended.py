"""The extended sample built end to end (Beam's local runner, no Prefect):
the named sources (and a small WebDataset and Parquet source) compose into the
label space after the seed sources, every input of every source is accounted,
the planted duplicates across new and old sources are found, and a second
build of the same is byte-identical.

ImageNet and GLDv2 are left out of these builds to keep them small: the new
sources' planted copies come from Products-10K."""

from __future__ import annotations

import csv
import json
import os

import pytest

from unibed.dataplane.build.launcher import build_dataset
from unibed.dataplane.recipes import load_recipe
from unibed.sample.extras import EXTRA_SOURCES, TRUTH_FILE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("products10k", *EXTRA_SOURCES)


def _noise_jpeg(seed: int) -> bytes:
    """A real, decodable image whose pHash is far from every other one's."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).resize((384, 288), Image.Resampling.NEAREST).save(out, "JPEG", quality=90)
    return out.getvalue()


def _generic_sources(root: str) -> list[dict]:
    """A WebDataset shard and a Parquet file, two images each plus one bad sample:
    the generic readers' units, options and Parquet row locations through Beam."""
    import io
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(f"{root}/web")
    with tarfile.open(f"{root}/web/shard-00000.tar", "w") as tar:
        for name, data in (("k1.jpg", _noise_jpeg(1)), ("k1.cls", b"7"), ("k2.jpg", _noise_jpeg(2)),
                           ("k2.cls", b"8"), ("k3.jpg", _noise_jpeg(3))):  # k3: no label
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.makedirs(f"{root}/hf")
    table = pa.table({"image": [_noise_jpeg(4), _noise_jpeg(5), None], "label": ["x", "y", "y"]})
    pq.write_table(table, f"{root}/hf/train.parquet", row_group_size=2)
    return [{"name": "web", "reader": "webdataset", "location": f"{root}/web"},
            {"name": "hf", "reader": "parquet", "location": f"{root}/hf", "parquet": {"image_column": "image"}}]


@pytest.fixture(scope="module")
def builds(sample_root, extended_root, tmp_path_factory):
    recipe = load_recipe(os.path.join(REPO, "recipes", "sample-extended.yaml"))
    data = recipe.to_dict()
    data["sources"] = [s for s in data["sources"] if s["name"] in SOURCES]
    for source in data["sources"]:
        source["location"] = os.path.join(extended_root if source["name"] in EXTRA_SOURCES else sample_root,
                                          source["name"])
    data["sources"] += _generic_sources(str(tmp_path_factory.mktemp("generic-sources")))
    outputs = []
    for run in ("first", "second"):
        output = str(tmp_path_factory.mktemp(f"extended-{run}") / "out")
        build_dataset(recipe.with_overrides(sources=data["sources"], output=output))
        outputs.append(output)
    return outputs


@pytest.fixture(scope="module")
def truth(extended_root) -> dict:
    with open(os.path.join(extended_root, TRUTH_FILE)) as f:
        return json.load(f)


def _files(folder: str) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = f.read()
    return out


def test_a_second_build_is_byte_identical(builds):
    first, second = (_files(output) for output in builds)
    assert any(name.startswith("train-") for name in first)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == ["manifest.json"]
    manifests = [json.loads(files["manifest.json"]) for files in (first, second)]
    for manifest in manifests:  # all that may differ: when, and where it was written
        for field in ("created_at", "recipe", "recipe_digest"):
            manifest.pop(field)
    assert manifests[0] == manifests[1]


def test_sources_compose_into_contiguous_blocks_in_recipe_order(builds, truth):
    with open(os.path.join(builds[0], "label_map.csv")) as f:
        rows = list(csv.DictReader(f))
    order = [row["source"] for row in rows]
    assert sorted(set(order), key=order.index) == [*SOURCES, "web", "hf"]
    names = {(row["source"], row["source_label"]): row["name"] for row in rows}
    for source in EXTRA_SOURCES:
        classes = truth["sources"][source]["classes"]
        assert {label: names[(source, label)] for label in classes} == {k: v["name"] for k, v in classes.items()}
    assert names[("food101", "apple_pie")] == "Apple pie"


def test_every_input_of_the_new_sources_is_accounted(builds, truth):
    with open(os.path.join(builds[0], "manifest.json")) as f:
        accounting = json.load(f)["accounting"]
    for source in EXTRA_SOURCES:
        counts, got = truth["counts"][source], accounting[source]
        assert (got["inputs"], got["written"], got["duplicates"], got["rejected"]) == (
            counts["inputs"], counts["ok"], counts["duplicate"], counts["reject"]), source
    for source in SOURCES:
        got = accounting[source]
        assert got["inputs"] == got["written"] + got["duplicates"] + got["rejected"]
    for source in ("web", "hf"):  # two images each, and an unlabelled / a missing one
        got = accounting[source]
        assert (got["inputs"], got["written"], got["rejected"]) == (3, 2, 1), source
    assert accounting["web"]["rejected_by_reason"] == {"unlabelled_image": 1}
    assert accounting["hf"]["rejected_by_reason"] == {"missing_image": 1}


def test_duplicates_across_new_and_old_sources_are_found(builds, truth):
    with open(os.path.join(builds[0], "duplicates.csv")) as f:
        rows = list(csv.DictReader(f))
    found = {(row["kept"], row["dropped"], row["kind"]) for row in rows
             if row["dropped"].split("/", 1)[0] in EXTRA_SOURCES or row["kept"].split("/", 1)[0] in EXTRA_SOURCES}
    planted = {(*g["members"], g["match"]) for g in truth["duplicate_groups"]}
    assert found == planted
    assert {m.split("/", 1)[0] for g in truth["duplicate_groups"] for m in g["members"]} == {
        "products10k", "sop", "food101", "shopee"}
