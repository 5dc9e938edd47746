"""The ground truth: what the sample holds and what a correct build does with each input."""

from __future__ import annotations

import dataclasses

from unibed.sample.catalog import Catalog
from unibed.sample.config import SampleConfig
from unibed.sample.layouts import layouts_holding
from unibed.schemas.source_record import SOURCES

SCHEMA_VERSION = 1
OUTCOMES = ("ok", "duplicate", "reject")


def ground_truth(config: SampleConfig, catalog: Catalog) -> dict:
    # GLDv2's non-clean images are inputs only when reading train.csv; the
    # target label space uses GLDv2-clean, so they are listed apart.
    inputs = [im for im in catalog.images if im.in_clean]
    images = [
        {
            "source": im.source,
            "image_id": im.image_id,
            "label": im.label,
            "split": im.split,
            "expected": im.expected,
            "reject_reason": im.reject_reason,
            "quirk": im.quirk,
            "duplicate_group": im.duplicate_group,
            "in_layouts": layouts_holding(im),
        }
        for im in sorted(inputs, key=lambda im: (im.source, im.image_id))
    ]
    sources = {}
    for source in SOURCES:
        train = [im for im in inputs if im.source == source and im.split == "train"]
        sources[source] = {
            "root": source,
            "classes": {
                c.label: {"name": c.name, "images": sum(im.label == c.label for im in train)}
                for c in catalog.classes[source]
            },
        }
    sources["gldv2"]["not_in_clean"] = sorted(im.image_id for im in catalog.images
                                              if not im.in_clean)
    counts = {
        source: {"listed": sum(e["source"] == source for e in images)}
        | {outcome: sum(e["source"] == source and e["expected"] == outcome for e in images)
           for outcome in OUTCOMES}
        for source in SOURCES
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "seed": config.seed,
        "config": dataclasses.asdict(config),
        "sources": sources,
        "images": images,
        "duplicate_groups": [dataclasses.asdict(g) | {"members": list(g.members)}
                             for g in catalog.groups],
        "counts": counts,
    }
