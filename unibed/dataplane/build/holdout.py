"""Which classes of a source are held out for the evaluation split, and which images.

Metadata only, like selection.py, and before any dedup. Rules (DESIGN.md, "The
evaluation split"):
- candidates: classes with at least queries_per_class + 1 eligible images (a query
  needs an index image of its class); with `take_from: unselected` only those the
  training selection leaves out (GLDv2 beyond the top k), with `take_from: all`
  any, held out before the training classes are chosen from the rest;
- the first n candidates by sha256(salt, "holdout", source/label) are query
  classes, the next `distractors` index-only classes;
- images per class: the first queries_per_class + index_per_class (distractors:
  index_per_class) by sha256(salt, source/image_id), as the per-class cap does;
- held-out ids follow the training label space (unibed/schemas/heldout.py).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from unibed.schemas.errors import SchemaError
from unibed.schemas.heldout import HeldOutClass, HeldOutMap
from unibed.schemas.recipe import EvaluationSpec, HoldoutSpec


@dataclass(frozen=True)
class HeldOut:
    """One source's held-out classes (query and distractor) and their images."""

    queries: tuple[str, ...] = ()  # source labels, by label order
    distractors: tuple[str, ...] = ()
    images: dict[str, str] = field(default_factory=dict)  # image_id -> source label


def _class_rank(salt: str, source: str, label: str) -> bytes:
    return hashlib.sha256(f"{salt}\0holdout\0{source}/{label}".encode()).digest()


def candidates(counts: Counter, spec: EvaluationSpec, training: tuple[str, ...] = ()) -> list[str]:
    """Classes with enough images for a query and an index image, not trained on."""
    trained = set(training)
    return [c for c, n in counts.items() if n >= spec.queries_per_class + 1 and c not in trained]


def choose_heldout(source: str, counts: Counter, eligible: dict[str, str], spec: EvaluationSpec,
                   hold: HoldoutSpec, training: tuple[str, ...], label_order) -> HeldOut:
    """The held-out classes of one source among its candidates, and their images."""
    pool = sorted(candidates(counts, spec, training), key=lambda c: _class_rank(spec.salt, source, c))
    wanted = hold.count(len(pool))
    if wanted + hold.distractors > len(pool):
        raise SchemaError(
            f"evaluation: source {source} has {len(pool)} classes to hold out (at least "
            f"{spec.queries_per_class + 1} eligible images, take_from {hold.take_from}), the recipe "
            f"asks for {wanted} query + {hold.distractors} distractor classes"
        )
    queries, distractors = pool[:wanted], pool[wanted:wanted + hold.distractors]
    caps = {c: spec.queries_per_class + spec.index_per_class for c in queries}
    caps |= {c: spec.index_per_class for c in distractors}
    return HeldOut(tuple(sorted(queries, key=label_order)), tuple(sorted(distractors, key=label_order)),
                   _capped_images(source, eligible, caps, spec.salt))


def _capped_images(source: str, eligible: dict[str, str], caps: dict[str, int], salt: str) -> dict[str, str]:
    by_class: dict[str, list[str]] = {}
    for image_id, label in eligible.items():
        if label in caps:
            by_class.setdefault(label, []).append(image_id)
    ranked = (
        (label, sorted(ids, key=lambda i: hashlib.sha256(f"{salt}\0{source}/{i}".encode()).digest()))
        for label, ids in by_class.items()
    )
    return {i: label for label, ids in ranked for i in ids[: caps[label]]}


def heldout_map(first_id: int, sources: list[tuple[str, HeldOut]], names: dict[str, dict]) -> HeldOutMap:
    """Held-out ids after the training label space: per source in recipe order, its query
    then its distractor classes, each by label order."""
    entries: list[HeldOutClass] = []
    for source, held in sources:
        for role, labels in (("query", held.queries), ("distractor", held.distractors)):
            for label in labels:
                info = names[source].get(label)
                entries.append(HeldOutClass(first_id + len(entries), source, label,
                                            info.name if info else label, role))
    return HeldOutMap(first_id, tuple(entries))
