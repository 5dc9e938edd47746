"""Train/validation split, per class and deterministic.

Inside each class, images are ordered by sha256(salt, image key); the first
round(n * fraction) go to validation (none when the class has a single
image, so every class can be trained on). The same images and salt always
give the same split, whatever order they arrive in.
"""

from __future__ import annotations

import hashlib
import math

TRAIN, VALIDATION = "train", "validation"


def validation_count(n: int, fraction: float) -> int:
    if n < 2:
        return 0
    return min(n - 1, math.floor(n * fraction + 0.5))


def split_class(keys: list[str], fraction: float, salt: str) -> dict[str, str]:
    order = sorted(keys, key=lambda k: hashlib.sha256(f"{salt}\0split\0{k}".encode()).digest())
    held_out = validation_count(len(order), fraction)
    return {k: VALIDATION if i < held_out else TRAIN for i, k in enumerate(order)}
