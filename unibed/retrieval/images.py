"""Images in and out of the rig: safe decoding, the model's view, thumbnails.

Untrusted bytes (query uploads, folder galleries) go through the build's own
per-image step, unibed.dataplane.images.preprocess: the same accepted formats, the pixel
limit checked from the header before decoding (decompression bombs), a JPEG's scans
counted from its markers before decoding (thousands of empty scans cost minutes), truncated
data refused, EXIF orientation applied, alpha flattened on white, and the same
stored-size reduction. So a query is seen exactly as a gallery image of the
build was, and a bad file becomes a BadImage with the build's reason.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from unibed.dataplane.images.preprocess import ProcessedImage, Rejected, preprocess
from unibed.schemas.recipe import ImageSpec

THUMB_SIDE = 160


class BadImage(ValueError):
    """An input that cannot be searched with; `reason` is the build's RejectReason value."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason.replace('_', ' ')}: {detail}")
        self.reason = reason
        self.detail = detail


def query_spec(spec: ImageSpec | None = None, max_pixels: int | None = None) -> ImageSpec:
    """The image rules for queries: the gallery build's (or the defaults), with an
    optional lower pixel limit (a web server should not decode 89-megapixel uploads)."""
    spec = spec or ImageSpec()
    if max_pixels is not None and max_pixels < spec.max_pixels:
        spec = spec.model_copy(update={"max_pixels": max_pixels})
    return spec


def decode_untrusted(data: bytes, spec: ImageSpec) -> Image.Image:
    """RGB image of untrusted bytes, or BadImage saying why not."""
    result = preprocess(data, spec)
    if isinstance(result, Rejected):
        raise BadImage(result.reason.value, result.detail)
    assert isinstance(result, ProcessedImage)
    return decode_stored(result.jpeg)


def decode_stored(jpeg: bytes) -> Image.Image:
    """A JPEG the build (or preprocess) wrote: trusted, RGB, already size-limited."""
    with Image.open(io.BytesIO(jpeg), formats=("JPEG",)) as image:
        return image.convert("RGB")


def model_view(image: Image.Image, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: shorter side resized to `size`, then the central square -
    the trainer's evaluation view (unibed/trainer/augment.py center_crop_uint8). Pillow's
    BILINEAR antialiases when reducing, as that view does."""
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    resized = image.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)


def thumbnail_jpeg(image: Image.Image, side: int = THUMB_SIDE) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((side, side), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=85)
    return out.getvalue()


def placeholder_png(text: str, side: int = THUMB_SIDE) -> bytes:
    """A grey tile carrying `text`, for an image that cannot be shown."""
    tile = Image.new("RGB", (side, side), (225, 225, 225))
    draw = ImageDraw.Draw(tile)
    words, lines, line = text.split(), [], ""
    for word in words:  # wrap to the tile's width, about 24 characters
        if len(line) + len(word) + 1 > 24 and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    for i, line in enumerate(lines[:10]):
        draw.text((6, 6 + 14 * i), line, fill=(90, 30, 30))
    out = io.BytesIO()
    tile.save(out, "PNG")
    return out.getvalue()
