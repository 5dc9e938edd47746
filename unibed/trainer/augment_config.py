"""What the training-time augmentation does (unibed/trainer/augment.py runs it).

Apart from augment.py so that the config (unibed/trainer/config.py) imports
without TensorFlow: the model code also runs under Keras 3's JAX backend
(benchmarks/gpu_check.py on a machine without TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """What `augment_jpeg` does. Strengths of 0 (or False) switch an op off.

    - crop_scale: area of the crop as a fraction of the image, (min, max)
    - crop_ratio: width / height of the crop, (min, max)
    - random_crop: False = the central square of the shorter side, no randomness
    - brightness: additive delta drawn from [-b, b], as a fraction of full scale (255)
    - contrast: factor drawn from [1 - c, 1 + c] on the distance from each channel's mean
    - saturation: factor drawn from [1 - s, 1 + s] on the distance from the grey image
    - hue: rotation drawn from [-h, h] turns of the colour wheel (h <= 0.5)
    """

    random_crop: bool = True
    crop_scale: tuple[float, float] = (0.35, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    brightness: float = 0.1
    contrast: float = 0.1
    # channel-mixing ops cost about as much as the crop's resize and jitter together
    # (benchmarks/bench_input_pipeline.py): off unless asked for
    saturation: float = 0.0
    hue: float = 0.0

    def __post_init__(self):
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        lo, hi = self.crop_ratio
        if not 0 < lo <= hi:
            raise ValueError(f"crop_ratio must satisfy 0 < min <= max, got {self.crop_ratio}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation: the central square, resized; no flip, no jitter."""
        return cls(random_crop=False, flip=False, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)

    @property
    def is_random(self) -> bool:
        return bool(self.random_crop or self.flip or self.brightness or self.contrast
                    or self.saturation or self.hue)
