"""Training-time image augmentation: random-resized crop, flip, colour jitter.

Speed is the point of the layout. The crop window is drawn from the JPEG
header's size alone (`extract_jpeg_shape`), and `decode_and_crop_jpeg`
decodes only that window's MCU rows/columns; the crop is then resized to the
training size, and flips and colour ops run on that small image, never on the
stored one.

Every random op is a *stateless* op fed a per-image seed (see
`trainer/data.py`, which draws the seeds from the dataset seed), so a given
(seed, image position) always gives the same crop, flip and jitter, whatever
order tf.data's parallel map happens to run the images in.

Output: float32 [S, S, 3] with values in [0, 255] (what the CLIP
preprocessing inside the model expects to rescale).
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class AugmentConfig:
    """What `augment_jpeg` does. Strengths of 0 (or False) switch an op off.

    - crop_scale: area of the crop as a fraction of the image, (min, max)
    - crop_ratio: width / height of the crop, (min, max)
    - random_crop: False = the central square of the shorter side, no randomness
    - brightness: additive delta drawn from [-b, b], as a fraction of full scale
    - contrast, saturation: factor drawn from [1 - c, 1 + c]
    - hue: rotation drawn from [-h, h] turns of the colour wheel (h <= 0.5)
    """

    random_crop: bool = True
    crop_scale: tuple[float, float] = (0.35, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.0  # hue rotation goes through HSV and is the costliest op: off by default

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


def _center_square(shape: tf.Tensor) -> tf.Tensor:
    """[y, x, h, w] of the central square of an image of `shape` [h, w, c]."""
    h, w = shape[0], shape[1]
    side = tf.minimum(h, w)
    return tf.stack([(h - side) // 2, (w - side) // 2, side, side])


def _random_window(shape: tf.Tensor, config: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
    """[y, x, h, w] of an Inception-style random crop (whole image if no draw fits)."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,  # the area range is the constraint that matters
        aspect_ratio_range=config.crop_ratio,
        area_range=config.crop_scale,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def augment_jpeg(encoded: tf.Tensor, image_size: int, config: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
    """JPEG bytes -> float32 [S, S, 3] in [0, 255]; `seed` is an int [2] tensor."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    shape = tf.image.extract_jpeg_shape(encoded)
    window = _random_window(shape, config, seeds[0]) if config.random_crop else _center_square(shape)
    crop = tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
    # bilinear without antialias: the crop is at most ~2.5x the output, and this is the hot path
    image = tf.image.resize(crop, [image_size, image_size], method="bilinear") / 255.0
    if config.flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if config.brightness:
        image = tf.image.stateless_random_brightness(image, config.brightness, seeds[2])
    if config.contrast:
        image = tf.image.stateless_random_contrast(image, 1 - config.contrast, 1 + config.contrast, seeds[3])
    if config.saturation:
        image = tf.image.stateless_random_saturation(
            image, 1 - config.saturation, 1 + config.saturation, seeds[4])
    if config.hue:
        image = tf.image.stateless_random_hue(image, config.hue, seeds[5])
    image = tf.clip_by_value(image, 0.0, 1.0) * 255.0
    return tf.ensure_shape(image, [image_size, image_size, 3])


def center_crop_uint8(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Evaluation view: shorter side resized to S, then the central S x S; uint8 [S, S, 3]."""
    image = tf.io.decode_jpeg(encoded, channels=3)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(image_size, tf.float32) / tf.reduce_min(shape)
    # ceil so that rounding never leaves the shorter side a pixel short of S
    new_hw = tf.maximum(tf.cast(tf.math.ceil(shape * scale - 1e-3), tf.int32), image_size)
    resized = tf.image.resize(image, new_hw, method="bilinear", antialias=True)
    top = (new_hw[0] - image_size) // 2
    left = (new_hw[1] - image_size) // 2
    crop = resized[top:top + image_size, left:left + image_size]
    crop = tf.cast(tf.clip_by_value(tf.round(crop), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(crop, [image_size, image_size, 3])
