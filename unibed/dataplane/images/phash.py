"""The 64-bit DCT perceptual hash, bit-identical to `imagehash.phash`, in about half its time.

`imagehash.phash(image)` is: convert to "L", resize to 32x32 with LANCZOS, 2-D DCT-II
(scipy.fftpack), keep the top-left 8x8 coefficients, set a bit where a coefficient is
above their median. Pillow's 32x32 resize is most of its cost (73 filter taps per output
pixel from a 384x288 image, one multiply at a time).

We compute that resize exactly, as matrix products. Pillow resamples in fixed point:
weights are integers (the filter scaled by 2**22), each pass sums integer pixel*weight
products, rounds and clips to 0..255 (horizontal pass first, except for very tall
images). Those sums stay far below 2**53, so float64 BLAS computes them exactly whatever
its summation order. The weights are built with Pillow's own arithmetic (Resample.c:
same operations, same order, so the same doubles) and cached per input size. The DCT,
median and comparison are imagehash's."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import scipy.fftpack
from PIL import Image

HASH_SIDE = 8  # 8x8 = 64 bits
DCT_SIDE = HASH_SIDE * 4  # imagehash's highfreq_factor=4: the hash comes from a 32x32 image
_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point weights (Resample.c)
_LANCZOS_SUPPORT = 3.0
# Output pixels per matrix product. Each output reads only a window of the input, so
# small bands skip the zeros of the weight matrix; too small, and each product is too thin
# for BLAS: 8 resized 500x375..800x600 images 25% faster than 4 (and than 6 or 12).
_BAND = 8
# OpenBLAS runs a product of m*n*k <= 4 * 65536 on the calling thread: no thread start-up,
# no oversubscription (threads made phash 3x slower from 1000-px-wide images on 2 cores).
_SINGLE_THREADED_PRODUCT = 4 * 65536


def phash(image: Image.Image) -> int:
    """pHash of `image` as an unsigned 64-bit int: imagehash's bits, row-major, first bit highest.

    Equals `int(str(imagehash.phash(image)), 16)`.
    """
    return bits_of(low_dct(resize_lanczos(gray_of(image), DCT_SIDE)))


def gray_of(image: Image.Image) -> np.ndarray:
    """The image as imagehash sees it: "L", as float64."""
    return np.asarray(image.convert("L")).astype(np.float64)  # faster than asarray(dtype=)


def low_dct(pixels: np.ndarray) -> np.ndarray:
    """The top-left 8x8 coefficients of the 2-D DCT-II of a 32x32 image."""
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    return dct[:HASH_SIDE, :HASH_SIDE]


def bits_of(low: np.ndarray) -> int:
    """A bit per coefficient above their median, row-major, first bit highest."""
    bits = low > _median(low)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _median(values: np.ndarray) -> float:
    """np.median's value for an even count (the two middle values' sum, halved) in about
    2 us instead of 50 (np.median's time is mostly argument handling)."""
    ordered = np.sort(values, axis=None)
    middle = ordered.size // 2
    return (ordered[middle - 1] + ordered[middle]) / 2


class _Band(NamedTuple):
    outputs: slice  # these output pixels ...
    inputs: slice  # ... read only these input pixels ...
    weights: np.ndarray  # ... with these fixed-point weights, shape (outputs, inputs)


def resize_lanczos(gray: np.ndarray, side: int) -> np.ndarray:
    """Pillow's `resize((side, side), LANCZOS)` of an "L" image, exactly; values as float64."""
    height, width = gray.shape
    for axis in (0, 1) if vertical_first(height, width, side) else (1, 0):
        if gray.shape[axis] != side:  # Pillow skips a pass whose size does not change
            gray = resize_axis(gray, axis, side)
    return gray


def vertical_first(height: int, width: int, side: int) -> bool:
    """Image.resize takes very tall images vertically first; otherwise horizontal first."""
    return height > width * 100 and side < height


def resize_axis(gray: np.ndarray, axis: int, side: int) -> np.ndarray:
    if axis == 1:
        return _round_and_clip(_apply(_lanczos_bands(gray.shape[1], side), gray.T)).T
    return _round_and_clip(_apply(_lanczos_bands(gray.shape[0], side), gray))


def _apply(bands: tuple[_Band, ...], pixels: np.ndarray) -> np.ndarray:
    """The weighted sums along axis 0 of `pixels`, band by band, columns in single-threaded
    chunks."""
    out = np.empty((bands[-1].outputs.stop, pixels.shape[1]))
    for band in bands:
        columns = max(1, _SINGLE_THREADED_PRODUCT // band.weights.size)
        for start in range(0, pixels.shape[1], columns):
            chunk = slice(start, start + columns)
            out[band.outputs, chunk] = band.weights @ pixels[band.inputs, chunk]
    return out


def _round_and_clip(sums: np.ndarray) -> np.ndarray:
    """Pillow's clip8: add a half, drop the fraction bits, clamp to a byte."""
    half = 1 << (_PRECISION_BITS - 1)
    return np.clip(np.floor((sums + half) / (1 << _PRECISION_BITS)), 0, 255)


# One entry per side length met (288 and the long sides of stored images): 20-70 KB,
# built in about a millisecond.
@functools.lru_cache(maxsize=1024)
def _lanczos_bands(in_size: int, out_size: int) -> tuple[_Band, ...]:
    weights = _lanczos_weights(in_size, out_size)
    bands = []
    for start in range(0, out_size, _BAND):
        outputs = slice(start, min(start + _BAND, out_size))
        used = np.flatnonzero(weights[outputs].any(axis=0))
        inputs = slice(int(used[0]), int(used[-1]) + 1)
        band_weights = weights[outputs, inputs].copy()
        band_weights.flags.writeable = False  # shared by every caller, every thread
        bands.append(_Band(outputs, inputs, band_weights))
    return tuple(bands)


@functools.lru_cache(maxsize=1024)
def lanczos_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's LANCZOS weights as a dense (out_size, in_size) float matrix summing to 1 per
    row: one product resizes an axis, without Pillow's rounding (for probe hashes, which
    need no bit-exactness)."""
    matrix = _lanczos_weights(in_size, out_size) / (1 << _PRECISION_BITS)
    matrix.flags.writeable = False
    return matrix


def _lanczos_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) fixed-point weights, as Pillow's precompute_coeffs and
    normalize_coeffs_8bpc compute them: the same IEEE operations in the same order
    (numpy's + - * / round exactly like C's; the running sum is a cumsum), and libm's
    sin through math.sin (numpy's own SIMD sin may differ in the last bit)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _LANCZOS_SUPPORT * filterscale
    center = (np.arange(out_size) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5), 0).astype(int)  # C: (int) cast
    stop = np.minimum(np.trunc(center + support + 0.5), in_size).astype(int)
    x = first[:, None] + np.arange(math.ceil(support) * 2 + 1)  # Pillow's ksize taps at most
    used = x < stop[:, None]
    taps = np.where(used, _lanczos((x - center[:, None] + 0.5) * (1.0 / filterscale)), 0.0)
    total = np.cumsum(taps, axis=1)[:, -1:]  # left to right, as C's loop (unused taps add 0)
    taps = np.divide(taps, total, out=taps, where=total != 0.0)
    scaled = taps * (1 << _PRECISION_BITS)
    fixed = np.where(taps < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5))
    weights = np.zeros((out_size, in_size))
    rows = np.broadcast_to(np.arange(out_size)[:, None], x.shape)
    weights[rows[used], x[used]] = fixed[used]
    return weights


def _lanczos(x: np.ndarray) -> np.ndarray:
    inside = (-_LANCZOS_SUPPORT <= x) & (x < _LANCZOS_SUPPORT)
    return np.where(inside, _sinc(x) * _sinc(x / 3), 0.0)


def _sinc(x: np.ndarray) -> np.ndarray:
    scaled = x * math.pi
    sines = np.fromiter(map(math.sin, scaled.ravel().tolist()), float, scaled.size)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 at x == 0, replaced by 1
        return np.where(x == 0.0, 1.0, sines.reshape(x.shape) / scaled)
