"""The build's decision rules on their own: class selection, caps, keep rule, split."""

from __future__ import annotations

import pytest

from unibed.dataplane.build.selection import (
    cap_per_class,
    choose_classes,
    label_order,
    select_source,
)
from unibed.dataplane.build.split import split_class, validation_count
from unibed.dataplane.dedup import keep_rule
from unibed.dataplane.sources.base import ClassInfo, SourceIndex
from unibed.schemas.errors import SchemaError
from unibed.schemas.recipe import SourceSpec


def _index(listed: dict[str, str], **extra) -> SourceIndex:
    classes = {label: ClassInfo(label, f"name {label}") for label in set(listed.values())}
    return SourceIndex("gldv2", "tars", "root", classes, [], listed=listed, **extra)


def test_label_order_is_numeric_for_numbers():
    assert sorted(["10", "9", "n2", "100", "n10"], key=label_order) == ["9", "10", "100", "n10", "n2"]


def test_top_k_takes_the_largest_classes_and_breaks_ties_by_label():
    from collections import Counter

    counts = Counter({"5": 3, "40": 7, "7": 7, "12": 3, "3": 1})
    spec = SourceSpec(name="gldv2", location="x", classes={"mode": "top_k", "k": 3})
    # 40 and 7 have 7 images; of the 3-image classes, 5 wins over 12; ids in label order
    assert choose_classes(_index({}), spec, counts) == ("5", "7", "40")
    spec = SourceSpec(name="gldv2", location="x", classes={"mode": "all", "min_images": 3})
    assert choose_classes(_index({}), spec, counts) == ("5", "7", "12", "40")


def test_cap_is_deterministic_and_independent_of_listing_order():
    images = {f"id{i}": "A" for i in range(20)} | {f"jd{i}": "B" for i in range(3)}
    kept = cap_per_class(images, 5, "salt", "gldv2")
    again = cap_per_class(dict(reversed(list(images.items()))), 5, "salt", "gldv2")
    assert kept == again
    assert sum(1 for v in kept.values() if v == "A") == 5 and sum(1 for v in kept.values() if v == "B") == 3
    assert cap_per_class(images, 5, "other salt", "gldv2") != kept


def test_subset_and_split_filters_and_unknown_subset():
    listed = {"a": "1", "b": "1", "c": "2", "d": "2"}
    index = _index(listed, subsets={"clean": frozenset({"a", "c", "d"})}, splits={"d": "val"})
    spec = SourceSpec(name="gldv2", location="x", subset="clean")
    selection = select_source(index, spec, "salt")
    assert selection.wanted == {"a": "1", "c": "2"}
    assert selection.not_selected == 0 and selection.eligible == 2
    with pytest.raises(SchemaError, match="subset 'clean' is not defined"):
        select_source(_index(listed), spec, "salt")


def _node(key, pixels, rank, label, *neighbours):
    return keep_rule.Node(key, keep_rule.preference(False, pixels, rank, key), label, tuple(neighbours))


def test_keep_rule_prefers_the_larger_image_and_keeps_both_ends_of_a_chain():
    nodes = [
        _node("a", 100, 0, "1", ("b", 3, "near")),
        _node("b", 200, 0, "1", ("a", 3, "near"), ("c", 4, "near")),
        _node("c", 300, 1, "2", ("b", 4, "near")),
    ]
    drops = keep_rule.choose(nodes)
    # c (largest) kept, b dropped for c; a's only neighbour b is gone, so a is kept
    assert [(d.dropped, d.kept, d.distance, d.conflicting_labels) for d in drops] == [("b", "c", 4, True)]
    assert keep_rule.choose(list(reversed(nodes))) == drops


def test_keep_rule_ties_go_to_recipe_order_then_key():
    nodes = [_node("z", 100, 0, "1", ("y", 0, "exact")), _node("y", 100, 1, "1", ("z", 0, "exact"))]
    (drop,) = keep_rule.choose(nodes)
    assert (drop.dropped, drop.kept, drop.kind) == ("y", "z", "exact")


@pytest.mark.parametrize("n, expected", [(1, 0), (2, 0), (5, 1), (10, 1), (14, 1), (15, 2), (50, 5)])
def test_validation_count(n, expected):
    assert validation_count(n, 0.1) == expected


def test_split_is_deterministic_and_order_free():
    keys = [f"k{i}" for i in range(30)]
    first = split_class(keys, 0.1, "s")
    assert first == split_class(list(reversed(keys)), 0.1, "s")
    assert sum(v == "validation" for v in first.values()) == 3
