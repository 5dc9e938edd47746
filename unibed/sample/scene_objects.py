"""ImageNet-like scenes: one class = a figure shape, a colour palette and a fill texture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unibed.sample.drawing import (
    RGB,
    Scene,
    Size,
    add_grain,
    background,
    final_box,
    finish,
    jitter,
    random_colour,
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

# photo sizes as ImageNet has them: mostly 500 px on the long side
SIZES: tuple[Size, ...] = ((500, 375), (375, 500), (500, 333), (500, 334), (333, 500), (500, 400),
                           (500, 500), (400, 500), (640, 480), (500, 281))


@dataclass(frozen=True)
class ObjectStyle:
    shape: str
    texture: str
    colour_name: str
    primary: RGB
    secondary: RGB
    period: float  # pattern period as a fraction of the figure radius

    @property
    def description(self) -> str:
        """Synset-mapping style text: 'scarlet star, striped star'."""
        pattern = {"solid": "shaded", "stripes": "striped", "checker": "checkered",
                   "dots": "dotted", "waves": "wavy", "rings": "ringed"}[self.texture]
        return f"{self.colour_name} {self.shape}, {pattern} {self.shape}"


def object_styles(rng: np.random.Generator, count: int) -> list[ObjectStyle]:
    """Distinct looks: no two classes share a shape or a palette while there are enough of them."""
    shapes, palettes, textures = (rng.permutation(len(x)) for x in (SHAPES, PALETTES, TEXTURES))
    styles = []
    for i in range(count):
        name, primary, secondary = PALETTES[palettes[(i + i // len(PALETTES)) % len(PALETTES)]]
        styles.append(ObjectStyle(
            shape=SHAPES[shapes[i % len(SHAPES)]],
            texture=TEXTURES[textures[i % len(TEXTURES)]],
            colour_name=name, primary=primary, secondary=secondary,
            period=float(rng.uniform(0.3, 0.5)),
        ))
    return styles


def object_size(rng: np.random.Generator) -> Size:
    return SIZES[rng.integers(len(SIZES))]


def render_object(style: ObjectStyle, rng: np.random.Generator, size: Size) -> Scene:
    canvas = work_size(size)
    w, h = canvas
    image = background(rng, canvas, random_colour(rng), random_colour(rng),
                       angle=rng.uniform(0, 2 * np.pi), blotches=rng.uniform(10, 40),
                       cells=int(rng.integers(3, 8)))
    scatter_clutter(image, rng, int(rng.integers(4, 16)), max_frac=0.08)

    boxes = []
    figures = 1 + int(rng.random() < 0.3)  # sometimes a second, smaller instance
    for k in range(figures):
        radius = rng.uniform(0.18, 0.4) * min(w, h) * (0.6 if k else 1.0)
        center = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        angle = rng.uniform(0, 2 * np.pi)
        mask = figure_mask(canvas, style.shape, center, radius, angle)
        box = mask.getbbox()
        drop_shadow(image, mask, box, radius * 0.08, rng.uniform(0.03, 0.1, 2) * radius)
        fill = texture(style.texture, box, jitter(style.primary, rng, 25),
                       jitter(style.secondary, rng, 25), center, style.period * radius, angle)
        paint(image, mask, fill, box)
        boxes.append(final_box(box, canvas, size))
    return Scene(finish(add_grain(image, rng, int(rng.integers(2, 9))), size), tuple(boxes))
