"""Decode, normalise and hash one image: the per-image step of the dataset build.

`preprocess(data, spec)` turns a published image's bytes into the image we store plus
its hashes, or into a `Rejected` with the reason; bad input never raises. A Beam DoFn
calls it once per image.

The stored image is an RGB JPEG (alpha flattened onto white), upright (EXIF orientation
applied), with no metadata, sized by `spec.resize` (never upscaled):
- "pow2" (the default): reduced by the smallest power of two that brings the shorter
  side below 2 * `spec.shorter_side`; it then stays at least `spec.shorter_side`.
- "exact": resampled to a shorter side of exactly `spec.shorter_side`.
A JPEG that needs no change (RGB, upright, not reduced) is stored as its own bytes with
the metadata segments removed: no generation loss, no encoding. Anything else is
decoded, normalised and encoded as a baseline JPEG at `spec.jpeg_quality`.

Decoding work is bounded before decoding: pixels from the header (`spec.max_pixels`, and
Pillow's bomb limit); a JPEG's scans (JPEG_MAX_SCANS: each scan is a pass over the whole
image), markers and skipped bytes, counted before Pillow parses its header. Other
formats' decoding is linear in pixels and bytes: only the first frame of a GIF, APNG, WebP
or TIFF is decoded, and Pillow caps PNG text chunks.

Speed: JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg scales in the DCT domain), so
a large photo is never decoded at full size, and under "pow2" most are not resampled at
all; the pHash (unibed.dataplane.images.phash) is a faster exact equivalent of imagehash's.
benchmarks/bench_preprocess.py measures it.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass, field

import numpy as np
from PIL import ExifTags, Image

from unibed.dataplane.images.jpeg_markers import (
    JPEG_START,
    count_markers,
    jpeg_without_metadata,
)
from unibed.dataplane.images.robust_hashes import image_hashes
from unibed.schemas.recipe import ImageSpec
from unibed.schemas.source_record import RejectReason

# Raster formats that photo datasets hold. Pillow opens more, but some of those run
# external programs on the input (EPS runs Ghostscript) and none are photos we want.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG includes MPO
# What Pillow raises on bad input. Anything else is a bug here and must propagate.
_BAD_INPUT = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
# Pillow's guard against decompression bombs (the warning only when warnings are errors).
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)
_JPEG_MAX_SIDE = 65_500  # libjpeg cannot encode a larger side
# Decoding a JPEG costs a pass over every block per scan, data or not: 5,000 empty scans
# in 75 KB take seconds, in 10 MB up to an hour. libjpeg's progression writes 10 scans for a
# colour photo (6 for grey, 18 for CMYK); 100 is libtiff's and GDAL's default cap for this
# very attack (LIBTIFF_JPEG_MAX_ALLOWED_SCAN_NUMBER, GDAL_JPEG_MAX_ALLOWED_SCAN_NUMBER).
JPEG_MAX_SCANS = 100
# Each marker costs a turn of a Python loop in Pillow's header parser (2.5 million 4-byte
# COM segments in 10 MB: 4.4 s). A photo has a few dozen; a progressive one at the scan
# limit about 200 (a Huffman table segment per scan); extended XMP and ICC profiles add
# one per 64 KB. 10,000 leaves room for all of them.
JPEG_MAX_MARKERS = 10_000
# Pillow's header parser also reads byte by byte what libjpeg skips before the first scan:
# fill 0xFFs and garbage (10 MB of 0xFF: 6 s). A photo has none or a few bytes (a wrong
# APPn length leaves its tail); 1 MiB costs Pillow about 0.6 s.
JPEG_MAX_HEADER_SKIPPED = 1 << 20

# The resize of resize="exact" is its largest cost after decoding (Pillow's resampler is
# not vectorised), which is why "pow2" avoids it. BICUBIC takes ~75% of LANCZOS's time
# (measured: 2.8 vs 3.9 ms from 500x375) and stays within ~52 dB PSNR of it;
# HAMMING/BILINEAR take ~45% but blur or alias more.
# reducing_gap only matters for large non-JPEG inputs: a cheap box reduction first.
RESAMPLE = Image.Resampling.BICUBIC
REDUCING_GAP = 3.0
_MAX_DCT_SCALE = 8  # libjpeg decodes at 1/1, 1/2, 1/4 or 1/8 scale

# EXIF orientation -> the transpose that turns the stored pixels upright (the table of
# ImageOps.exif_transpose, whose EXIF/XMP rewriting we do not need: we store no metadata).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_TURNS_SIDEWAYS = {5, 6, 7, 8}
# Grey with more than 8 bits: Pillow's convert() clips these at 255 instead of scaling.
_WIDE_GREY_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    jpeg: bytes = field(repr=False)  # the stored image
    width: int  # of the stored image
    height: int
    # unsigned 64-bit, imagehash.phash of the stored pixels: before JPEG encoding, or the
    # decoded source when the source's own bytes are stored
    phash: int
    # (kind, hash) of the stored pixels as edits would show them (images.robust_hashes)
    probes: tuple[tuple[str, int], ...]
    sha256: str  # hex digest of the original bytes: identical files, identical digests
    source_width: int  # the source as displayed (after EXIF orientation)
    source_height: int
    source_format: str  # Pillow's name: "JPEG", "PNG", "MPO", ...
    source_mode: str  # Pillow's mode: "RGB", "L", "CMYK", "P", ...


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    detail: str


def preprocess(data: bytes, spec: ImageSpec) -> ProcessedImage | Rejected:
    """The stored image and hashes of one input image, or why it cannot be used."""
    if not data:
        return Rejected(RejectReason.EMPTY_FILE, "0 bytes")
    too_costly = _jpeg_too_costly(data)  # before Pillow's header parser walks the markers
    if too_costly is not None:
        return too_costly
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except _BOMB as e:
        return Rejected(RejectReason.TOO_MANY_PIXELS, f"Pillow's decompression-bomb limit: {e}")
    except Image.UnidentifiedImageError:  # its message names the stream object: leave it out
        return Rejected(RejectReason.NOT_AN_IMAGE,
                        f"not a {'/'.join(ACCEPTED_FORMATS)} file; starts with {data[:16]!r}")
    except _BAD_INPUT as e:
        return Rejected(RejectReason.NOT_AN_IMAGE, f"{_describe(e)}; starts with {data[:16]!r}")
    with image:
        return _process(image, data, spec)


def _jpeg_too_costly(data: bytes) -> Rejected | None:
    """Why the JPEG `data` must not be opened, judged from its markers; None if not a JPEG."""
    if not data.startswith(JPEG_START):
        return None
    counts = count_markers(data, JPEG_MAX_SCANS, JPEG_MAX_MARKERS)
    name = f"JPEG of {len(data):,} bytes"
    if counts.scans > JPEG_MAX_SCANS:
        return Rejected(RejectReason.DECODE_TOO_COSTLY,
                        f"{name}: more than {JPEG_MAX_SCANS} scans (a progressive photo has 10); "
                        "each scan is a decoding pass over the whole image")
    if counts.markers > JPEG_MAX_MARKERS:
        return Rejected(RejectReason.DECODE_TOO_COSTLY,
                        f"{name}: more than {JPEG_MAX_MARKERS:,} markers (a photo has a few dozen)")
    if counts.header_skipped > JPEG_MAX_HEADER_SKIPPED:
        return Rejected(RejectReason.DECODE_TOO_COSTLY,
                        f"{name}: {counts.header_skipped:,} fill or garbage bytes between the "
                        f"markers before its first scan (more than {JPEG_MAX_HEADER_SKIPPED:,})")
    return None


def _process(image: Image.Image, data: bytes, spec: ImageSpec) -> ProcessedImage | Rejected:
    width, height = image.size  # from the header: nothing is decoded yet
    name = f"{image.format} {width}x{height}"
    factor = _reduction_factor(min(width, height), spec.shorter_side)
    stored_size = _stored_size(width, height, factor, spec)
    refused = _refused_before_decoding(image, stored_size, spec)
    if refused is not None:
        return refused
    source_mode = image.mode
    try:
        dct_scale = _decode(image, factor)
    except _BAD_INPUT as e:
        return Rejected(RejectReason.TRUNCATED, f"{name}: decoding failed: {_describe(e)}")
    orientation = _exif_orientation(image)

    resized = stored_size != (width, height)
    jpeg = _storable_as_is(image, data, resized, orientation)
    if jpeg is not None:
        stored = image  # the decoded source: what a decoder of `jpeg` gives
    else:
        try:
            rgb = _to_rgb(image)
        except ValueError as e:  # a mode Pillow cannot turn into RGB
            return Rejected(RejectReason.NOT_AN_IMAGE, f"{name} mode {source_mode}: {e}")
        stored = _upright(_resize(rgb, stored_size, factor // dct_scale, spec.resize), orientation)
        jpeg = encode_jpeg(stored, spec.jpeg_quality)

    if orientation in _TURNS_SIDEWAYS:
        width, height = height, width
    hashes = image_hashes(stored)
    return ProcessedImage(
        jpeg=jpeg,
        width=stored.width,
        height=stored.height,
        phash=hashes.identity,
        probes=hashes.probes,
        sha256=hashlib.sha256(data).hexdigest(),
        source_width=width,
        source_height=height,
        source_format=image.format,
        source_mode=source_mode,
    )


def _refused_before_decoding(image: Image.Image, stored_size: tuple[int, int],
                             spec: ImageSpec) -> Rejected | None:
    """Why `image` must not be decoded, judged from its header alone."""
    width, height = image.size
    name = f"{image.format} {width}x{height}"
    if width * height > spec.max_pixels:
        return Rejected(RejectReason.TOO_MANY_PIXELS,
                        f"{name}: {width * height:,} pixels > max_pixels {spec.max_pixels:,}")
    if min(width, height) < spec.min_side:
        return Rejected(RejectReason.TOO_SMALL, f"{name}: a side is below min_side {spec.min_side}")
    if max(stored_size) > _JPEG_MAX_SIDE:
        return Rejected(RejectReason.TOO_MANY_PIXELS,
                        f"{name}: stored {stored_size} exceeds JPEG's {_JPEG_MAX_SIDE}-px side")
    return None


def _reduction_factor(short: int, shorter_side: int) -> int:
    """The smallest power of two f that brings the shorter side, ceil(short / f), below
    2 * shorter_side. It is then still >= shorter_side (unless the source is smaller):
    f / 2 left it >= 2 * shorter_side."""
    factor = 1
    while -(-short // factor) >= 2 * shorter_side:
        factor *= 2
    return factor


def _stored_size(width: int, height: int, factor: int, spec: ImageSpec) -> tuple[int, int]:
    """Before EXIF orientation."""
    if spec.resize == "pow2":  # rounded up, as libjpeg's scaled decoding and Image.reduce do
        return -(-width // factor), -(-height // factor)
    return _exact_size(width, height, spec.shorter_side)


def _exact_size(width: int, height: int, shorter_side: int) -> tuple[int, int]:
    """The shorter side scaled down to `shorter_side`, the aspect ratio kept; never larger."""
    short = min(width, height)
    if short <= shorter_side:
        return width, height
    scale = shorter_side / short
    if width == short:
        return shorter_side, round(height * scale)
    return round(width * scale), shorter_side


def _decode(image: Image.Image, factor: int) -> int:
    """Load `image`, a JPEG scaled down by as much of `factor` as libjpeg can do in the DCT
    domain (nearly free, and well anti-aliased); returns that scale, 1 for other formats."""
    scale = min(factor, _MAX_DCT_SCALE)
    # Pillow decodes at the largest scale s with side // s >= the requested side, which is
    # `scale` for a request of side // scale (the sides are at least scale**2 here).
    if scale > 1 and image.draft("RGB", (image.width // scale, image.height // scale)) is None:
        scale = 1  # not a JPEG: decoded at full size
    image.load()  # raises on truncated data (ImageFile.LOAD_TRUNCATED_IMAGES stays False)
    return scale


def _storable_as_is(image: Image.Image, data: bytes, resized: bool,
                    orientation: int) -> bytes | None:
    """`data` minus its metadata, if that is the stored image: a YCbCr/RGB JPEG (an MPO's
    first image is one) needing neither resizing nor turning, with a structure we fully
    understand. Otherwise None."""
    if (image.format not in ("JPEG", "MPO") or image.mode != "RGB"
            or resized or orientation in _UPRIGHT):
        return None
    return jpeg_without_metadata(data)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _WIDE_GREY_MODES:
        image = _grey_to_8_bits(image)
    if image.has_transparency_data:  # alpha band, or a transparent palette entry / colour
        return _flatten_on_white(image)
    return image if image.mode == "RGB" else image.convert("RGB")  # CMYK, L, P, 1, YCbCr...


def _grey_to_8_bits(image: Image.Image) -> Image.Image:
    """Keep the top 8 of 16 bits (Pillow's convert would clip, turning most pixels white)."""
    values = np.clip(np.asarray(image), 0, 65535) >> 8
    return Image.fromarray(values.astype(np.uint8))


def _flatten_on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def _resize(image: Image.Image, size: tuple[int, int], factor: int, method: str) -> Image.Image:
    """`image` at `size`: under "pow2" reduced by `factor`, what the DCT scaling left."""
    if image.size == size:
        return image
    if method == "pow2":  # not a JPEG, or a JPEG more than 8 times too large: box filter
        return image.reduce(factor)
    return image.resize(size, RESAMPLE, reducing_gap=REDUCING_GAP)


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    # after the resize: fewer pixels to move
    return image.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else image


def _exif_orientation(image: Image.Image) -> int:
    try:
        return image.getexif().get(ExifTags.Base.Orientation, 1)
    except _BAD_INPUT:
        return 1  # unreadable EXIF: keep the pixels as stored rather than lose the image


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    # No exif= or icc_profile=, so the file carries no metadata: the orientation is
    # already applied, and identical pixels give identical bytes whatever the source held.
    # Baseline: neither progressive nor optimize; 4:2:0 chroma, libjpeg's default, pinned.
    image.save(out, "JPEG", quality=quality, subsampling="4:2:0")
    return out.getvalue()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
