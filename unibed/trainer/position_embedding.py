"""Position embeddings for another input size than the checkpoint's.

A CLIP ViT learns one position embedding per patch of a fixed grid (16 x 16
patches at 224 px with 14-px patches) plus one for the class token, and
keras-hub's CLIPVisionEmbedding does not interpolate them. Training at 280 px
(the GUIE 1st place) needs a 20 x 20 grid: the patch rows are resampled
bicubically over the grid and the class token's row is kept as it is (as timm
and OpenCLIP do; their torch bicubic uses the cubic kernel's a = -0.75, Keras's
TensorFlow and JAX backends a = -0.5, so the values differ slightly). This
happens once on the weights, so the model, its checkpoints and the export see
an ordinary encoder of the new size.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from unibed.trainer.clip_vision import ProjectedCLIPVisionEncoder, set_positions


def interpolate_position_embedding(table: np.ndarray, grid: int) -> np.ndarray:
    """[1 + g*g, D] (class token first, then the patches row by row) ->
    [1 + grid*grid, D], the patch rows resampled bicubically in float32."""
    table = np.asarray(table, np.float32)
    old = math.isqrt(table.shape[0] - 1)
    if old * old != table.shape[0] - 1:
        raise ValueError(f"{table.shape[0] - 1} patch positions do not form a square grid")
    patches = table[1:].reshape(old, old, table.shape[1])
    resized = ops.image.resize(patches, (grid, grid), interpolation="bicubic", antialias=False,
                               data_format="channels_last")
    resized = np.asarray(ops.convert_to_numpy(resized), np.float32)
    return np.concatenate([table[:1], resized.reshape(grid * grid, -1)], axis=0)


def resize_encoder(encoder: ProjectedCLIPVisionEncoder,
                   image_size: int) -> ProjectedCLIPVisionEncoder:
    """The same encoder taking image_size x image_size images: every weight copied,
    the position embedding interpolated to the new patch grid."""
    patch = encoder.patch_size
    if image_size % patch:
        raise ValueError(f"image_size={image_size} must be a multiple of the backbone's "
                         f"patch size {patch}")
    config = {**encoder.get_config(), "image_shape": (image_size, image_size, 3)}
    resized = ProjectedCLIPVisionEncoder.from_config(config)
    table = ops.convert_to_numpy(encoder.embedding.position_embedding.embeddings)
    special = {id(resized.embedding.position_embedding.embeddings),
               id(resized.embedding.position_ids)}
    for target, source in zip(resized.weights, encoder.weights, strict=True):
        if id(target) not in special:
            target.assign(source)
    resized.embedding.position_embedding.embeddings.assign(
        interpolate_position_embedding(table, image_size // patch))
    set_positions(resized)
    return resized
