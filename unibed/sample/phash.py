"""pHash (imagehash, as a 64-bit int) and the distance kept between unrelated images."""

from __future__ import annotations

import io

import imagehash
import numpy as np
from PIL import Image, ImageOps

from unibed.dataplane.images.robust_hashes import TOP, image_hashes
from unibed.sample.encoding import EXIF_ORIENTATION

# Unrelated images must be more than 10 bits apart (the ground truth's promise);
# two bits more than that leave room for decoders or hash variants that differ slightly.
UNRELATED_MIN_DISTANCE = 13
NEAR_DUPLICATE_MAX_DISTANCE = 8
# Probe hashes (mirror, crops, trimmed, top 85%: the build's, dataplane.images.robust_hashes)
# of unrelated images must be at least this far from what they are searched against: the
# build's probe radius (2) with room to spare.
UNRELATED_PROBE_MIN_DISTANCE = 6


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


def probes_of(data: bytes) -> dict[str, int]:
    """The build's probe hashes of the displayed image (EXIF orientation applied)."""
    with Image.open(io.BytesIO(data)) as image:
        return dict(image_hashes(ImageOps.exif_transpose(image).convert("RGB")).probes)


def probes_near(probes_a: dict, identities_a, probes_b: dict, identities_b, limit: int) -> bool:
    """Whether a probe of one image comes within `limit` of what it is searched against in
    the other: a pHash, or for top85 the other's top85."""
    for probes, identities, other_probes, other_identities in (
        (probes_a, identities_a, probes_b, identities_b),
        (probes_b, identities_b, probes_a, identities_a),
    ):
        for kind, value in probes.items():
            targets = [other_probes[TOP]] if kind == TOP and TOP in other_probes else (
                [] if kind == TOP else other_identities)
            if any(distance(value, t) < limit for t in targets):
                return True
    return False


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
        self._probes: list[tuple[dict, tuple[int, ...], str]] = []

    def admits(self, hashes: tuple[int, ...], family: str, probes: dict | None = None) -> bool:
        if not all(distance(h, other) >= UNRELATED_MIN_DISTANCE
                   for other, owner in self._hashes if owner != family for h in hashes):
            return False
        return probes is None or not any(
            probes_near(probes, hashes, other_probes, other_hashes, UNRELATED_PROBE_MIN_DISTANCE)
            for other_probes, other_hashes, owner in self._probes if owner != family)

    def add(self, hashes: tuple[int, ...], family: str, probes: dict | None = None) -> None:
        self._hashes += [(h, family) for h in hashes]
        if probes is not None:
            self._probes.append((probes, hashes, family))
