"""Parameters of a generated sample; all have defaults: SampleConfig() is the standard sample."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SampleConfig:
    seed: int = 0
    imagenet_classes: int = 8
    imagenet_images_per_class: int = 12
    imagenet_val_per_class: int = 2
    products_classes: int = 12
    products_images_per_class: int = 8
    gldv2_landmarks: int = 10
    # landmark sizes spread from this maximum down to 2, with ties, so that
    # "top-k landmarks by image count" has something to rank
    gldv2_max_images_per_landmark: int = 14
    gldv2_non_clean_images: int = 3  # in train.csv and the tars, absent from train_clean.csv
    gldv2_tars: int = 3

    def __post_init__(self):
        # the planted problems need a second class to conflict with and
        # enough clean originals to copy from
        minimums = {
            "imagenet_classes": 2,
            "imagenet_images_per_class": 2,
            "imagenet_val_per_class": 0,
            "products_classes": 2,
            "products_images_per_class": 2,
            "gldv2_landmarks": 2,
            "gldv2_max_images_per_landmark": 3,
            "gldv2_non_clean_images": 0,
            "gldv2_tars": 1,
        }
        for name, minimum in minimums.items():
            if getattr(self, name) < minimum:
                raise ValueError(f"SampleConfig.{name} must be at least {minimum}")
