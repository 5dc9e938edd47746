"""pHash (imagehash, as a 64-bit int) and the distance kept between unrelated images."""

from __future__ import annotations

import io

import imagehash
import numpy as np
from PIL import Image, ImageOps

from unibed.sample.encoding import EXIF_ORIENTATION

# Unrelated images must be more than 10 bits apart (the ground truth's promise);
# two bits more than that leave room for decoders or hash variants that differ slightly.
UNRELATED_MIN_DISTANCE = 13
NEAR_DUPLICATE_MAX_DISTANCE = 8


def phash_of(image: Image.Image) -> int:
    bits = imagehash.phash(image).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hashes_of(data: bytes) -> tuple[int, ...]:
    """pHash of the stored pixels, plus that of the displayed image when EXIF turns it."""
    with Image.open(io.BytesIO(data)) as image:
        stored = phash_of(image)
        if image.getexif().get(EXIF_ORIENTATION, 1) == 1:
            return (stored,)
        return stored, phash_of(ImageOps.exif_transpose(image))


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class PerceptualSpacing:
    """Remembers the hashes of accepted images, by family.

    A family is an original and its planted copies; images of different
    families must stay UNRELATED_MIN_DISTANCE apart, so the only near pairs a
    deduplicator can find in the sample are the planted ones.
    """

    def __init__(self) -> None:
        self._hashes: list[tuple[int, str]] = []

    def admits(self, hashes: tuple[int, ...], family: str) -> bool:
        return all(distance(h, other) >= UNRELATED_MIN_DISTANCE
                   for other, owner in self._hashes if owner != family for h in hashes)

    def add(self, hashes: tuple[int, ...], family: str) -> None:
        self._hashes += [(h, family) for h in hashes]
