"""Draws a class's images and keeps every new image perceptually apart from the ones before it."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from unibed.sample.drawing import Box, Size
from unibed.sample.encoding import encode_jpeg
from unibed.sample.phash import PerceptualSpacing, hashes_of, probes_of
from unibed.sample.scene_landmarks import landmark_size, render_landmark
from unibed.sample.scene_objects import object_size, render_object
from unibed.sample.scene_products import product_size, render_product
from unibed.sample.seeding import rng_for

RENDERERS = {"imagenet": render_object, "products10k": render_product, "gldv2": render_landmark}
SIZES = {"imagenet": object_size, "products10k": product_size, "gldv2": landmark_size}
MAX_ATTEMPTS = 50  # re-draws are rare (a few per hundred images); this only stops a runaway
# Pillow and numpy release the GIL in their heavy loops, so threads draw in parallel
WORKERS = min(4, os.cpu_count() or 1)

Encoder = Callable[[Image.Image], bytes]


@dataclass(frozen=True)
class Painting:
    data: bytes
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class Job:
    source: str
    image_id: str
    style: object
    size: Size | None = None  # None: a size typical of the source
    encode: Encoder = encode_jpeg

    @property
    def key(self) -> str:
        return f"{self.source}/{self.image_id}"


def _probes_or_none(data: bytes) -> dict | None:
    """Probe hashes, or None for bytes the build will reject anyway (a planted broken file)."""
    try:
        return probes_of(data)
    except Exception:  # noqa: BLE001 - whatever Pillow raises on a broken file
        return None


class Painter:
    """Paints images seeded by their identity: the same job always gives the same bytes.

    Every painting is checked against everything painted before: one whose
    pHash comes near an earlier image's is drawn again from the next seed.
    """

    def __init__(self, seed: int, spacing: PerceptualSpacing):
        self.seed = seed
        self.spacing = spacing

    def _attempt(self, job: Job, attempt: int) -> tuple[Painting, tuple[int, ...], dict | None]:
        rng = rng_for(self.seed, job.source, job.image_id, attempt)
        scene = RENDERERS[job.source](job.style, rng, job.size or SIZES[job.source](rng))
        data = job.encode(scene.image)
        return Painting(data, scene.boxes), hashes_of(data), _probes_or_none(data)

    def _accept(self, job: Job, first: tuple[Painting, tuple[int, ...], dict | None]) -> Painting:
        painting, hashes, probes = first
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if self.spacing.admits(hashes, family=job.key, probes=probes):
                self.spacing.add(hashes, family=job.key, probes=probes)
                return painting
            painting, hashes, probes = self._attempt(job, attempt)
        raise RuntimeError(f"no perceptually distinct image for {job.key} "
                           f"in {MAX_ATTEMPTS} attempts")

    def paint_all(self, jobs: list[Job]) -> list[Painting]:
        """Paintings of `jobs`; first attempts run in parallel, acceptance in job order."""
        with ThreadPoolExecutor(WORKERS) as pool:
            firsts = pool.map(lambda job: self._attempt(job, 0), jobs)
            return [self._accept(job, first) for job, first in zip(jobs, firsts)]

    def paint(self, job: Job) -> Painting:
        return self._accept(job, self._attempt(job, 0))
