"""Which classes and images a recipe takes from each source, and their unified ids.

Metadata only: runs on the launcher before any image is read, so a build
knows its label space (and a plan its size) up front.

Rules (documented in DESIGN.md, "Selection and label space"):
- eligible images: those the metadata lists in the recipe's `splits`, and in
  the named `subset` (e.g. GLDv2-clean) when one is given;
- classes: `all` classes with at least `min_images` eligible images, or the
  `top_k` with the most eligible images (ties: smaller source label first);
- unified ids: sources in recipe order, classes inside a source by source
  label (numeric labels numerically, others as text);
- per-class cap: the first `cap` images of a class in the order of
  sha256(salt, source/image_id) - a stable pseudo-random pick that does not
  depend on file order;
- a layout that lists nothing up front (ImageNet's official tar) takes `all`
  classes from its index and applies the cap while reading (`cap_in_unit`);
- a recipe `evaluation` section holds classes out of training (holdout.py):
  their images join `wanted`, their ids follow the label map's.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from unibed.dataplane.build.holdout import HeldOut, choose_heldout, heldout_map
from unibed.dataplane.sources.base import SourceIndex
from unibed.schemas.errors import SchemaError
from unibed.schemas.heldout import HeldOutMap
from unibed.schemas.label_map import LabelEntry, LabelMap
from unibed.schemas.recipe import EvaluationSpec, Recipe, SourceSpec


@dataclass(frozen=True)
class SourceSelection:
    source: str
    classes: tuple[str, ...]  # chosen source labels, in unified-id order
    # image_id -> source label of every chosen image; None when the layout
    # lists nothing up front and the cap is applied per unit while reading
    wanted: dict[str, str] | None
    cap: int | None
    eligible: int | None  # eligible images before class choice and cap (None: unknown)
    heldout: HeldOut = field(default_factory=HeldOut)  # the evaluation split's classes (holdout.py)

    @property
    def cap_in_unit(self) -> bool:
        return self.wanted is None

    @property
    def not_selected(self) -> int:
        """Listed, eligible images the recipe leaves out (class not chosen, over the cap)."""
        if self.eligible is None or self.wanted is None:
            return 0
        return self.eligible - len(self.wanted)


def label_order(label: str) -> tuple:
    """Numeric labels sort numerically (landmark 9 before 10), others as text."""
    return (0, int(label), "") if label.isdigit() else (1, 0, label)


def rank_key(salt: str, source: str, image_id: str) -> bytes:
    return hashlib.sha256(f"{salt}\0{source}/{image_id}".encode()).digest()


def eligible_images(index: SourceIndex, spec: SourceSpec) -> dict[str, str] | None:
    if index.listed is None:
        return None
    ids = index.listed
    if spec.subset != "all":
        if spec.subset not in index.subsets:
            raise SchemaError(
                f"source {spec.name}: subset {spec.subset!r} is not defined by the "
                f"{index.layout} layout at {index.root} (it has {sorted(index.subsets) or 'none'})"
            )
        members = index.subsets[spec.subset]
        ids = {i: label for i, label in ids.items() if i in members}
    return {
        i: label for i, label in ids.items() if index.splits.get(i, "train") in spec.splits
    }


def choose_classes(index: SourceIndex, spec: SourceSpec, counts: Counter | None) -> tuple[str, ...]:
    selection = spec.classes
    if counts is None:
        if selection.mode == "top_k":
            raise SchemaError(
                f"source {spec.name}: top_k needs per-class image counts, which the "
                f"{index.layout} layout does not list up front; use a layout with metadata"
            )
        chosen = list(index.classes)
    else:
        chosen = [label for label, n in counts.items() if n >= selection.min_images]
        if selection.mode == "top_k":
            chosen.sort(key=lambda label: (-counts[label], label_order(label)))
            chosen = chosen[: selection.k]
    return tuple(sorted(chosen, key=label_order))


def cap_per_class(images: dict[str, str], cap: int | None, salt: str, source: str) -> dict[str, str]:
    if cap is None:
        return dict(images)
    by_class: dict[str, list[str]] = {}
    for image_id, label in images.items():
        by_class.setdefault(label, []).append(image_id)
    kept: dict[str, str] = {}
    for label, ids in by_class.items():
        for image_id in sorted(ids, key=lambda i: rank_key(salt, source, i))[:cap]:
            kept[image_id] = label
    return kept


def select_source(index: SourceIndex, spec: SourceSpec, salt: str,
                  evaluation: EvaluationSpec | None = None) -> SourceSelection:
    eligible = eligible_images(index, spec)
    counts = None if eligible is None else Counter(eligible.values())
    hold = evaluation.for_source(spec.name) if evaluation else None
    if hold is None:
        classes, held = choose_classes(index, spec, counts), HeldOut()
    else:
        classes, held = _with_heldout(index, spec, evaluation, eligible, counts)
    if spec.expect_classes is not None and len(classes) != spec.expect_classes:
        raise SchemaError(
            f"source {spec.name}: the recipe expects {spec.expect_classes} classes, "
            f"{index.root} yields {len(classes)}"
        )
    wanted = None
    if eligible is not None:
        chosen = set(classes)
        in_classes = {i: label for i, label in eligible.items() if label in chosen}
        wanted = cap_per_class(in_classes, spec.per_class_cap, salt, spec.name) | held.images
    return SourceSelection(
        spec.name, classes, wanted, spec.per_class_cap, None if eligible is None else len(eligible), held
    )


def _with_heldout(index: SourceIndex, spec: SourceSpec, evaluation: EvaluationSpec,
                  eligible: dict[str, str] | None, counts: Counter | None) -> tuple[tuple[str, ...], HeldOut]:
    """Training classes and held-out classes: `take_from: all` holds out first and trains
    on the rest, `unselected` holds out among what the training selection leaves."""
    hold = evaluation.for_source(spec.name)
    if eligible is None:
        raise SchemaError(f"evaluation: source {spec.name}'s {index.layout} layout lists no images up "
                          "front, so no classes can be held out; use a layout with metadata")
    if hold.take_from == "all":
        held = choose_heldout(spec.name, counts, eligible, evaluation, hold, (), label_order)
        gone = set(held.queries) | set(held.distractors)
        rest = Counter({c: n for c, n in counts.items() if c not in gone})
        return choose_classes(index, spec, rest), held
    classes = choose_classes(index, spec, counts)
    return classes, choose_heldout(spec.name, counts, eligible, evaluation, hold, classes, label_order)


def build_label_map(selections: list[SourceSelection], indexes: dict[str, SourceIndex]) -> LabelMap:
    entries = []
    for selection in selections:
        names = indexes[selection.source].classes
        for label in selection.classes:
            info = names.get(label)
            entries.append(LabelEntry(len(entries), selection.source, label, info.name if info else label))
    return LabelMap(tuple(entries))


def select(recipe: Recipe, indexes: dict[str, SourceIndex]) -> tuple[list[SourceSelection], LabelMap]:
    """The recipe's selection from every source, and the label map it defines."""
    selections = [select_source(indexes[s.name], s, recipe.split.salt, recipe.evaluation) for s in recipe.sources]
    label_map = build_label_map(selections, indexes)
    if recipe.expect_classes is not None and label_map.num_classes != recipe.expect_classes:
        raise SchemaError(
            f"recipe {recipe.name} expects {recipe.expect_classes} classes, "
            f"the sources yield {label_map.num_classes}"
        )
    return selections, label_map


def build_heldout_map(selections: list[SourceSelection], indexes: dict[str, SourceIndex],
                      label_map: LabelMap) -> HeldOutMap:
    """The evaluation split's label space, after the training one (empty without one)."""
    names = {s.source: indexes[s.source].classes for s in selections}
    return heldout_map(label_map.num_classes, [(s.source, s.heldout) for s in selections], names)
