"""Drawing primitives shared by the scene renderers: work canvases, backgrounds, clutter, colour."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

RGB = tuple[int, int, int]
Size = tuple[int, int]  # (width, height), as Pillow has it

# Scenes are drawn at most this large and then resized, so a 1600 px landmark
# costs about what a 640 px one does.
WORK_LONG_SIDE = 512


def work_size(size: Size) -> Size:
    scale = min(1.0, WORK_LONG_SIDE / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def finish(canvas: Image.Image, size: Size) -> Image.Image:
    return canvas if canvas.size == size else canvas.resize(size, Image.Resampling.BILINEAR)


def hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def jitter(colour: RGB, rng: np.random.Generator, amount: float) -> RGB:
    shifted = np.asarray(colour, dtype=float) + rng.uniform(-amount, amount, 3)
    return tuple(int(c) for c in np.clip(shifted, 0, 255).round())


def random_colour(rng: np.random.Generator, saturation=(0.1, 0.6), value=(0.3, 0.95)) -> RGB:
    return hsv(rng.random(), rng.uniform(*saturation), rng.uniform(*value))


def scale_colour(colour: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in colour)


def background(rng: np.random.Generator, size: Size, start: RGB, end: RGB, angle: float,
               blotches: float, cells: int) -> Image.Image:
    """A colour ramp along `angle` (radians; 0 = left to right) with blotchy light/dark variation.

    Both are low-frequency, so they are computed on a tiny grid and upsampled.
    """
    w, h = size
    gw, gh = max(2, round(cells * w / max(size))), max(2, round(cells * h / max(size)))
    ramp = (np.cos(angle) * np.linspace(0, 1, gw)[None, :]
            + np.sin(angle) * np.linspace(0, 1, gh)[:, None])
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    start_, end_ = np.asarray(start, float), np.asarray(end, float)
    pixels = start_ + ramp[..., None] * (end_ - start_) + blotches * rng.uniform(-1, 1, (gh, gw, 1))
    return to_image(pixels).resize(size, Image.Resampling.BILINEAR)


def to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def add_grain(image: Image.Image, rng: np.random.Generator, amount: int) -> Image.Image:
    """Sensor-like noise, the same on all channels (done in Pillow: numpy float RGB is slow)."""
    w, h = image.size
    noise = rng.integers(128 - amount, 128 + amount + 1, (h, w), dtype=np.uint8)
    grain = Image.fromarray(noise, "L")
    return ImageChops.add(image, Image.merge("RGB", (grain, grain, grain)), offset=-128)


def scatter_clutter(image: Image.Image, rng: np.random.Generator, count: int, max_frac: float):
    """Small unrelated blobs and sticks, so backgrounds are not clean gradients."""
    draw = ImageDraw.Draw(image)
    w, h = image.size
    for _ in range(count):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.01, max_frac, 2) * min(w, h)
        colour = random_colour(rng, saturation=(0.0, 0.5), value=(0.15, 0.95))
        match rng.integers(3):
            case 0:
                draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
            case 1:
                draw.rectangle((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
            case _:
                dx, dy = rng.uniform(-3, 3, 2) * rx
                draw.line((cx, cy, cx + dx, cy + dy), fill=colour, width=max(1, int(ry / 3)))


def place(points: np.ndarray, center, scale: float, angle: float) -> list[tuple[float, float]]:
    """Rotate, scale and move unit-space points (x right, y down) onto the canvas."""
    c, s = np.cos(angle), np.sin(angle)
    x, y = points[:, 0], points[:, 1]
    px = center[0] + scale * (x * c - y * s)
    py = center[1] + scale * (x * s + y * c)
    return list(zip(px.tolist(), py.tolist()))


Box = tuple[int, int, int, int]  # x_min, y_min, x_max, y_max in final-image pixels


@dataclass(frozen=True)
class Scene:
    """A rendered image and the boxes of its main objects (ImageNet val needs them)."""

    image: Image.Image
    boxes: tuple[Box, ...]


def final_box(box: tuple[float, float, float, float], canvas: Size, size: Size) -> Box:
    """A work-canvas box in final-image pixels, clipped to the image."""
    sx, sy = size[0] / canvas[0], size[1] / canvas[1]
    x0, y0, x1, y1 = box
    return (
        int(np.clip(x0 * sx, 0, size[0] - 1)),
        int(np.clip(y0 * sy, 0, size[1] - 1)),
        int(np.clip(x1 * sx, 0, size[0] - 1)),
        int(np.clip(y1 * sy, 0, size[1] - 1)),
    )
