"""Per-class caps and per-source shares at training time (REFERENCE section 8:
the 2nd place capped classes at 100 images and repeated small ones up to 20;
the 4th capped at 50, the 5th at 30).

From the manifest's per-class counts n_c of the train split, each class's
images per epoch are

    t_c = max(min(n_c, class_cap), class_min)     (a bound set to 0 is left out)

and with source weights w_s the classes of source s are scaled together so
that s makes up w_s / sum(w) of the epoch, whose size stays sum(t_c) over the
weighted sources. Every record of class c then carries the rate t_c' / n_c:
the tf.data pipeline (data.py) emits it floor(rate) times plus once more with
probability frac(rate), drawn from a seeded stream, so an epoch holds t_c'
images of class c in expectation, a capped class shows a different subset
every epoch, and the same seed gives the same order. Pure Python: the plan is
computed once from the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


class SamplingError(ValueError):
    """Sampling settings that do not fit the dataset or cannot be parsed."""


@dataclass(frozen=True)
class SamplingPlan:
    rates: tuple[float, ...]  # per class id: expected emissions of each of its records per epoch
    epoch_size: int  # records per epoch after sampling (rounded expectation)
    per_source: dict[str, float]  # expected records per epoch of each source


def parse_source_weights(text: str) -> dict[str, float]:
    """"a=0.6,b=0.4" -> {"a": 0.6, "b": 0.4}; "" -> {} (no reweighting)."""
    weights: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not eq or not name.strip() or not weight >= 0 or math.isinf(weight):
            raise SamplingError(f"expected source=weight with a weight >= 0, got {item!r}")
        if name.strip() in weights:
            raise SamplingError(f"source {name.strip()!r} is given twice")
        weights[name.strip()] = weight
    if weights and not sum(weights.values()) > 0:
        raise SamplingError("every source weight is 0: nothing would be trained on")
    return weights


def class_target(n: int, cap: int, minimum: int) -> int:
    """Images per epoch of a class with n images (t_c above)."""
    if n <= 0:
        return 0
    t = min(n, cap) if cap else n
    return max(t, minimum) if minimum else t


def _source_of(label_ranges: Mapping[str, tuple[int, int]]):
    ranges = sorted((first, last, source) for source, (first, last) in label_ranges.items())

    def source_of(c: int) -> str:
        for first, last, source in ranges:
            if first <= c <= last:
                return source
        raise SamplingError(f"class {c} lies in no source's label range")

    return source_of


def _source_factors(totals: dict[str, int], weights: dict[str, float]) -> dict[str, float]:
    """Per-source scale turning the sources' totals into the shares the weights ask for."""
    if not weights:
        return {s: 1.0 for s in totals}
    present = {s for s, t in totals.items() if t > 0}
    if missing := sorted(present - weights.keys()):
        raise SamplingError(f"source_weights has no weight for {missing} (the train split's "
                            f"sources are {sorted(present)}; weight 0 leaves one out)")
    if unknown := sorted(s for s in weights.keys() - present if weights[s] > 0):
        raise SamplingError(f"source_weights names {unknown}, which have no train records "
                            f"(the sources are {sorted(present)})")
    kept = [s for s in present if weights[s] > 0]
    epoch = sum(totals[s] for s in kept)
    total_weight = sum(weights[s] for s in kept)
    return {s: (weights[s] / total_weight * epoch / totals[s] if s in kept else 0.0)
            for s in totals}


def sampling_plan(records_per_class: Mapping[int, int], label_ranges: Mapping[str, tuple[int, int]],
                  num_classes: int, *, class_cap: int = 0, class_min: int = 0,
                  source_weights: str = "") -> SamplingPlan | None:
    """The per-class rates for these settings; None when nothing is set (every rate 1)."""
    weights = parse_source_weights(source_weights)
    if not (class_cap or class_min or weights):
        return None
    source_of = _source_of(label_ranges)
    counts = {int(c): int(n) for c, n in records_per_class.items() if int(n) > 0}
    targets = {c: class_target(n, class_cap, class_min) for c, n in counts.items()}
    sources = {c: source_of(c) for c in counts}
    totals: dict[str, int] = {}
    for c, t in targets.items():
        totals[sources[c]] = totals.get(sources[c], 0) + t
    factors = _source_factors(totals, weights)
    rates = [0.0] * num_classes
    per_source = {s: 0.0 for s in totals}
    for c, n in counts.items():
        expected = targets[c] * factors[sources[c]]
        rates[c] = expected / n
        per_source[sources[c]] += expected
    return SamplingPlan(tuple(rates), max(1, round(sum(per_source.values()))), per_source)
