"""Generates the whole sample: classes, images, planted problems, layouts and ground truth."""

from __future__ import annotations

import json

from unibed.dataplane import storage
from unibed.sample.catalog import Catalog
from unibed.sample.classes import make_classes
from unibed.sample.config import SampleConfig
from unibed.sample.duplicates import plant_duplicates
from unibed.sample.ground_truth import ground_truth
from unibed.sample.identifiers import Identifiers
from unibed.sample.layouts import write_layouts
from unibed.sample.painter import Painter
from unibed.sample.phash import PerceptualSpacing
from unibed.sample.population import populate
from unibed.sample.quirks import plant_quirks
from unibed.sample.seeding import rng_for


def build_catalog(config: SampleConfig) -> Catalog:
    """Everything the sample holds, in memory; the order of steps is part of determinism."""
    ids = Identifiers(rng_for(config.seed, "identifiers"))
    spacing = PerceptualSpacing()
    painter = Painter(config.seed, spacing)
    catalog = Catalog(make_classes(config, ids))
    catalog.images += populate(config, catalog.classes, ids, painter)
    catalog.images += plant_quirks(config.seed, catalog.classes, ids, painter)
    plant_duplicates(config.seed, catalog, ids, spacing)
    return catalog


def generate_sample(out_root: str, config: SampleConfig | None = None) -> dict:
    """Write the sample under `out_root` (a local path or gs:// URL); return its ground truth."""
    config = config or SampleConfig()
    catalog = build_catalog(config)
    write_layouts(out_root, catalog, config.gldv2_tars)
    truth = ground_truth(config, catalog)
    storage.write_text(storage.join(out_root, "ground_truth.json"),
                       json.dumps(truth, sort_keys=True, indent=2) + "\n")
    return truth
