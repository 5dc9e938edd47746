"""Figure outlines and fill textures: the vocabulary that class looks are built from."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from unibed.sample.drawing import RGB, Box, Size, place, to_image

# An outline is a list of unit-radius polygons; the flag says whether the
# polygon adds to the figure (True) or cuts a hole in it (False).
Outline = list[tuple[np.ndarray, bool]]


def _regular(n: int, radius: float = 1.0, phase: float = -np.pi / 2, dx: float = 0.0) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([dx + radius * np.cos(t), radius * np.sin(t)], axis=1)


def _points(*xy: float) -> np.ndarray:
    return np.asarray(xy, dtype=float).reshape(-1, 2)


def _star() -> np.ndarray:
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
    return _regular(10) * radii[:, None]


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y + 3], axis=1) / 17


OUTLINES: dict[str, Outline] = {
    "circle": [(_regular(48), True)],
    "square": [(_regular(4, 1.0, np.pi / 4), True)],
    "triangle": [(_regular(3, 1.1, -np.pi / 2), True)],
    "star": [(_star(), True)],
    "cross": [
        (_points(-0.3, -1, 0.3, -1, 0.3, -0.3, 1, -0.3, 1, 0.3, 0.3, 0.3,
                 0.3, 1, -0.3, 1, -0.3, 0.3, -1, 0.3, -1, -0.3, -0.3, -0.3), True),
    ],
    "hexagon": [(_regular(6), True)],
    "ring": [(_regular(48), True), (_regular(48, 0.55), False)],
    "crescent": [(_regular(48), True), (_regular(48, 0.85, dx=0.45), False)],
    "heart": [(_heart(), True)],
    "arrow": [(_points(-1, -0.3, 0.2, -0.3, 0.2, -0.75, 1, 0, 0.2, 0.75, 0.2, 0.3, -1, 0.3), True)],
    "diamond": [(_points(0, -1.1, 0.6, 0, 0, 1.1, -0.6, 0), True)],
    "bolt": [(_points(0.2, -1, -0.55, 0.15, -0.05, 0.15, -0.25, 1, 0.55, -0.2, 0.05, -0.2), True)],
}
SHAPES = tuple(OUTLINES)

# (name, primary, secondary): strong colours with a contrasting partner for patterns
PALETTES: tuple[tuple[str, RGB, RGB], ...] = (
    ("scarlet", (200, 30, 40), (250, 220, 200)),
    ("orange", (240, 130, 20), (90, 40, 10)),
    ("yellow", (245, 215, 40), (30, 30, 30)),
    ("lime", (140, 210, 40), (20, 80, 20)),
    ("green", (30, 140, 60), (230, 240, 220)),
    ("teal", (20, 150, 150), (10, 40, 80)),
    ("sky-blue", (80, 170, 235), (250, 250, 250)),
    ("navy", (25, 40, 120), (240, 200, 60)),
    ("purple", (120, 50, 160), (240, 170, 220)),
    ("magenta", (220, 40, 150), (255, 240, 120)),
    ("brown", (120, 75, 40), (235, 215, 170)),
    ("charcoal", (50, 50, 55), (230, 60, 50)),
)

TEXTURES = ("solid", "stripes", "checker", "dots", "waves", "rings")


def figure_mask(size: Size, shape: str, center, radius: float, angle: float) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for points, adds in OUTLINES[shape]:
        draw.polygon(place(points, center, radius, angle), fill=255 if adds else 0)
    return mask


def texture(kind: str, box: Box, primary: RGB, secondary: RGB, center, period: float,
            angle: float) -> Image.Image:
    """The fill pattern over `box` of the canvas, in the figure's own frame (it turns with it)."""
    x = np.arange(box[0], box[2], dtype=np.float32)[None, :] - center[0]
    y = np.arange(box[1], box[3], dtype=np.float32)[:, None] - center[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = x * c + y * s, -x * s + y * c
    match kind:
        case "solid":  # a shaded body rather than a flat fill
            weight = np.clip(0.25 * np.hypot(u + period, v + period) / period, 0, 0.8)
        case "stripes":
            weight = np.sin(2 * np.pi * u / period) > 0
        case "checker":
            weight = (np.floor(u / period) + np.floor(v / period)) % 2
        case "dots":
            weight = np.hypot(u % period - period / 2, v % period - period / 2) < 0.3 * period
        case "waves":
            wobble = 0.3 * period * np.sin(np.pi * v / period)
            weight = np.sin(2 * np.pi * (u + wobble) / period) > 0
        case "rings":
            weight = np.sin(2 * np.pi * np.hypot(u, v) / period) > 0
        case _:
            raise ValueError(f"unknown texture {kind!r}")
    weight = np.asarray(weight, dtype=np.float32)[..., None]
    pixels = primary + weight * (np.asarray(secondary, np.float32) - primary)
    return to_image(pixels)


def paint(image: Image.Image, mask: Image.Image, fill: Image.Image, box: Box):
    """Paint `fill` (covering `box`) into `image` where `mask` is set."""
    image.paste(fill, box[:2], mask.crop(box))


def drop_shadow(image: Image.Image, mask: Image.Image, box: Box, blur: float, offset) -> None:
    """Darken a blurred, shifted copy of the figure's footprint beneath it."""
    margin = int(3 * blur) + 2
    w, h = image.size
    area = (max(0, box[0] - margin), max(0, box[1] - margin),
            min(w, box[2] + margin), min(h, box[3] + margin))
    footprint = mask.crop(area).filter(ImageFilter.GaussianBlur(blur)).point(lambda v: v // 2)
    image.paste((20, 20, 20), (area[0] + int(offset[0]), area[1] + int(offset[1])), footprint)
