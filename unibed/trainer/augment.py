"""Training-time image augmentation: random-resized crop, flip, colour jitter.

Speed is the point of the layout. The crop window is drawn from the JPEG
header's size alone (`extract_jpeg_shape`), and `decode_and_crop_jpeg`
decodes only that window's MCU rows/columns; the crop is then resized to the
training size, and flips and colour ops run on that small image, never on the
stored one.

Every random op is a *stateless* op fed a per-image seed (see
`unibed/trainer/data.py`, which draws the seeds from the dataset seed), so a given
(seed, image position) always gives the same crop, flip and jitter, whatever
order tf.data's parallel map happens to run the images in.

Output: float32 [S, S, 3] with values in [0, 255] (what the CLIP
preprocessing inside the model expects to rescale); `train_dataset` rounds
it to uint8 before batching (cheaper to batch and to move to the device).
"""

from __future__ import annotations

import tensorflow as tf

from unibed.trainer.augment_config import AugmentConfig

__all__ = ["AugmentConfig", "augment_jpeg", "center_crop_uint8"]


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


def augment_jpeg(encoded: tf.Tensor, image_size: int, config: AugmentConfig, seed: tf.Tensor,
                 *, crop_decode: bool = True) -> tf.Tensor:
    """JPEG bytes -> float32 [S, S, 3] in [0, 255]; `seed` is an int [2] tensor.

    crop_decode=False decodes the whole image and then crops (same pixels; the
    benchmark's comparison row).
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    shape = tf.image.extract_jpeg_shape(encoded)
    window = _random_window(shape, config, seeds[0]) if config.random_crop else _center_square(shape)
    if crop_decode:
        crop = tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
    else:
        crop = tf.slice(tf.io.decode_jpeg(encoded, channels=3), [window[0], window[1], 0], [window[2], window[3], 3])
    # bilinear without antialias: the crop is at most ~2.5x the output, and this is the hot path
    image = tf.image.resize(crop, [image_size, image_size], method="bilinear")
    if config.flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if config.brightness or config.contrast or config.saturation or config.hue:
        # one ClipByValue pass; tf.clip_by_value is two (minimum, then maximum)
        image = tf.raw_ops.ClipByValue(t=_color_jitter(image, config, seeds[2:]), clip_value_min=0.0, clip_value_max=255.0)
    # (bilinear interpolation of uint8 pixels stays inside [0, 255]: no clip without jitter)
    return tf.ensure_shape(image, [image_size, image_size, 3])


_LUMA = (0.2989, 0.5870, 0.1140)  # ITU-R 601 weights exactly as tf.image.rgb_to_grayscale


def _color_jitter(image: tf.Tensor, config: AugmentConfig, seeds: tf.Tensor) -> tf.Tensor:
    """Brightness, contrast and saturation (torchvision ColorJitter definitions, in
    that order) folded into one per-image affine colour map: pixel @ M + offset.

    brightness p + b; contrast mean' + c (p - mean'); saturation grey + s (p - grey)
    with grey = p . LUMA. Composed: p @ (c A) + (b + (1 - c) mean) @ A, where
    A = s I + (1 - s) LUMA 1^T: one small matmul instead of a chain of full-image
    passes and an HSV round trip; without saturation, A = I and it is p * c + offset.
    """
    def factor(strength, seed):
        return tf.random.stateless_uniform([], seed, 1.0 - strength, 1.0 + strength) if strength else 1.0

    b = 255.0 * tf.random.stateless_uniform([], seeds[0], -config.brightness, config.brightness) \
        if config.brightness else 0.0
    c = factor(config.contrast, seeds[1])
    s = factor(config.saturation, seeds[2])
    offset = tf.fill([3], tf.cast(b, tf.float32))
    if config.contrast:  # per-channel mean, as tf.image.adjust_contrast
        offset += (1.0 - c) * _channel_means(image)
    if config.saturation:  # mixes channels: a 3x3 matmul, ~2x the cost of everything else here
        luma = tf.constant(_LUMA, shape=[3, 1])
        a = s * tf.eye(3) + (1.0 - s) * luma * tf.ones([1, 3])
        flat = tf.matmul(tf.reshape(image, [-1, 3]), c * a) + tf.tensordot(offset, a, 1)
        image = tf.reshape(flat, tf.shape(image))
    else:  # per channel: one fused multiply-add
        image = image * c + offset
    if config.hue:  # only hue needs HSV; values in [0, 1] for the conversion
        image = tf.image.stateless_random_hue(tf.clip_by_value(image, 0.0, 255.0) / 255.0, config.hue, seeds[3]) * 255.0
    return image


def _channel_means(image: tf.Tensor) -> tf.Tensor:
    """Per-channel mean of [H, W, 3]: the column means of the [H, W*3] matrix, then
    of each channel's W columns; Eigen runs that ~5x faster than reduce_mean over axes [0, 1]."""
    columns = tf.reduce_mean(tf.reshape(image, [tf.shape(image)[0], -1]), axis=0)
    return tf.reduce_mean(tf.reshape(columns, [-1, 3]), axis=0)


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
