"""Which image of a group of duplicates survives: a deterministic greedy rule.

Images that take part in at least one duplicate pair are visited best first;
an image is kept unless a neighbour (an image within the threshold, or a
byte-identical copy) was already kept, in which case it is dropped as a
duplicate of the nearest kept neighbour. So no two kept images are
duplicates, every dropped image names a kept one within the threshold, and
chains (A~B, B~C, A!~C) keep both ends instead of collapsing to one image.

"Best" (the keep preference, DESIGN.md): images of an exclusion set first
(they are never written, so anything near them goes), then the evaluation
split's images (so a training image near one is dropped, kind `evaluation`:
the leak guard of the open-set split), then the larger source
image (more pixels: the better copy), then the source's position in the
recipe, then the image key.

Duplicates that carry different labels: the kept image keeps its own label,
the dropped one is reported with `conflicting_labels` so a person can look.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    key: str
    preference: tuple  # smaller is better
    label: str  # unified label (or "exclusion"), to flag conflicts
    neighbours: tuple[tuple[str, int, str], ...]  # (other key, distance, kind "exact"|"near"|"near:<probe>")


@dataclass(frozen=True)
class Drop:
    dropped: str
    kept: str
    distance: int
    kind: str  # exact | near | exclusion | evaluation
    conflicting_labels: bool
    dropped_label: str
    kept_label: str


EXCLUSION_TIER, EVALUATION_TIER, TRAINING_TIER = 0, 1, 2


def preference(is_exclusion: bool, source_pixels: int, source_rank: int, key: str,
               is_evaluation: bool = False) -> tuple:
    tier = EXCLUSION_TIER if is_exclusion else EVALUATION_TIER if is_evaluation else TRAINING_TIER
    return (tier, -source_pixels, source_rank, key)


def guard_kind(kind: str, kept_preference: tuple, dropped_preference: tuple) -> str:
    """A training image dropped for an evaluation image is the leak guard's drop."""
    if kept_preference[0] == EVALUATION_TIER and dropped_preference[0] == TRAINING_TIER:
        return "evaluation"
    return kind


def choose(nodes: list[Node]) -> list[Drop]:
    """The drops, sorted by dropped key. Deterministic for any input order."""
    label = {n.key: n.label for n in nodes}
    preferences = {n.key: n.preference for n in nodes}
    kept: set[str] = set()
    drops: list[Drop] = []
    for node in sorted(nodes, key=lambda n: n.preference):
        near_kept = [(d, other, kind) for other, d, kind in node.neighbours if other in kept]
        if not near_kept:
            kept.add(node.key)
            continue
        distance, other, kind = min(near_kept)
        if label[other] == "exclusion":
            kind = "exclusion"
        kind = guard_kind(kind, preferences[other], node.preference)
        drops.append(
            Drop(node.key, other, distance, kind, label[other] != node.label, node.label, label[other])
        )
    return sorted(drops, key=lambda d: d.dropped)
