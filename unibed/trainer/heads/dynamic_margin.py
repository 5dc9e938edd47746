"""Per-class margins from the class's image count: rare classes get more.

    m_c = a * n_c^(-1/4) + b

with a and b set so the largest class gets `low` and the smallest `high`: the
dynamic margin of the GLDv2 2020 2nd place that the GUIE 4th and 6th places
reused (range 0.05-0.50). Their code min-max scales n^(-1/4) into the range,
which is exactly this affine map. Counts are the train split's records per
class from the build's manifest (`Manifest.records_per_class["train"]`).
A class without train images is never a target; it gets `high`. If every
class has the same count there is nothing to scale by: all get `high`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def dynamic_margin_coefficients(counts: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """(a, b) of m = a * n^(-1/4) + b over the positive counts."""
    t = np.asarray(counts, np.float64)[np.asarray(counts) > 0] ** -0.25
    if t.size == 0 or t.max() == t.min():
        return 0.0, float(high)
    a = (high - low) / (t.max() - t.min())
    return float(a), float(low - a * t.min())


def dynamic_margins(counts: np.ndarray, low: float, high: float) -> np.ndarray:
    """float32 [C]: each class's margin for its count (counts[c] = images of class c)."""
    counts = np.asarray(counts, np.int64)
    a, b = dynamic_margin_coefficients(counts, low, high)
    with np.errstate(divide="ignore"):
        margins = a * counts.astype(np.float64) ** -0.25 + b
    return np.where(counts > 0, margins, high).astype(np.float32)


def counts_per_class(records_per_class: Mapping[int, int], num_classes: int) -> np.ndarray:
    """A manifest's {class id: records} as an int64 array over the whole label space."""
    counts = np.zeros(num_classes, np.int64)
    for label, n in records_per_class.items():
        counts[int(label)] = int(n)
    return counts
