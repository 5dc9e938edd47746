"""Products-10K-like scenes: one class = one package design (shape, colours, label, logo)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from unibed.sample.drawing import (
    RGB,
    Scene,
    Size,
    add_grain,
    background,
    final_box,
    finish,
    hsv,
    jitter,
    random_colour,
    scale_colour,
    scatter_clutter,
    work_size,
)
from unibed.sample.figures import (
    PALETTES,
    SHAPES,
    TEXTURES,
    drop_shadow,
    figure_mask,
    paint,
    texture,
)

ASPECTS = (0.42, 0.55, 0.7, 0.85, 1.0, 1.3, 1.6)  # package width / height: bottles to flat boxes


@dataclass(frozen=True)
class PackageStyle:
    aspect: float
    corner: float  # corner radius, fraction of the width
    cap: bool  # a bottle-like cap on top
    body: RGB
    accent: RGB  # the label band
    ink: RGB  # logo and text on the band
    pattern: str  # texture of the body outside the band
    logo: str
    band_top: float  # fraction of the body height
    band_height: float
    text_lines: tuple[float, ...]  # widths of the "printed text" bars, fractions of the width


def package_styles(rng: np.random.Generator, count: int) -> list[PackageStyle]:
    """Distinct designs: body colour, accent colour, logo and proportions all change per class."""
    bodies, accents, logos, patterns, aspects = (
        rng.permutation(n) for n in (len(PALETTES), len(PALETTES), len(SHAPES), len(TEXTURES),
                                     len(ASPECTS)))
    styles = []
    for i in range(count):
        _, body, ink = PALETTES[bodies[i % len(PALETTES)]]
        shifted = i + i // len(PALETTES)  # new body/accent pairs once the bodies repeat
        accent = PALETTES[accents[shifted % len(PALETTES)]][1]
        if accent == body:  # the two permutations may pair a colour with itself
            accent = PALETTES[accents[(shifted + 1) % len(PALETTES)]][1]
        aspect = ASPECTS[aspects[i % len(ASPECTS)]]
        styles.append(PackageStyle(
            aspect=aspect,
            corner=float(rng.uniform(0.02, 0.3)),
            cap=bool(aspect < 0.75 and rng.random() < 0.7),
            body=body, accent=accent, ink=ink,
            pattern=TEXTURES[patterns[i % len(TEXTURES)]],
            logo=SHAPES[logos[i % len(SHAPES)]],
            band_top=float(rng.uniform(0.15, 0.55)),
            band_height=float(rng.uniform(0.2, 0.35)),
            text_lines=tuple(float(x) for x in rng.uniform(0.25, 0.8, int(rng.integers(1, 4)))),
        ))
    return styles


def product_size(rng: np.random.Generator) -> Size:
    side = int(rng.integers(300, 801))
    other = int(np.clip(side * rng.uniform(0.75, 1.34), 300, 800))
    return (side, other) if rng.random() < 0.5 else (other, side)


def _package(style: PackageStyle, rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """The package, upright, on a transparent layer."""
    cap = int(0.12 * height) if style.cap else 0
    layer = Image.new("RGBA", (width, height + cap), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if cap:
        draw.rectangle((0.32 * width, 0, 0.68 * width, cap + 2), fill=jitter(style.accent, rng, 15))
    body_box = (0, cap, width - 1, height + cap - 1)
    body = jitter(style.body, rng, 20)
    mask = Image.new("L", layer.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle(body_box, radius=style.corner * width, fill=255)
    box = mask.getbbox()
    fill = texture(style.pattern, box, body, scale_colour(body, 0.8), (width / 2, cap),
                   0.15 * width, 0.3)
    paint(layer, mask, fill.convert("RGBA"), box)

    band_y0 = cap + style.band_top * height
    band_y1 = band_y0 + style.band_height * height
    draw.rectangle((0, band_y0, width - 1, band_y1), fill=jitter(style.accent, rng, 15))
    ink = jitter(style.ink, rng, 15)
    logo_r = 0.38 * (band_y1 - band_y0)
    logo_c = (0.08 * width + logo_r, (band_y0 + band_y1) / 2)
    logo = figure_mask(layer.size, style.logo, logo_c, logo_r, 0.0)
    layer.paste(ink + (255,), (0, 0), logo)
    text_x = logo_c[0] + 1.4 * logo_r
    line_h = (band_y1 - band_y0) / (2 * len(style.text_lines) + 1)
    for k, line in enumerate(style.text_lines):
        y = band_y0 + (2 * k + 1) * line_h
        draw.rectangle((text_x, y, text_x + line * (width - text_x), y + line_h), fill=ink)
    return layer


def render_product(style: PackageStyle, rng: np.random.Generator, size: Size) -> Scene:
    canvas = work_size(size)
    w, h = canvas
    if rng.random() < 0.7:  # studio shot on a light backdrop
        light = hsv(rng.random(), rng.uniform(0, 0.12), rng.uniform(0.8, 0.98))
        image = background(rng, canvas, light, scale_colour(light, rng.uniform(0.75, 0.95)),
                           angle=rng.uniform(0, 2 * np.pi), blotches=rng.uniform(3, 12), cells=3)
    else:  # shop shelf: busier and darker
        image = background(rng, canvas, random_colour(rng), random_colour(rng),
                           angle=rng.uniform(0, 2 * np.pi), blotches=rng.uniform(10, 30),
                           cells=int(rng.integers(3, 7)))
        scatter_clutter(image, rng, int(rng.integers(3, 10)), max_frac=0.15)

    boxes = []
    copies = 1 + int(rng.random() < 0.25)  # sometimes a multipack: a smaller one behind
    for k in reversed(range(copies)):
        height = rng.uniform(0.45, 0.8) * h * (0.7 if k else 1.0)
        width = min(height * style.aspect, 0.8 * w)
        layer = _package(style, rng, max(8, int(width)), max(8, int(width / style.aspect)))
        layer = layer.rotate(rng.uniform(-20, 20), Image.Resampling.BILINEAR, expand=True)
        x = int(rng.uniform(0.25, 0.75) * w - layer.width / 2)
        y = int(rng.uniform(0.3, 0.7) * h - layer.height / 2)
        footprint = Image.new("L", canvas, 0)
        footprint.paste(layer.getchannel("A"), (x, y))
        box = footprint.getbbox()
        if box is None:  # pushed entirely off the canvas; the other copy carries the scene
            continue
        drop_shadow(image, footprint, box, 0.03 * h, rng.uniform(0.01, 0.04, 2) * h)
        image.paste(layer, (x, y), layer)
        boxes.append(final_box(box, canvas, size))
    return Scene(finish(add_grain(image, rng, int(rng.integers(2, 7))), size), tuple(boxes))
