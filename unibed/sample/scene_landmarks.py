"""GLDv2-like scenes: one landmark = one building (massing, roof, towers, windows, colours)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

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
    place,
    scale_colour,
    work_size,
)

ROOFS = ("flat", "gable", "dome", "stepped", "spire")
# what a building with that roof is called in its Wikimedia category
KINDS = {
    "flat": ("Palace", "Museum", "Library", "Opera_House"),
    "gable": ("Town_Hall", "Railway_Station", "Abbey", "Temple"),
    "dome": ("Mosque", "Basilica", "Capitol", "Observatory"),
    "stepped": ("Fort", "Citadel", "Castle"),
    "spire": ("Church", "Cathedral", "Chapel"),
}
TOWER_COUNTS = (0, 1, 2)
TOWER_TOPS = ("spire", "dome", "pyramid", "battlement")
WALLS: tuple[RGB, ...] = ((212, 182, 132), (236, 232, 222), (158, 72, 52), (128, 128, 122),
                          (82, 80, 86), (200, 150, 64), (222, 172, 160), (176, 196, 210))
ROOF_COLOURS: tuple[RGB, ...] = ((70, 75, 85), (84, 150, 130), (180, 82, 52), (212, 172, 62),
                                 (52, 82, 150), (36, 36, 42))
SKIES: tuple[tuple[RGB, RGB], ...] = (  # (zenith, horizon)
    ((60, 120, 200), (170, 210, 240)),  # clear
    ((150, 175, 200), (222, 226, 230)),  # hazy
    ((70, 60, 130), (250, 160, 90)),  # sunset
    ((118, 124, 130), (200, 200, 205)),  # overcast
    ((20, 30, 70), (92, 90, 140)),  # dusk
)
GROUNDS: tuple[RGB, ...] = ((70, 110, 50), (122, 116, 110), (190, 170, 120), (50, 80, 110))

Part = tuple[np.ndarray, str]  # polygon in building units (height 1, y down) and colour role


@dataclass(frozen=True)
class BuildingStyle:
    roof_kind: str
    wall: RGB
    roof: RGB
    parts: tuple[Part, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return KINDS[self.roof_kind]

    def colour(self, role: str) -> RGB:
        return {"wall": self.wall, "tower": scale_colour(self.wall, 0.85), "roof": self.roof,
                "opening": scale_colour(self.wall, 0.3)}[role]


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.asarray([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=float)


def _arch(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """A round-headed opening, bottom at y0, y upwards."""
    r = (x1 - x0) / 2
    t = np.linspace(0, np.pi, 9)
    top = np.stack([x0 + r + r * np.cos(t), y1 - r + r * np.sin(t)], axis=1)
    return np.concatenate([[(x0, y0), (x1, y0)], top])


def _cap(kind: str, x0: float, x1: float, y: float) -> list[Part]:
    """What crowns a block spanning x0..x1 at height y (y upwards)."""
    w, mid = x1 - x0, (x0 + x1) / 2
    match kind:
        case "gable":
            return [(np.asarray([(x0 - 0.03, y), (x1 + 0.03, y), (mid, y + 0.35 * w)]), "roof")]
        case "spire" | "pyramid":
            height = 1.6 * w if kind == "spire" else 0.6 * w
            return [(np.asarray([(x0, y), (x1, y), (mid, y + height)]), "roof")]
        case "dome":
            t = np.linspace(0, np.pi, 17)
            drum_top = y + 0.08 * w
            dome = np.stack([mid + 0.45 * w * np.cos(t), drum_top + 0.5 * w * np.sin(t)], axis=1)
            return [(_rect(mid - 0.45 * w, y, mid + 0.45 * w, drum_top), "wall"), (dome, "roof")]
        case "battlement":
            return [(_rect(x0 + k * w / 5, y, x0 + (k + 1) * w / 5, y + 0.15 * w), "tower")
                    for k in range(0, 5, 2)]
        case _:  # flat: a cornice
            return [(_rect(x0 - 0.02, y, x1 + 0.02, y + 0.04), "roof")]


def _massing(rng: np.random.Generator, roof: str, towers: int, arched: bool) -> list[Part]:
    """The building's polygons, y upwards from the ground, before normalising."""
    bw, bh = rng.uniform(0.7, 1.3), rng.uniform(0.3, 0.55)
    parts: list[Part] = [(_rect(-bw / 2, 0, bw / 2, bh), "wall")]
    match roof:
        case "stepped":
            for k in range(1, 3):
                half = bw / 2 * (1 - 0.3 * k)
                parts.append((_rect(-half, bh + 0.1 * (k - 1), half, bh + 0.1 * k), "wall"))
            parts += _cap("flat", -bw / 2 * 0.4, bw / 2 * 0.4, bh + 0.2)
        case "spire":
            parts.append((_rect(-0.08, bh, 0.08, bh + 0.25), "tower"))
            parts += _cap("spire", -0.08, 0.08, bh + 0.25)
        case "dome":
            parts += _cap("dome", -bw * 0.3, bw * 0.3, bh)
        case _:
            parts += _cap(roof, -bw / 2, bw / 2, bh)

    tower_w, tower_h = rng.uniform(0.12, 0.22), bh * rng.uniform(1.5, 2.4)
    top = TOWER_TOPS[rng.integers(len(TOWER_TOPS))]
    sides = {0: [], 1: [rng.choice([-1, 1])], 2: [-1, 1]}[towers]
    for side in sides:
        x = side * (bw / 2 - tower_w / 2 + 0.05)
        parts.append((_rect(x - tower_w / 2, 0, x + tower_w / 2, tower_h), "tower"))
        parts += _cap(top, x - tower_w / 2, x + tower_w / 2, tower_h)

    rows, cols = int(rng.integers(1, 4)), int(rng.integers(3, 8))
    cell_w, cell_h = bw / cols, 0.75 * bh / (rows + 1)
    opening = _arch if arched else _rect
    for r, c in itertools.product(range(rows), range(cols)):
        x0, y0 = -bw / 2 + (c + 0.3) * cell_w, (r + 1.2) * cell_h
        parts.append((opening(x0, y0, x0 + 0.4 * cell_w, y0 + 0.6 * cell_h), "opening"))
    parts.append((_arch(-0.07, 0, 0.07, min(0.25, 0.9 * cell_h)), "opening"))
    return parts


def building_styles(rng: np.random.Generator, count: int) -> list[BuildingStyle]:
    """Distinct landmarks: roof, tower count and window shape combinations are not repeated."""
    designs = list(itertools.product(ROOFS, TOWER_COUNTS, (False, True)))
    order = rng.permutation(len(designs))
    walls, roofs = rng.permutation(len(WALLS)), rng.permutation(len(ROOF_COLOURS))
    styles = []
    for i in range(count):
        roof, towers, arched = designs[order[i % len(designs)]]
        parts = _massing(rng, roof, towers, arched)
        height = max(float(p[:, 1].max()) for p, _ in parts)
        # normalise to height 1 and flip to image coordinates (y down)
        parts = tuple((p * np.asarray([1.0, -1.0]) / height, role) for p, role in parts)
        styles.append(BuildingStyle(roof, WALLS[walls[i % len(WALLS)]],
                                    ROOF_COLOURS[roofs[(i + i // len(WALLS)) % len(ROOF_COLOURS)]],
                                    parts))
    return styles


def landmark_size(rng: np.random.Generator) -> Size:
    long_side = int(rng.choice([800, 960, 1024, 1024, 1200, 1280, 1600]))
    short_side = round(long_side * rng.choice([0.75, 0.667, 0.5625]))
    return (long_side, short_side) if rng.random() < 0.8 else (short_side, long_side)


def render_landmark(style: BuildingStyle, rng: np.random.Generator, size: Size) -> Scene:
    canvas = work_size(size)
    w, h = canvas
    zenith, horizon_colour = SKIES[rng.integers(len(SKIES))]
    image = background(rng, canvas, jitter(zenith, rng, 20), jitter(horizon_colour, rng, 20),
                       angle=np.pi / 2 + rng.uniform(-0.3, 0.3), blotches=rng.uniform(4, 16),
                       cells=4)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 6))):  # clouds
        cx, cy, rx = rng.uniform(0, w), rng.uniform(0, 0.4 * h), rng.uniform(0.05, 0.2) * w
        draw.ellipse((cx - rx, cy - 0.3 * rx, cx + rx, cy + 0.3 * rx),
                     fill=hsv(0, 0, rng.uniform(0.8, 1.0)))
    horizon = rng.uniform(0.6, 0.9) * h
    draw.rectangle((0, horizon, w, h), fill=jitter(GROUNDS[rng.integers(len(GROUNDS))], rng, 20))

    scale = rng.uniform(0.35, 0.85) * h  # building height in pixels
    base = (rng.uniform(0.25, 0.75) * w, horizon + rng.uniform(0, 0.05) * h)
    tilt = rng.uniform(-0.04, 0.04)
    light = rng.uniform(0.75, 1.15)
    colours = {role: jitter(scale_colour(style.colour(role), light), rng, 12)
               for role in ("wall", "tower", "roof", "opening")}
    corners = []
    for points, role in style.parts:
        polygon = place(points, base, scale, tilt)
        draw.polygon(polygon, fill=colours[role])
        corners += polygon
    xs, ys = zip(*corners)
    box = final_box((min(xs), min(ys), max(xs), max(ys)), canvas, size)

    for _ in range(int(rng.integers(0, 6))):  # trees in front
        x, r = rng.uniform(0, w), rng.uniform(0.03, 0.1) * h
        y = horizon + rng.uniform(0, 0.1) * h
        draw.rectangle((x - 0.15 * r, y - r, x + 0.15 * r, y + r), fill=(60, 45, 30))
        draw.ellipse((x - r, y - 2.6 * r, x + r, y - 0.6 * r), fill=jitter((40, 80, 40), rng, 20))
    return Scene(finish(add_grain(image, rng, int(rng.integers(2, 7))), size), (box,))
