"""Export: a TF SavedModel for the competition's evaluator, and its submission zip.

The serving signature `serving_default` takes a uint8 batch [B, H, W, 3] of
any size and returns {"embedding": float32 [B, 64]}, L2-normalised. Resizing
happens inside (`resize_images`): the shorter side to image_size, antialiased so
large photos do not alias when shrunk, then the central square - the same view
as the evaluation pipeline's, so what unibed.trainer.evaluate measures is what the
exported model does. (A plain squash would keep the frame's edges but show the
model aspect ratios it never trained on beyond random-resized-crop's 3:4..4:3.)
CLIP normalisation, the backbone and any reduction to 64 dimensions are in the
embedding model itself (unibed/trainer/model.py), so the SavedModel needs nothing but
TensorFlow to run.
"""

from __future__ import annotations

import os
import zipfile

import keras
import tensorflow as tf

from unibed.trainer.config import TrainConfig

SIGNATURE = "serving_default"
OUTPUT_KEY = "embedding"


def resize_images(images: tf.Tensor, image_size: int) -> tf.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, S, S, 3] in [0, 255] (the serving view):
    shorter side resized to S (bilinear, antialiased), then the central S x S -
    the view unibed.trainer.augment.center_crop_uint8 gives evaluation, so the scores of
    unibed.trainer.evaluate are what the exported model does on raw images."""
    x = tf.cast(images, tf.float32)
    hw = tf.cast(tf.shape(x)[1:3], tf.float32)
    scale = tf.cast(image_size, tf.float32) / tf.reduce_min(hw)
    # ceil so that rounding never leaves the shorter side a pixel short of S
    new_hw = tf.maximum(tf.cast(tf.math.ceil(hw * scale - 1e-3), tf.int32), image_size)
    x = tf.image.resize(x, new_hw, method="bilinear", antialias=True)
    top = (new_hw[0] - image_size) // 2
    left = (new_hw[1] - image_size) // 2
    x = x[:, top:top + image_size, left:left + image_size, :]
    x = tf.ensure_shape(x, [None, image_size, image_size, 3])
    return tf.clip_by_value(x, 0.0, 255.0)


def serve_fn(embedding_model: keras.Model, image_size: int):
    """uint8 images of any size -> {"embedding": float32 [B, D]}, L2-normalised."""

    def serve(images):
        x = resize_images(images, image_size)
        emb = tf.cast(embedding_model(x, training=False), tf.float32)
        return {OUTPUT_KEY: tf.math.l2_normalize(emb, axis=-1)}

    return serve


def in_process_embed_fn(embedding_model: keras.Model, image_size: int):
    """The serving function without the SavedModel round trip (the untrained baseline)."""
    fn = tf.function(serve_fn(embedding_model, image_size),
                     input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])

    def embed(images):
        return fn(tf.convert_to_tensor(images, tf.uint8))[OUTPUT_KEY].numpy()

    return embed


def export_saved_model(embedding_model: keras.Model, config: TrainConfig, export_dir: str):
    """Write the SavedModel to export_dir (local or gs://); returns the keras
    ExportArchive (a tf.Module) that was written."""
    archive = keras.export.ExportArchive()
    archive.track(embedding_model)
    archive.add_endpoint(
        SIGNATURE, serve_fn(embedding_model, config.image_size),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    archive.write_out(export_dir, verbose=False)
    return archive


def write_submission_zip(export_dir: str, zip_path: str) -> str:
    """Zip a SavedModel with saved_model.pb and variables/ at the zip's root."""
    if not tf.io.gfile.exists(f"{export_dir.rstrip('/')}/saved_model.pb"):
        raise FileNotFoundError(f"{export_dir} holds no saved_model.pb")
    local_zip = zip_path if "://" not in zip_path else os.path.join(
        os.environ.get("TMPDIR", "/tmp"), os.path.basename(zip_path))
    with zipfile.ZipFile(local_zip, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for root, _dirs, files in tf.io.gfile.walk(export_dir):
            for name in sorted(files):
                src = f"{root.rstrip('/')}/{name}"
                rel = os.path.relpath(src, export_dir)
                with tf.io.gfile.GFile(src, "rb") as f:
                    zf.writestr(rel, f.read())
    if local_zip != zip_path:
        tf.io.gfile.copy(local_zip, zip_path, overwrite=True)
        os.remove(local_zip)
    return zip_path


def load_embed_fn(export_dir: str):
    """The exported signature as embed_fn: uint8 [B, H, W, 3] -> np.ndarray [B, 64]."""
    loaded = tf.saved_model.load(export_dir)
    fn = loaded.signatures[SIGNATURE]

    def embed(images):
        return fn(images=tf.convert_to_tensor(images, tf.uint8))[OUTPUT_KEY].numpy()

    embed.loaded = loaded  # keep the object (and its variables) alive
    return embed
