"""Random generators derived from stable names: a value depends only on the seed and its use."""

from __future__ import annotations

import hashlib

import numpy as np


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A generator for one purpose, e.g. rng_for(seed, "imagenet", image_id, attempt).

    Parts are hashed (not Python's salted hash()) so the stream is the same in
    every process and does not depend on the order other streams are used in.
    """
    digest = hashlib.blake2b(repr((seed, *parts)).encode("utf-8"), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))
