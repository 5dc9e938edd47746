"""`unibed plan` on full-size class metadata: the reference label space, exactly."""

from __future__ import annotations

import os

import pytest

from unibed.dataplane.build.launcher import plan_build
from unibed.dataplane.build.plan_report import describe_plan, format_plan
from unibed.dataplane.recipes import load_recipe
from unibed.sample.full_metadata import FullMetadataConfig, write_full_metadata

# The real class counts (1,000 synsets, 9,691 SKUs, more than 7,000 landmarks)
# with fewer images per class than the real data, to keep the test quick.
CONFIG = FullMetadataConfig(products_images=30_000, gldv2_landmarks=9_000,
                            gldv2_clean_images=150_000, gldv2_extra_images=1_000)


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("full-metadata"))
    write_full_metadata(root, CONFIG)
    recipe = load_recipe("recipes/reference.yaml").with_source_locations(
        {s: f"{root}/{s}" for s in ("imagenet", "products10k", "gldv2")}
    )
    return plan_build(recipe)


def test_reference_recipe_yields_the_17691_class_space(plan):
    assert plan.label_map.num_classes == 17691
    assert plan.label_map.ranges() == {
        "imagenet": (0, 999), "products10k": (1000, 10690), "gldv2": (10691, 17690)
    }


def _clean_counts(plan) -> dict[str, int]:
    index = plan.indexes["gldv2"]
    counts: dict[str, int] = {}
    for image_id, landmark in index.listed.items():
        if image_id in index.subsets["clean"]:
            counts[landmark] = counts.get(landmark, 0) + 1
    return counts


def test_gldv2_takes_the_7000_landmarks_with_most_clean_images_capped_at_50(plan):
    counts = _clean_counts(plan)
    selection = next(s for s in plan.selections if s.source == "gldv2")
    chosen = set(selection.classes)
    smallest_chosen = min(counts[c] for c in chosen)
    assert all(n <= smallest_chosen for label, n in counts.items() if label not in chosen)
    per_class: dict[str, int] = {}
    for label in selection.wanted.values():
        per_class[label] = per_class.get(label, 0) + 1
    assert per_class == {c: min(50, counts[c]) for c in chosen}


def test_plan_report_counts_and_prints(plan):
    report = describe_plan(plan)
    gldv2 = next(s for s in report.sources if s.source == "gldv2")
    chosen = next(s for s in plan.selections if s.source == "gldv2").classes
    counts = _clean_counts(plan)
    assert gldv2.images == sum(min(50, counts[c]) for c in chosen)
    assert report.train_shards % 8 == 0 and report.validation_shards % 8 == 0
    text = format_plan(report)
    assert "17691 classes" in text and "10691-17690" in text


def test_cloud_estimate_is_bounded_by_the_slower_of_cpu_and_reading(plan):
    from unibed.dataplane.build.plan_report import CloudAssumptions, estimate_cloud

    report = describe_plan(plan)
    gldv2 = next(s for s in report.sources if s.source == "gldv2")
    assert gldv2.read_bytes == 500e9  # its tars are streamed whole, whatever the selection
    cloud = CloudAssumptions(workers=2, vcpus_per_worker=1, read_mb_s_per_worker=1e9, startup_hours=0)
    cpu_bound = estimate_cloud(report, cloud)
    assert cpu_bound.hours == pytest.approx(report.cpu_hours / 2)
    assert cpu_bound.usd == pytest.approx(cpu_bound.hours * 2 * cloud.usd_per_worker_hour)
    slow_reads = CloudAssumptions(workers=2, read_mb_s_per_worker=1.0, startup_hours=0)
    assert estimate_cloud(report, slow_reads).hours == pytest.approx(report.read_bytes / 2e6 / 3600)
    assert "Dataflow estimate: 16 workers" in format_plan(report)


def test_reference_eval_recipe_keeps_the_17691_classes_and_holds_out_landmarks_beyond(plan):
    """recipes/reference-eval.yaml: the reference's training label space, exactly, and
    an evaluation split of GLDv2-clean landmarks beyond the top 7,000 (ids after it)."""
    locations = {s.name: s.location for s in plan.recipe.sources}
    evaluation = plan_build(load_recipe("recipes/reference-eval.yaml").with_source_locations(locations))
    assert evaluation.label_map == plan.label_map
    assert evaluation.heldout.ranges() == {"gldv2": (17691, 17691 + 999)}
    gldv2 = next(s for s in evaluation.selections if s.source == "gldv2")
    trained = set(gldv2.classes)
    held = set(gldv2.heldout.queries) | set(gldv2.heldout.distractors)
    assert len(gldv2.heldout.queries) == len(gldv2.heldout.distractors) == 500 and not held & trained
    counts = _clean_counts(plan)
    assert min(counts[c] for c in trained) >= max(counts[c] for c in held)  # beyond the top 7,000
    assert set(gldv2.heldout.images.values()) == held
def _extras_metadata(root: str) -> None:
    """The listings of SOP, Food-101 and Shopee with their published class
    counts (one image per class, no image files: a plan reads metadata only)."""
    def write(rel: str, lines: list[str]) -> None:
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        with open(os.path.join(root, rel), "w") as f:
            f.write("\n".join(lines) + "\n")

    header = "image_id class_id super_class_id path"
    write("sop/Ebay_train.txt", [header] + [f"{c} {c} 1 bicycle_final/{c}_0.JPG" for c in range(1, 11319)])
    write("sop/Ebay_test.txt", [header] + [f"{c} {c} 1 bicycle_final/{c}_0.JPG" for c in range(11319, 22635)])
    foods = [f"food_{i:03d}" for i in range(101)]
    write("food101/meta/train.txt", [f"{food}/{i}" for i, food in enumerate(foods)])
    write("food101/meta/test.txt", [f"{foods[0]}/999"])
    write("food101/meta/classes.txt", foods)
    write("food101/meta/labels.txt", [food.replace("_", " ").capitalize() for food in foods])
    write("shopee/train.csv", ["posting_id,image,image_phash,title,label_group"]
          + [f"train_{g},{g:032x}.jpg,{g:016x},item {g},{1000 + g}" for g in range(11014)])


def test_guie_extended_keeps_the_reference_ids_and_appends_the_extras(plan, tmp_path):
    from unibed.dataplane.build.launcher import BuildPlan
    from unibed.dataplane.build.selection import select
    from unibed.dataplane.sources import open_source

    _extras_metadata(str(tmp_path))
    extras = ("sop", "food101", "shopee")
    recipe = load_recipe("recipes/guie-extended.yaml").with_source_locations(
        {**{s: plan.recipe.source(s).location for s in ("imagenet", "products10k", "gldv2")},
         **{s: str(tmp_path / s) for s in extras}})
    indexes = {**plan.indexes, **{s: open_source(recipe.source(s)) for s in extras}}
    selections, label_map = select(recipe, indexes)  # checks expect_classes per source and in total
    assert label_map.num_classes == 51440
    assert label_map.ranges() == {"imagenet": (0, 999), "products10k": (1000, 10690), "gldv2": (10691, 17690),
                                  "sop": (17691, 40324), "food101": (40325, 40425), "shopee": (40426, 51439)}
    assert label_map.entries[:17691] == plan.label_map.entries  # the reference ids, unchanged
    assert label_map.entries[40325].name == "Food 000"
    text = format_plan(describe_plan(BuildPlan(recipe, indexes, selections, label_map)))
    assert "51440 classes" in text and "17691-40324" in text and "40426-51439" in text
