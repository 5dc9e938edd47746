"""The evaluation split: held-out classes the model never trains on, from the recipe to
the build's retrieval-query/-index shards, the trainer's open-set mP@5 and the rig.

One build of recipes/sample-eval.yaml on the session's sample (module fixture): it holds
out ImageNet and Products-10K classes at the cost of training classes and GLDv2
landmarks beyond its top 7, and the sample's planted cross-class duplicates put
training candidates within the threshold of held-out images (the leak guard's input).
"""

from __future__ import annotations

import csv
import dataclasses
import filecmp
import os
import re

import numpy as np
import pytest
from PIL import Image

from unibed.dataplane.build.launcher import build_dataset, plan_build
from unibed.dataplane.build.selection import select
from unibed.dataplane.recipes import load_recipe
from unibed.dataplane.sources import open_index
from unibed.schemas import features
from unibed.schemas.errors import SchemaError
from unibed.schemas.heldout import HeldOutMap
from unibed.schemas.recipe import parse_recipe
from unibed.schemas.retrieval_set import parse_csv, parse_folder

RETRIEVAL = ("retrieval-query", "retrieval-index")
TRAINING = ("train", "validation")


def eval_recipe(sample_root: str, output: str, **evaluation):
    data = load_recipe("recipes/sample-eval.yaml").to_dict()
    for source in data["sources"]:
        source["location"] = f"{sample_root}/{source['name']}"
    data["output"] = output
    data["evaluation"].update(evaluation)
    return parse_recipe(data)


@pytest.fixture(scope="module")
def eval_build(sample_root, tmp_path_factory):
    return build_dataset(eval_recipe(sample_root, str(tmp_path_factory.mktemp("eval-build") / "out")))


@pytest.fixture(scope="module")
def records(eval_build):
    from test_build import read_output

    return read_output(eval_build.output)


def _heldout(build) -> HeldOutMap:
    info = build.manifest.evaluation
    with open(os.path.join(build.output, info.label_map)) as f:
        return HeldOutMap.from_csv(f.read(), info.first_id)


def _key(record) -> str:
    return record[features.IMAGE_ID].decode()


def test_heldout_classes_never_reach_train_or_validation(eval_build, records):
    manifest, heldout = eval_build.manifest, _heldout(eval_build)
    assert manifest.num_classes == 5 + 8 + 7  # 3 + 3 + 1 classes held out of ImageNet / Products-10K
    assert heldout.first_id == manifest.num_classes and heldout.num_classes == 3 + 4 + 2
    held_classes = {(e.source, e.source_label) for e in heldout.entries}
    training = [r for r in records if r["split"] in TRAINING]
    retrieval = [r for r in records if r["split"] in RETRIEVAL]
    assert {(r[features.SOURCE].decode(), r[features.SOURCE_LABEL].decode()) for r in retrieval} == held_classes
    assert not held_classes & {(r[features.SOURCE].decode(), r[features.SOURCE_LABEL].decode()) for r in training}
    assert not {_key(r) for r in retrieval} & {_key(r) for r in training}
    assert all(r[features.LABEL] < manifest.num_classes for r in training)
    assert all(r[features.LABEL] in heldout.id_range() for r in retrieval)
    # every held-out domain has queries, and every query class an index image
    assert set(manifest.records_per_source["retrieval-query"]) == {"imagenet", "products10k", "gldv2"}
    index_labels = {r[features.LABEL] for r in retrieval if r["split"] == "retrieval-index"}
    assert {r[features.LABEL] for r in retrieval if r["split"] == "retrieval-query"} <= index_labels
    distractors = heldout.distractor_ids()
    assert distractors and not any(r[features.LABEL] in distractors for r in retrieval
                                   if r["split"] == "retrieval-query")


def test_no_evaluation_image_near_duplicates_a_training_image(eval_build, records):
    """pHash over all pairs; the sample's planted duplicates make the guard drop some."""
    def hashes(splits):
        return np.array([features.int64_to_phash(r[features.PHASH]) for r in records if r["split"] in splits],
                        dtype=np.uint64)

    distances = np.bitwise_count(hashes(RETRIEVAL)[:, None] ^ hashes(TRAINING)[None, :])
    assert distances.min() > 10
    with open(os.path.join(eval_build.output, "duplicates.csv")) as f:
        guarded = [r for r in csv.DictReader(f) if r["kind"] == "evaluation"]
    retrieval_keys = {_key(r) for r in records if r["split"] in RETRIEVAL}
    assert guarded and all(r["kept"] in retrieval_keys for r in guarded)
    drops = eval_build.manifest.evaluation.leak_guard_drops
    assert sum(drops.values()) == len(guarded)


def test_every_selected_image_is_written_a_duplicate_or_rejected(eval_build, records):
    manifest, plan = eval_build.manifest, plan_build(eval_build.manifest.recipe)
    for source, acc in manifest.accounting.items():
        assert acc.inputs == acc.written + acc.duplicates + acc.rejected
        assert acc.written == sum(manifest.records_per_source[s].get(source, 0) for s in manifest.splits)
    out = eval_build.output
    with open(f"{out}/duplicates.csv") as f:
        dropped = {r["dropped"] for r in csv.DictReader(f)}
    with open(f"{out}/rejects.csv") as f:
        rejected = {f"{r['source']}/{r['image_id']}" for r in csv.DictReader(f)}
    written = {_key(r) for r in records}
    assert not (written & dropped or written & rejected or dropped & rejected)
    held = {f"{s.source}/{i}" for s in plan.selections for i in s.heldout.images}
    assert held and held <= written | dropped | rejected


def test_the_split_is_byte_identical_across_two_builds(eval_build, tmp_path):
    again = build_dataset(eval_build.manifest.recipe.with_overrides(output=str(tmp_path / "again")))
    names = sorted(n for n in os.listdir(eval_build.output) if n.startswith("retrieval-"))
    assert names and names == sorted(n for n in os.listdir(again.output) if n.startswith("retrieval-"))
    for name in [*names, "heldout_label_map.csv", "label_map.csv", "duplicates.csv"]:
        assert filecmp.cmp(f"{eval_build.output}/{name}", f"{again.output}/{name}", shallow=False), name
    assert again.manifest.evaluation == eval_build.manifest.evaluation
    assert again.manifest.splits == eval_build.manifest.splits


def test_holdout_rules_are_checked_against_the_sources(sample_root):
    indexes = {s: open_index(s, f"{sample_root}/{s}", layout)
               for s, layout in (("imagenet", "kaggle_folder"), ("products10k", None), ("gldv2", None))}
    base = eval_recipe(sample_root, "/tmp/unused").to_dict()
    fraction = {**base, "evaluation": {**base["evaluation"], "holdout": [
        {"source": "products10k", "classes": 0.25, "take_from": "all"}]}}
    selections, _ = select(parse_recipe(fraction), indexes)
    products = next(s for s in selections if s.source == "products10k")
    assert len(products.heldout.queries) == 3 and len(products.classes) == 12 - 3
    too_many = {**base, "evaluation": {**base["evaluation"], "holdout": [{"source": "gldv2", "classes": 3}]}}
    with pytest.raises(SchemaError, match="gldv2 has 2 classes to hold out"):
        select(parse_recipe(too_many), indexes)  # beyond the top 7 only two landmarks have 3+ images
    official = {**base, "sources": [{**base["sources"][0], "layout": "official_tar"}, *base["sources"][1:]]}
    with pytest.raises(SchemaError, match="lists no images up front"):
        select(parse_recipe(official), {**indexes, "imagenet": open_index("imagenet", f"{sample_root}/imagenet")})
    for bad, message in (({"source": "gldv2", "classes": 2.5}, "whole number or a fraction"),
                         ({"source": "gldv2", "classes": 0}, "greater than 0")):
        with pytest.raises(SchemaError, match=message):
            parse_recipe({**base, "evaluation": {"holdout": [bad]}})


# --- the metric, the trainer, the rig ------------------------------------------------------


def test_metric_follows_googles_baseline_conventions():
    from unibed.trainer.metrics import precision_at_k

    # a repeated hit counts once; only the first min(n_q, 5) ranks count; n_q = 0 is left out
    retrieved = np.array([[1, 1, 2, 1, 1], [1, 2, 2, 2, 2], [3, 3, 3, 3, 3]])
    ids = np.array([["a", "a", "x", "b", "c"], ["a", "x", "y", "z", "w"], ["q", "r", "s", "t", "u"]])
    index_labels, index_ids = np.array([1, 1, 1, 2, 2, 2, 2, 3]), np.array(list("abcxyzwq"))
    per_query = precision_at_k(np.array([1, 1, 9]), retrieved, index_labels, ids, index_ids)
    assert per_query[0] == pytest.approx(1 / 3)  # n_q = 3: a, a again (counts once), miss; b is past rank 3
    assert per_query[1] == pytest.approx(1 / 3)
    assert np.isnan(per_query[2])
    without_ids = precision_at_k(np.array([1]), retrieved[:1], index_labels)
    assert without_ids[0] == pytest.approx(2 / 3)  # the repeat would count twice without ids


def test_oracle_scores_one_and_a_constant_embedding_scores_at_chance(eval_build):
    from unibed.trainer.data import load_manifest
    from unibed.trainer.evaluate import embed_split, evaluate_open_set, score
    from unibed.trainer.metrics import relevant_counts

    manifest = load_manifest(eval_build.output)

    def constant(images):
        return np.ones((len(images), 8), np.float32)

    sizes = {"image_size": 32, "batch_size": 64}
    queries = embed_split(constant, eval_build.output, manifest, "retrieval-query", **sizes)
    index = embed_split(constant, eval_build.output, manifest, "retrieval-index", **sizes)
    one_hot = np.eye(manifest.evaluation.first_id + manifest.evaluation.num_classes, dtype=np.float32)
    oracle = score(dataclasses.replace(queries, embeddings=one_hot[queries.labels]),
                   dataclasses.replace(index, embeddings=one_hot[index.labels]), 5)
    assert oracle.mp_at_k == 1.0 and set(oracle.per_source.values()) == {1.0}
    flat = evaluate_open_set(constant, eval_build.output, manifest, **sizes)
    chance = float(np.mean(relevant_counts(queries.labels, index.labels) / len(index.labels)))
    assert abs(flat.mp_at_k - chance) < 0.1 and flat.num_queries == len(queries.labels)
    assert set(flat.per_source) == {"imagenet", "products10k", "gldv2"}


@pytest.fixture(scope="module")
def projection_model(tmp_path_factory) -> str:
    from test_retrieval import export_projection_model

    return export_projection_model(str(tmp_path_factory.mktemp("eval-models") / "projection"))


def _draw(path, colour, jitter):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 40), tuple(min(255, c + jitter) for c in colour)).save(path)


@pytest.fixture(scope="module")
def outside_set(tmp_path_factory):
    """Three colours, one query and three index images each: as a folder and as a CSV."""
    root = tmp_path_factory.mktemp("outside")
    rows = ["role,label,path,domain"]
    for label, colour in {"red": (200, 20, 20), "blue": (20, 20, 200), "green": (20, 200, 20)}.items():
        for role, n in (("query", 1), ("index", 3)):
            for i in range(n):
                _draw(root / "set" / role / label / f"{i}.png", colour, 10 * i)
                rows.append(f"{role},{label},set/{role}/{label}/{i}.png,art")
    (root / "set.csv").write_text("\n".join(rows) + "\n")
    return root


def test_an_outside_set_scores_through_the_same_code_as_a_folder_and_as_csv(outside_set):
    from unibed.trainer.outside_set import evaluate_outside_set

    tmp_path = outside_set

    def mean_colour(images):  # an oracle for this set: the classes differ by colour only
        return images.reshape(len(images), -1, 3).mean(axis=1).astype(np.float32)

    for where, domain in ((str(tmp_path / "set"), "outside"), (str(tmp_path / "set.csv"), "art")):
        result = evaluate_outside_set(mean_colour, where, image_size=32, batch_size=4, k=5)
        assert (result.mp_at_k, result.num_queries, result.num_index) == (1.0, 3, 9)
        assert result.per_source == {domain: 1.0}
    with pytest.raises(SchemaError, match="s.csv:4: x.jpg is listed as index already at line 2"):
        parse_csv("role,label,path\nindex,a,x.jpg\nindex,a,y.jpg\nindex,b,x.jpg\nquery,a,q.jpg\n", "s.csv")
    with pytest.raises(SchemaError, match="is not query/<label>/<image>"):
        parse_folder(["query/a/1.jpg", "index/a/2.jpg", "other/a/3.jpg"], "set")


def test_run_reports_closed_and_open_set_and_the_flow_shows_both(eval_build):
    from unibed.flows.train import per_source_rows, scores_markdown
    from unibed.trainer.config import get_config
    from unibed.trainer.data import load_manifest
    from unibed.trainer.run import headline, score_model

    config = get_config("tiny").with_overrides(image_size=32)
    manifest, events, metrics = load_manifest(eval_build.output), [], {}
    rng = np.random.default_rng(0)

    def random_embedding(images):
        return rng.standard_normal((len(images), 8)).astype(np.float32)

    metrics.update(score_model("trained", random_embedding, eval_build.output, manifest, config, events.append,
                               metrics))
    assert [(e["model"], e["set"]) for e in events] == [("trained", "closed"), ("trained", "open")]
    assert metrics["open_set"]["trained"]["num_queries"] == manifest.splits["retrieval-query"].num_records
    assert metrics["trained"]["num_index"] == manifest.splits["train"].num_records
    # the untrained model's figures, as a second score_model call would add them (not re-run: time)
    metrics["untrained"] = metrics["trained"]
    metrics["open_set"]["untrained"] = metrics["open_set"]["trained"]
    assert set(headline(metrics)) == {"trained_mp_at_5", "untrained_mp_at_5", "trained_open_mp_at_5",
                                      "untrained_open_mp_at_5"}
    markdown = scores_markdown(metrics, eval_build.output, "w")
    assert "## Open set: classes the model never trained on" in markdown
    assert re.search(r"\| trained \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", markdown.split("## Open set")[1])
    assert "trained open-set mP@5" in per_source_rows(metrics)[0]


def test_search_takes_an_outside_set_as_gallery_and_queries(outside_set, projection_model, tmp_path, capsys):
    from unibed.cli.search import main

    for where in (outside_set / "set", outside_set / "set.csv"):
        code = main(["search", "--model", projection_model, "--retrieval-set", str(where), "-k", "3",
                     "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "report")])
        out = capsys.readouterr().out
        assert code == 0 and re.search(r"^3 retrieval-set queries: top-1 same label [\d.]+", out, re.MULTILINE), out
        assert out.count("query set/query/") + out.count("query query/") == 3
    assert main(["search", "--model", projection_model, "--retrieval-set", str(outside_set / "set"),
                 "--gallery", str(outside_set)]) == 2
    assert "one of them" in capsys.readouterr().err


def test_serve_marks_each_hit_relevant_or_not_on_the_evaluation_split(eval_build, projection_model, tmp_path):
    from fastapi.testclient import TestClient

    from unibed.retrieval.search import Searcher
    from unibed.retrieval.web import create_app

    model = projection_model
    searcher = Searcher(model, eval_build.output, splits=RETRIEVAL, cache_dir=str(tmp_path / "cache"),
                        log=lambda message: None)
    query = next(i for i in searcher.items if i.split == "retrieval-query")
    page = TestClient(create_app(searcher, top_k=5, source_thumbnails=False)).get(
        "/search", params={"id": query.image_id}).text
    hits = re.findall(r'<figure class="match">.*?</figure>', page, re.DOTALL)
    assert len(hits) == 5
    for hit in hits:
        label = int(re.search(r"\((\d+)\)<br>", hit).group(1))
        assert ("relevant (same class)" in hit) == (label == query.label)
        assert ("not relevant" in hit) == (label != query.label)
    assert query.label_name == _heldout(eval_build).name_of(query.label)


def test_trainer_evaluate_reports_closed_open_and_outside_sets(eval_build, projection_model, outside_set, capsys):
    import json

    from unibed.trainer.__main__ import main

    code = main(["evaluate", "--export-dir", projection_model, "--dataset", eval_build.output,
                 "--retrieval-set", str(outside_set / "set.csv"), "--image-size", "32"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    results = json.loads(out[out.index("{\n"):])
    assert set(results) == {"closed", "open", "outside"}
    assert results["open"]["num_queries"] == eval_build.manifest.splits["retrieval-query"].num_records
    assert set(results["open"]["per_source"]) == {"imagenet", "products10k", "gldv2"}
    assert results["outside"]["per_source"].keys() == {"art"}
