"""The ordinary images of every class: what the sample holds before problems are planted."""

from __future__ import annotations

import numpy as np

from unibed.sample.catalog import SampleClass, SampleImage
from unibed.sample.config import SampleConfig
from unibed.sample.identifiers import Identifiers
from unibed.sample.painter import Job, Painter
from unibed.sample.seeding import rng_for


def landmark_image_counts(config: SampleConfig) -> list[int]:
    """Images per landmark: from the maximum down to 2, every third tied with the one before."""
    counts = np.round(np.linspace(config.gldv2_max_images_per_landmark, 2, config.gldv2_landmarks))
    counts = counts.astype(int)
    for i in range(2, len(counts), 3):
        counts[i] = counts[i - 1]
    # landmark ids are sorted; shuffling keeps "most images" from meaning "smallest id"
    return rng_for(config.seed, "gldv2", "counts").permutation(counts).tolist()


def populate(config: SampleConfig, classes: dict[str, list[SampleClass]], ids: Identifiers,
             painter: Painter) -> list[SampleImage]:
    planned: list[tuple[SampleClass, str, dict]] = []  # class, image id, other SampleImage fields

    def plan(cls: SampleClass, count: int, **fields) -> None:
        planned.extend((cls, ids.image_id(cls.source, cls.label), fields) for _ in range(count))

    for cls in classes["imagenet"]:
        plan(cls, config.imagenet_images_per_class)
    for cls in classes["imagenet"]:
        planned.extend((cls, ids.imagenet_val_id(), {"split": "val"})
                       for _ in range(config.imagenet_val_per_class))
    for cls in classes["products10k"]:
        plan(cls, config.products_images_per_class)
    for cls, count in zip(classes["gldv2"], landmark_image_counts(config)):
        plan(cls, count)
    rng = rng_for(config.seed, "gldv2", "non-clean")
    for _ in range(config.gldv2_non_clean_images):
        plan(classes["gldv2"][rng.integers(len(classes["gldv2"]))], 1, in_clean=False)

    paintings = painter.paint_all([Job(cls.source, image_id, cls.style)
                                   for cls, image_id, _ in planned])
    return [SampleImage(cls.source, image_id, cls.label, painting.data, boxes=painting.boxes,
                        **fields)
            for (cls, image_id, fields), painting in zip(planned, paintings, strict=True)]
