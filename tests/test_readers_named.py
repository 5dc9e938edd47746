"""The named sources (Stanford Online Products, Food-101, Shopee) read from
the extended sample in their published layouts: their classes and names,
splits, and every input accounted as ground_truth_extended.json says,
including the planted bad rows, unsafe paths, missing and unlabelled images."""

from __future__ import annotations

import json
import os

import pytest

from unibed.dataplane.sources import iter_source, open_index
from unibed.sample.extras import EXTRA_SOURCES, TRUTH_FILE
from unibed.schemas.source_record import Rejection, SourceImage


@pytest.fixture(scope="module")
def truth(extended_root) -> dict:
    with open(os.path.join(extended_root, TRUTH_FILE)) as f:
        return json.load(f)


@pytest.mark.parametrize("source", EXTRA_SOURCES)
def test_named_source_reads_as_its_ground_truth(source, extended_root, truth):
    index = open_index(source, os.path.join(extended_root, source))  # the reader named like the source
    assert index.reader == "listing" and index.source == source
    names = {label: c["name"] for label, c in truth["sources"][source]["classes"].items()}
    assert {label: c.name for label, c in index.classes.items()} == names
    outcomes = {}
    for item in iter_source(index):
        if isinstance(item, SourceImage):
            outcomes[(item.record.image_id, item.record.split)] = "image"
        else:
            assert isinstance(item, Rejection) and item.where, item
            outcomes[(item.image_id, item.reason.value)] = "reject"
    expected = {}
    for entry in (e for e in truth["images"] if e["source"] == source):
        if entry["expected"] == "reject":
            expected[(entry["image_id"], entry["reject_reason"])] = "reject"
        else:
            expected[(entry["image_id"], entry["split"])] = "image"
    selected = {key: v for key, v in outcomes.items() if key[1] != "test" or source == "sop"}
    assert selected == expected
    not_selected = sum(1 for key in outcomes if key[1] == "test") if source != "sop" else 0
    assert not_selected == truth["counts"][source]["not_selected"]


def test_named_sources_say_where_each_problem_is(extended_root):
    rejected = {r.reason.value: r for s in EXTRA_SOURCES
                for r in iter_source(open_index(s, os.path.join(extended_root, s))) if isinstance(r, Rejection)}
    assert rejected["malformed_row"].where.endswith("Ebay_train.txt:11")
    assert rejected["unsafe_member_path"].where.endswith("Ebay_train.txt:12")
    assert "'..'" in rejected["unsafe_member_path"].detail
    assert rejected["duplicate_id"].where.endswith("train.csv:11")
    assert rejected["unlabelled_image"].where.startswith(os.path.join(extended_root, "food101", "images"))
    assert rejected["missing_image"].image_id.startswith("train_images/")


def test_inspect_shows_the_named_sources_like_the_seeds(extended_root, truth, tmp_path, capsys):
    import argparse

    import yaml

    from unibed.cli.sample import cmd_inspect

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "recipes", "sample-extended.yaml")) as f:
        recipe = yaml.safe_load(f)
    recipe["sources"] = [dict(s, location=os.path.join(extended_root, s["name"]))
                         for s in recipe["sources"] if s["name"] in EXTRA_SOURCES]
    path = tmp_path / "extended.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert cmd_inspect(argparse.Namespace(recipe=str(path), source=None, all_layouts=True, json=True)) == 0
    summaries = {s["source"]: s for s in json.loads(capsys.readouterr().out)}
    assert list(summaries) == list(EXTRA_SOURCES)
    for source in EXTRA_SOURCES:
        counts = truth["counts"][source]
        assert summaries[source]["layout"] == "files"
        # inspect reads every split: Food-101's test images are inputs here
        assert summaries[source]["inputs"] == counts["inputs"] + counts["not_selected"], source


def test_the_extras_are_byte_identical_for_the_same_seed(sample_root, extended_root, tmp_path):
    from unibed.sample.extras import generate_extras

    generate_extras(str(tmp_path), base_root=sample_root)

    def files(root):
        out = {}
        for folder, _, names in os.walk(root):
            for name in names:
                with open(os.path.join(folder, name), "rb") as f:
                    out[os.path.relpath(os.path.join(folder, name), root)] = f.read()
        return out

    assert files(str(tmp_path)) == files(extended_root)
