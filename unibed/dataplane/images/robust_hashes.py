"""Probe hashes: pHashes of an image as the edits that datasets carry would show it.

The identity of an image stays its 64-bit pHash (unibed.dataplane.images.phash). Next to
it each image gets a few probe hashes, each of one kind; the near-duplicate search
(unibed.dataplane.dedup.probe_search) matches probe against identity, or probe against the
same kind, within the kind's radius (`rules_from`, radii from the recipe), so that:

- "mirror": the pHash of the horizontally mirrored image meets a mirrored copy's identity.
  Computed from the identity's own DCT: mirroring a row turns DCT-II coefficient k into
  (-1)^k times itself, so the odd horizontal frequencies change sign, then the bits are
  re-thresholded at their new median.
- "crop92", "crop84", "crop76": the pHash of the centred crop at that scale (a copy cropped
  by c per side shows the original's crop at scale 1 - 2c: 4, 8 and 12% per side) meets
  the cropped copy's identity.
- "trim": the pHash after removing uniform borders (bars of one colour, any colour, within
  a tolerance: letterbox, pillarbox, padding) meets the original's identity; only images
  that have such borders get one.
- "top85": the pHash of the top 85% meets the same probe of another image: a copy with a
  caption strip over its bottom (up to 15% high) shares its top 85% with the original.
- "rotate92", "rotate84", "rotate76": a copy turned by a few degrees on its own canvas
  (filled corners: unibed.dataplane.images.rotation reads the angle from them) is turned
  back and cropped at the largest crop scale free of fill; that meets the original's crop
  probe of the same scale. Only images with such corners get one.

The top probe reuses the identity's horizontal pass; the crop and trim probes are taken
from one reduction of the image by an integer factor (their 32x32 resizes are then small);
benchmarks/bench_dedup_edits.py prints the cost next to the identity hash alone.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np
from PIL import Image

from unibed.dataplane.images.phash import (
    DCT_SIDE,
    bits_of,
    lanczos_matrix,
    low_dct,
    resize_axis,
    resize_lanczos,
    vertical_first,
)
from unibed.dataplane.images.rotation import fitting_scale, turn_angle

IDENTITY = "near"  # the identity hash's kind, as duplicates.csv names a plain pHash match
MIRROR, TRIM, TOP = "mirror", "trim", "top85"
CROP_SCALES = {"crop92": 0.92, "crop84": 0.84, "crop76": 0.76}
# a turned copy, turned back and cropped at a crop scale, meets the original's crop probe
ROTATED = {kind: kind.replace("crop", "rotate") for kind in CROP_SCALES}
PROBE_KINDS = (MIRROR, *CROP_SCALES, TOP, TRIM, *ROTATED.values())
_FIT_MARGIN = 0.01  # the turned-back corners' edges blur over a pixel or two
TOP_SHARE = 0.85
_INTERMEDIATE_SIDE = 144
_SINGLE_THREADED_PRODUCT = 4 * 65536
# Borders: rows/columns whose grey values all lie within this of the border's colour ...
BORDER_TOLERANCE = 24
# ... and which add up to at least this share of the side (smaller is JPEG ringing or
# a frame line, not a bar) and leave at least half of it.
MIN_BORDER_SHARE = 0.02
MAX_BORDER_SHARE = 0.5
# Odd horizontal frequencies change sign under a horizontal mirror.
_MIRROR_SIGNS = np.where(np.arange(8) % 2 == 1, -1.0, 1.0)


# A packed probe: its kind's index in PROBE_KINDS, then its 64-bit hash.
_PACKED_PROBE = struct.Struct(">BQ")


def pack_probes(probes: tuple[tuple[str, int], ...]) -> bytes:
    """(kind, hash) pairs as 9 bytes each: one small object instead of a tuple, a string
    and an int per probe (a build holds every image's probes until dedup)."""
    return b"".join(_PACKED_PROBE.pack(PROBE_KINDS.index(kind), value) for kind, value in probes)


def unpack_probes(packed: bytes) -> tuple[tuple[str, int], ...]:
    return tuple((PROBE_KINDS[kind], value) for kind, value in _PACKED_PROBE.iter_unpack(packed))


class Rule(NamedTuple):
    """A probe of kind `probe` matches a hash of kind `target` within `radius` bits."""

    probe: str
    target: str
    radius: int


def rules_from(radii: dict[str, int | None]) -> tuple[Rule, ...]:
    """The search rules for a kind -> radius mapping (None: the kind is off); "rotate"
    stands for the three turned-back kinds, each matched against its crop scale."""
    rules = []
    for kind, radius in sorted(radii.items()):
        if radius is None:
            continue
        if kind == "rotate":
            rules += [Rule(turned, crop, radius) for crop, turned in ROTATED.items()]
        else:
            rules.append(Rule(kind, TOP if kind == TOP else IDENTITY, radius))
    return tuple(rules)


class ImageHashes(NamedTuple):
    identity: int  # the pHash of the image
    probes: tuple[tuple[str, int], ...]  # (kind, hash), in a fixed kind order


def image_hashes(image: Image.Image) -> ImageHashes:
    """The identity pHash (imagehash's, bit for bit) and the probe hashes of `image`."""
    luma = image.convert("L")
    gray = np.asarray(luma).astype(np.float64)
    pixels, top = _identity_and_top_pixels(gray)
    low = low_dct(pixels)
    probes = [(MIRROR, bits_of(low * _MIRROR_SIGNS))]
    reduced = _reduced(luma)
    probes += [(kind, _hash_of(_centre(reduced, scale))) for kind, scale in CROP_SCALES.items()]
    probes.append((TOP, bits_of(low_dct(top))))
    trimmed = _without_borders(reduced)
    if trimmed is not None:
        probes.append((TRIM, _hash_of(trimmed)))
    turned = _turned_back(luma, gray)
    if turned is not None:
        probes.append(turned)
    return ImageHashes(bits_of(low), tuple(probes))


def _turned_back(luma: Image.Image, gray: np.ndarray) -> tuple[str, int] | None:
    """For a copy turned by a few degrees with filled corners: the pHash of it turned back
    and cropped at the largest crop scale free of fill, as kind "rotate<scale>", which the
    search matches against the original's crop probe of that scale."""
    angle = turn_angle(gray)  # read at full resolution: the triangles are thin
    if angle is None:
        return None
    height, width = gray.shape
    fits = fitting_scale(width, height, angle) - _FIT_MARGIN
    kind, scale = next(((k, s) for k, s in CROP_SCALES.items() if s <= fits), (None, None))
    if kind is None:
        return None
    back = luma.reduce(max(1, min(luma.size) // _INTERMEDIATE_SIDE)).rotate(
        -angle, resample=Image.Resampling.BICUBIC)
    return ROTATED[kind], _hash_of(_centre(np.asarray(back).astype(np.float64), scale))


def _identity_and_top_pixels(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 32x32 pixels of the image and of its top TOP_SHARE, both exactly as Pillow would
    resize them. Pillow resizes horizontally first, so the top's horizontal pass is rows
    of the image's own: only its small vertical pass is extra."""
    height, width = gray.shape
    rows = max(1, round(height * TOP_SHARE))
    if vertical_first(height, width, DCT_SIDE) or vertical_first(rows, width, DCT_SIDE):
        return resize_lanczos(gray, DCT_SIDE), resize_lanczos(gray[:rows], DCT_SIDE)
    across = gray if width == DCT_SIDE else resize_axis(gray, 1, DCT_SIDE)
    return _down(across), _down(across[:rows])


def _down(across: np.ndarray) -> np.ndarray:
    return across if across.shape[0] == DCT_SIDE else resize_axis(across, 0, DCT_SIDE)


def _reduced(luma: Image.Image) -> np.ndarray:
    """The image reduced by an integer factor (Pillow's box average, in C) to a shorter side
    of _INTERMEDIATE_SIDE or more: crops and border checks read this, not every pixel."""
    k = max(1, min(luma.size) // _INTERMEDIATE_SIDE)
    return np.asarray(luma.reduce(k) if k > 1 else luma).astype(np.float64)


def _hash_of(gray: np.ndarray) -> int:
    """pHash of a (small) grey image, resized by two dense products instead of Pillow's
    banded, rounded passes: 3-4x faster there, and a bit apart at most now and then."""
    height, width = gray.shape
    rows = lanczos_matrix(height, DCT_SIDE)
    # column chunks keep each product on the calling thread (see phash._SINGLE_THREADED_PRODUCT)
    step = max(1, _SINGLE_THREADED_PRODUCT // (DCT_SIDE * height))
    down = np.hstack([rows @ gray[:, c : c + step] for c in range(0, width, step)])
    return bits_of(low_dct(down @ lanczos_matrix(width, DCT_SIDE).T))


def _centre(gray: np.ndarray, scale: float) -> np.ndarray:
    height, width = gray.shape
    dy, dx = round(height * (1 - scale) / 2), round(width * (1 - scale) / 2)
    return gray[dy : height - dy, dx : width - dx]


def _without_borders(gray: np.ndarray) -> np.ndarray | None:
    """`gray` without its uniform borders, or None when it has none worth trimming."""
    height, width = gray.shape
    top, bottom = _border_run(gray), _border_run(gray[::-1])
    left, right = _border_run(gray.T), _border_run(gray.T[::-1])
    rows, columns = top + bottom, left + right
    if rows >= height * MAX_BORDER_SHARE or columns >= width * MAX_BORDER_SHARE:
        return None  # mostly flat: a graphic, not a framed picture
    if rows < height * MIN_BORDER_SHARE and columns < width * MIN_BORDER_SHARE:
        return None
    return gray[top : height - bottom, left : width - right]


def _border_run(gray: np.ndarray) -> int:
    """How many leading rows hold only values within BORDER_TOLERANCE of the first pixel."""
    colour = gray[0, 0]
    if np.abs(gray[0] - colour).max() > BORDER_TOLERANCE:
        return 0  # most images: the first row is not flat
    head = gray[: int(gray.shape[0] * MAX_BORDER_SHARE) + 1]
    flat = np.abs(head - colour).max(axis=1) <= BORDER_TOLERANCE
    return int(np.argmin(flat)) if not flat.all() else len(flat)
