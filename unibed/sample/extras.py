"""The extended sample: small copies of Stanford Online Products (`sop/`),
Food-101 (`food101/`) and Shopee (`shopee/`) in their published layouts
(docs/layouts.md), beside a default sample, with planted problems:

- duplicates across sources: a Shopee image byte-identical to a Products-10K
  one, a Food-101 image that is another Products-10K one re-encoded at q60
  (near), an SOP image byte-identical to a Shopee one (new vs new);
- metadata problems: two Shopee postings sharing one image file (the second
  row DUPLICATE_ID, as on Kaggle), a Shopee row whose image is missing, an
  SOP row with too few fields (MALFORMED_ROW) and one with a `..` path
  (UNSAFE_MEMBER_PATH), a Food-101 image no listing names (UNLABELLED_IMAGE);
- Food-101's test split (listed, not selected by a recipe reading train).

The default sample is never grown: `unibed sample --extended` (or
`generate_extras(out_root, base_root)`) writes these three folders, and
`ground_truth_extended.json` beside them, on top of a default sample whose
images the planted copies are taken from. Same seed: byte-identical files.

`ground_truth_extended.json`: `sources` ({source: {"root", "classes": {label:
{"name", "images"}}}}), `images` (one entry per input: source, image_id (""
for a row that names no image), label, split, expected ("ok" | "duplicate" |
"reject"), reject_reason, duplicate_group), `duplicate_groups` ({"id", "kind",
"members": [original key, copy key], "cross_source": true}), `counts`
({source: {"inputs", "ok", "duplicate", "reject", "not_selected"}}).
"""

from __future__ import annotations

import json
from dataclasses import asdict

from unibed.dataplane import storage
from unibed.sample.extras_layouts import write_food101, write_shopee, write_sop
from unibed.sample.extras_population import ExtraImage, Extras, ExtrasConfig, populate_extras

EXTRA_SOURCES = ("sop", "food101", "shopee")
TRUTH_FILE = "ground_truth_extended.json"


def generate_extras(out_root: str, base_root: str | None = None,
                    config: ExtrasConfig | None = None) -> dict:
    """Write sop/, food101/, shopee/ under `out_root`, copying planted
    duplicates from the default sample at `base_root` (default: `out_root`);
    return the extras' ground truth (also written to ground_truth_extended.json)."""
    config = config or ExtrasConfig()
    base_root = base_root or out_root
    base = json.loads(storage.read_text(storage.join(base_root, "ground_truth.json")))
    extras = populate_extras(config, base, base_root)
    write_sop(storage.join(out_root, "sop"), extras)
    write_food101(storage.join(out_root, "food101"), extras)
    write_shopee(storage.join(out_root, "shopee"), extras)
    truth = extras_truth(config, extras)
    storage.write_text(storage.join(out_root, TRUTH_FILE), json.dumps(truth, sort_keys=True, indent=2) + "\n")
    return truth


def _entry(image: ExtraImage) -> dict:
    return {"source": image.source, "image_id": image.image_id, "label": image.label,
            "split": image.split, "expected": image.expected, "reject_reason": image.reject_reason,
            "duplicate_group": image.duplicate_group}


def extras_truth(config: ExtrasConfig, extras: Extras) -> dict:
    inputs = [im for im in extras.inputs if im.selected]
    counts = {source: {"inputs": sum(im.source == source for im in inputs)}
              | {outcome: sum(im.source == source and im.expected == outcome for im in inputs)
                 for outcome in ("ok", "duplicate", "reject")}
              | {"not_selected": sum(im.source == source and not im.selected for im in extras.inputs)}
              for source in EXTRA_SOURCES}
    sources = {source: {"root": source, "classes": {
        label: {"name": name, "images": sum(im.source == source and im.label == label and im.selected
                                            for im in extras.inputs)}
        for label, name in extras.class_names[source].items()}} for source in EXTRA_SOURCES}
    return {"schema_version": 1, "seed": config.seed, "config": asdict(config), "sources": sources,
            "images": [_entry(im) for im in sorted(inputs, key=lambda im: (im.source, im.image_id))],
            "duplicate_groups": [asdict(g) | {"members": list(g.members)} for g in extras.groups],
            "counts": counts}


__all__ = ["EXTRA_SOURCES", "ExtrasConfig", "generate_extras"]
