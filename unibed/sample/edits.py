"""The edits that web-scraped datasets carry between copies of one picture.

Each edit takes an RGB image and returns the edited copy's JPEG bytes. The sample plants
one copy per edit (unibed.sample.duplicates) and benchmarks/bench_dedup_edits.py measures,
on real photographs, which of them the near-duplicate search finds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFont, ImageOps

from unibed.sample.encoding import encode_jpeg

CAPTION = "Best price - free shipping"


def cropped(image: Image.Image, per_side: float) -> Image.Image:
    dx, dy = round(image.width * per_side), round(image.height * per_side)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def with_bars(image: Image.Image, vertical: float, horizontal: float, colour) -> Image.Image:
    """`image` on a larger canvas of `colour`: bars of the given share of its side each."""
    dy, dx = round(image.height * vertical), round(image.width * horizontal)
    canvas = Image.new("RGB", (image.width + 2 * dx, image.height + 2 * dy), colour)
    canvas.paste(image, (dx, dy))
    return canvas


def with_caption(image: Image.Image, share: float = 0.12) -> Image.Image:
    """A white strip with black text over the bottom `share` of the image."""
    out = image.copy()
    top = round(out.height * (1 - share))
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, top, out.width, out.height), fill=(255, 255, 255))
    font = ImageFont.load_default(size=max(8, round(out.height * share * 0.6)))
    draw.text((round(out.width * 0.04), top + round(out.height * share * 0.15)), CAPTION,
              fill=(0, 0, 0), font=font)
    return out


def rotated(image: Image.Image, degrees: float, fit: bool) -> Image.Image:
    """Turned by `degrees` on the same canvas: black corners, or (`fit`) cropped to the
    largest centred rectangle of the same aspect ratio that holds no corner."""
    out = image.rotate(degrees, resample=Image.Resampling.BICUBIC)
    if not fit:
        return out
    angle = math.radians(abs(degrees))
    w, h = image.size
    # the centred w*k x h*k rectangle stays inside the turned image when k is at most this
    k = min(w / (w * math.cos(angle) + h * math.sin(angle)),
            h / (w * math.sin(angle) + h * math.cos(angle)))
    return cropped(out, (1 - k) / 2)


def downscaled(image: Image.Image, factor: float) -> Image.Image:
    size = max(1, round(image.width * factor)), max(1, round(image.height * factor))
    return image.resize(size, Image.Resampling.BILINEAR)


EDITS: dict[str, Callable[[Image.Image], bytes]] = {
    "mirror": lambda im: encode_jpeg(ImageOps.mirror(im)),
    "crop_4pct": lambda im: encode_jpeg(cropped(im, 0.04)),
    "crop_8pct": lambda im: encode_jpeg(cropped(im, 0.08)),
    "crop_12pct": lambda im: encode_jpeg(cropped(im, 0.12)),
    "letterbox_black": lambda im: encode_jpeg(with_bars(im, 0.12, 0.0, (0, 0, 0))),
    "pillarbox_grey": lambda im: encode_jpeg(with_bars(im, 0.0, 0.10, (128, 128, 128))),
    "caption_strip": lambda im: encode_jpeg(with_caption(im)),
    "greyscale": lambda im: encode_jpeg(ImageOps.grayscale(im)),
    "rotate_3deg": lambda im: encode_jpeg(rotated(im, 3, fit=False)),
    "downscale_q30": lambda im: encode_jpeg(downscaled(im, 0.4), quality=30),
}
