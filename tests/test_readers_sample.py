"""Every layout of every source in the generated sample yields exactly what
the sample's ground truth says that layout holds, and nothing else.

Readers only account for metadata and layout problems (missing, unlabelled,
...); content problems (truncated, empty, pixel bomb, ...) reach the build as
SourceImages, so the ground truth's other quirks are plain images here.
"""

from __future__ import annotations

from collections import Counter

import pytest

from unibed.dataplane.sources import READERS, iter_source, open_index, read_location
from unibed.schemas.reader_specs import SEED_READERS
from unibed.schemas.source_record import Rejection, RejectReason, SourceImage

# the default sample holds the seed datasets (the extended sample's sources: test_readers_named.py)
SOURCE_LAYOUTS = [(s, layout) for s in SEED_READERS for layout in READERS[s].LAYOUTS]
NOT_READ = {"missing", "unlabelled"}  # quirks that come out as rejections, not images
LISTS_NOTHING_UP_FRONT = {("imagenet", "official_tar")}  # so nothing can be "missing" there


@pytest.fixture(scope="module")
def indexes(sample_root):
    return {
        (source, layout): open_index(source, f"{sample_root}/{source}", layout)
        for source, layout in SOURCE_LAYOUTS
    }


@pytest.fixture(scope="module")
def read_layouts(indexes):
    """(source, layout) -> every item iter_source yields for it."""
    return {key: list(iter_source(index)) for key, index in indexes.items()}


def entries_of(ground_truth, source: str) -> list[dict]:
    return [entry for entry in ground_truth["images"] if entry["source"] == source]


@pytest.mark.parametrize(("source", "layout"), SOURCE_LAYOUTS)
def test_images_labels_and_splits(read_layouts, ground_truth, source, layout):
    expected = {
        entry["image_id"]: (entry["label"], entry["split"])
        for entry in entries_of(ground_truth, source)
        if layout in entry["in_layouts"] and entry["quirk"] not in NOT_READ
    }
    # GLDv2 images outside GLDv2-clean are read too; the ground truth names only their ids
    not_in_clean = set(ground_truth["sources"][source].get("not_in_clean", ()))
    images = [item for item in read_layouts[source, layout] if isinstance(item, SourceImage)]
    ids = Counter(image.record.image_id for image in images)
    assert [image_id for image_id, n in ids.items() if n > 1] == []
    assert ids.keys() == expected.keys() | not_in_clean
    read = {i.record.image_id: (i.record.label, i.record.split) for i in images}
    assert {image_id: read[image_id] for image_id in expected} == expected
    assert {split for _, split in read.values()} <= {"train", "val"}


@pytest.mark.parametrize(("source", "layout"), SOURCE_LAYOUTS)
def test_rejections_are_only_missing_and_unlabelled(read_layouts, ground_truth, source, layout):
    entries = entries_of(ground_truth, source)
    missing = [e["image_id"] for e in entries if e["quirk"] == "missing"]
    if (source, layout) in LISTS_NOTHING_UP_FRONT:
        missing = []
    unlabelled = [
        e["image_id"] for e in entries if e["quirk"] == "unlabelled" and layout in e["in_layouts"]
    ]
    expected = sorted(
        [(RejectReason.MISSING_IMAGE, i) for i in missing]
        + [(RejectReason.UNLABELLED_IMAGE, i) for i in unlabelled]
    )
    rejected = [item for item in read_layouts[source, layout] if isinstance(item, Rejection)]
    assert sorted((r.reason, r.image_id) for r in rejected) == expected


@pytest.mark.parametrize(("source", "layout"), SOURCE_LAYOUTS)
def test_classes_and_their_names(indexes, ground_truth, source, layout):
    expected = {label: c["name"] for label, c in ground_truth["sources"][source]["classes"].items()}
    classes = indexes[source, layout].classes
    assert {label: info.name for label, info in classes.items()} == expected


def test_gldv2_clean_subset(indexes, ground_truth):
    clean = {e["image_id"] for e in entries_of(ground_truth, "gldv2") if e["label"] is not None}
    assert indexes["gldv2", "tars"].subsets["clean"] == clean


@pytest.mark.parametrize(("source", "layout"), SOURCE_LAYOUTS)
def test_locations_read_back_the_same_bytes(read_layouts, source, layout):
    for item in read_layouts[source, layout]:
        if isinstance(item, SourceImage):
            assert read_location(item.record.location) == item.data, item.record.location
