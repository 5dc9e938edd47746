"""The shared contracts: they accept what is valid and reject what is not, clearly."""

from __future__ import annotations

import json

import pytest

from unibed.dataplane.recipes import load_recipe
from unibed.schemas import features
from unibed.schemas.errors import SchemaError
from unibed.schemas.label_map import LabelEntry, LabelMap
from unibed.schemas.manifest import Manifest
from unibed.schemas.recipe import parse_recipe
from unibed.schemas.source_record import Location, LocationKind, Rejection, SourceRecord

RECIPES = ("recipes/reference.yaml", "recipes/sample.yaml", "recipes/reference-eval.yaml", "recipes/sample-eval.yaml",
           "recipes/guie-extended.yaml", "recipes/sample-extended.yaml")


def _recipe(**changes) -> dict:
    base = {
        "name": "t",
        "output": "out/t",
        "sources": [{"name": "imagenet", "location": "data/imagenet"}],
    }
    base.update(changes)
    return base


@pytest.mark.parametrize("path", RECIPES)
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    # the seed sources first, in the reference's order: their ids are the reference's
    assert [s.name for s in recipe.sources][:3] == ["imagenet", "products10k", "gldv2"]


def test_reference_recipe_describes_the_17691_class_space():
    recipe = load_recipe("recipes/reference.yaml")
    assert recipe.expect_classes == 17691
    assert [s.expect_classes for s in recipe.sources] == [1000, 9691, 7000]
    gld = recipe.source("gldv2")
    assert (gld.subset, gld.classes.mode, gld.classes.k, gld.per_class_cap) == ("clean", "top_k", 7000, 50)
    assert recipe.split.validation_fraction == pytest.approx(0.1)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sources": []}, "sources"),
        ({"sources": [{"name": "openimages", "location": "x"}]}, "sources.0: Value error, source 'openimages' needs `reader:`"),
        ({"sources": [{"name": "Open/Images", "location": "x"}]}, "sources.0.name"),
        ({"sources": [{"name": "imagenet", "location": "s3://b/x"}]}, "gs://"),
        ({"sources": [{"name": "gldv2", "location": "x", "classes": {"mode": "top_k"}}]}, "needs k"),
        ({"split": {"validation_fraction": 1.5}}, "split.validation_fraction"),
        ({"dedup": {"near_hamming_threshold": 40}}, "dedup.near_hamming_threshold"),
        ({"shards": {"target_bytes": 0}}, "shards.target_bytes"),
        ({"colour": "blue"}, "colour"),
        ({"schema_version": 7}, "schema_version 7"),
        ({"sources": [{"name": "imagenet", "location": "a"}, {"name": "imagenet", "location": "b"}]}, "once"),
        ({"expect_classes": 5, "sources": [{"name": "imagenet", "location": "a", "expect_classes": 4}]}, "expect_classes"),
    ],
)
def test_bad_recipes_fail_with_a_message_naming_the_field(changes, message):
    with pytest.raises(SchemaError, match=message.replace(".", r"\.")):
        parse_recipe(_recipe(**changes), where="bad.yaml")


def test_recipe_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SchemaError, match="r.yaml"):
        load_recipe(str(bad))
    with pytest.raises(SchemaError, match="cannot read"):
        load_recipe(str(tmp_path / "absent.yaml"))


def test_recipe_digest_is_canonical_and_overrides_revalidate():
    a = parse_recipe(_recipe())
    b = parse_recipe(json.loads(json.dumps(_recipe())))
    assert a.digest() == b.digest()
    moved = a.with_overrides(output="gs://my-bucket/builds/x")
    assert moved.output == "gs://my-bucket/builds/x" and moved.digest() != a.digest()
    with pytest.raises(SchemaError, match="output"):
        a.with_overrides(output="ftp://x")


def test_source_record_and_location_validate():
    loc = Location(LocationKind.TAR_MEMBER, "gs://bkt/ILSVRC2012_img_train.tar", ("n1.tar", "n1_1.JPEG"), 1536, 100)
    rec = SourceRecord("imagenet", "n1_1", "n1", loc)
    assert rec.key == "imagenet/n1_1"
    assert str(loc) == "gs://bkt/ILSVRC2012_img_train.tar!n1.tar!n1_1.JPEG"
    with pytest.raises(SchemaError, match="offset"):
        Location(LocationKind.TAR_MEMBER, "a.tar", ("x.jpg",))
    with pytest.raises(SchemaError, match="member"):
        Location(LocationKind.ZIP_MEMBER, "a.zip")
    with pytest.raises(SchemaError, match="bad source name"):
        SourceRecord("flickr/x", "1", "a", Location(LocationKind.FILE, "a.jpg"))
    assert Rejection("gldv2", "x", "missing_image").reason.value == "missing_image"
    with pytest.raises(ValueError):
        Rejection("gldv2", "x", "lost")


def test_feature_spec_has_the_keys_trainers_read():
    keys = {f.key for f in features.FEATURES}
    assert {"image/encoded", "image/class/label"} <= keys
    assert {"image/id", "image/source", "image/height", "image/width", "image/format", "image/phash"} <= keys
    assert features.FEATURES_BY_KEY["image/class/label"].dtype == "int64"


@pytest.mark.parametrize("phash", [0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1])
def test_phash_round_trips_through_int64(phash):
    stored = features.phash_to_int64(phash)
    assert -(1 << 63) <= stored < (1 << 63)
    assert features.int64_to_phash(stored) == phash


def test_phash_out_of_range_is_refused():
    with pytest.raises(SchemaError):
        features.phash_to_int64(1 << 64)


def _labels(*rows):
    return LabelMap(tuple(LabelEntry(i, s, l, n) for i, (s, l, n) in enumerate(rows)))


def test_label_map_round_trips_and_reports_ranges():
    lm = _labels(("imagenet", "n1", "tench"), ("imagenet", "n2", "goldfish, carassius"), ("gldv2", "7", "Eiffel Tower"))
    again = LabelMap.from_csv(lm.to_csv())
    assert again == lm and again.digest() == lm.digest()
    assert lm.ranges() == {"imagenet": (0, 1), "gldv2": (2, 2)}
    assert lm.lookup()[("gldv2", "7")] == 2


@pytest.mark.parametrize(
    "rows, message",
    [
        ((("imagenet", "n1", "a"), ("imagenet", "n1", "b")), "twice"),
        ((("imagenet", "n1", "a"), ("gldv2", "1", "b"), ("imagenet", "n2", "c")), "contiguous"),
        ((("imagenet", "", "a"),), "empty"),
    ],
)
def test_label_map_rejects_inconsistent_maps(rows, message):
    with pytest.raises(SchemaError, match=message):
        _labels(*rows)


def test_label_map_csv_errors_name_file_and_line():
    with pytest.raises(SchemaError, match=r"lm.csv:1"):
        LabelMap.from_csv("id,source\n", where="lm.csv")
    with pytest.raises(SchemaError, match=r"lm.csv:3"):
        LabelMap.from_csv("unified_id,source,source_label,name\n0,imagenet,n1,a\nx,imagenet,n2,b\n", where="lm.csv")
    with pytest.raises(SchemaError, match="0..N-1"):
        LabelMap.from_csv("unified_id,source,source_label,name\n1,imagenet,n1,a\n")


def _manifest(**changes) -> dict:
    recipe = parse_recipe(_recipe())
    shard = {"path": "train-00000-of-00001.tfrecord", "num_records": 3, "num_bytes": 30, "sha256": "0" * 64}
    data = {
        "unibed_version": "0.1.0",
        "created_at": "2026-11-26T00:00:00Z",
        "recipe": recipe.to_dict(),
        "recipe_digest": recipe.digest(),
        "num_classes": 2,
        "label_ranges": {"imagenet": [0, 1]},
        "label_map_sha256": "0" * 64,
        "splits": {"train": {"num_records": 3, "num_bytes": 30, "shards": [shard]}},
        "records_per_source": {"train": {"imagenet": 3}},
        "records_per_class": {"train": {"0": 2, "1": 1}},
        "accounting": {"imagenet": {"inputs": 6, "written": 3, "duplicates": 1, "rejected": 2,
                                     "rejected_by_reason": {"truncated": 2}}},
    }
    data.update(changes)
    return data


def test_manifest_round_trips():
    m = Manifest.from_json(json.dumps(_manifest()))
    assert Manifest.from_json(m.to_json()) == m


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"accounting": {"imagenet": {"inputs": 7, "written": 3, "duplicates": 1, "rejected": 2}}}, "inputs 7"),
        ({"records_per_class": {"train": {"0": 2, "5": 1}}}, "outside the label space"),
        ({"records_per_source": {"train": {"imagenet": 2}}}, "records_per_source"),
        ({"recipe_digest": "f" * 64}, "recipe_digest"),
        ({"schema_version": 2}, "schema_version"),
    ],
)
def test_manifest_that_does_not_add_up_is_refused(changes, message):
    with pytest.raises(SchemaError, match=message):
        Manifest.from_json(json.dumps(_manifest(**changes)), where="m.json")


def test_manifest_refuses_misnamed_shards():
    data = _manifest()
    data["splits"]["train"]["shards"][0]["path"] = "train-0.tfrecord"
    with pytest.raises(SchemaError, match="not named"):
        Manifest.from_json(json.dumps(data))
