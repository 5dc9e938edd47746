"""The exported embedding model: loaded once, fed uint8 batches.

The contract (unibed/trainer/export): a SavedModel whose `serving_default` signature
takes one uint8 tensor [B, H, W, 3] (any H, W) and returns {"embedding":
float32 [B, 64]}, L2-normalised. A batch needs one size, so every image is
brought to the trainer's evaluation view (shorter side to S, central square)
first; S is the model's own `image_size` where the SavedModel declares one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from unibed.retrieval.images import model_view

DEFAULT_IMAGE_SIZE = 224


class ModelError(ValueError):
    """A model folder that does not meet the embedding contract."""


class Embedder:
    def __init__(self, model_dir: str, image_size: int | None = None, batch_size: int = 32):
        if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
            raise ModelError(f"{model_dir}: no saved_model.pb - expected an exported SavedModel folder")
        import tensorflow as tf  # here, so the rest of the rig loads without TensorFlow

        self._tf = tf
        self.model_dir = model_dir
        self.model = tf.saved_model.load(model_dir)
        signature = getattr(self.model, "signatures", {}).get("serving_default")
        if signature is None:
            raise ModelError(f"{model_dir}: no serving_default signature")
        inputs = signature.structured_input_signature[1]
        if len(inputs) != 1:
            raise ModelError(f"{model_dir}: serving_default takes {sorted(inputs)}, expected one image tensor")
        (self.input_name, spec), = inputs.items()
        if spec.dtype != tf.uint8 or spec.shape.rank != 4:
            raise ModelError(f"{model_dir}: serving_default input {self.input_name} is {spec}, "
                             "expected uint8 [B, H, W, 3]")
        if "embedding" not in signature.structured_outputs:
            raise ModelError(f"{model_dir}: serving_default returns {sorted(signature.structured_outputs)}, "
                             "expected 'embedding'")
        self.signature = signature
        self.image_size = int(image_size or _declared_image_size(self.model) or DEFAULT_IMAGE_SIZE)
        self.batch_size = batch_size
        probe = np.random.default_rng(0).integers(0, 256, (1, self.image_size, self.image_size, 3), np.uint8)
        self.dim = int(self.embed(probe).shape[1])

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [B, S, S, 3] -> float32 [B, dim], rows L2-normalised (renormalised here
        so a model that is off by rounding does not skew distances)."""
        out = self.signature(**{self.input_name: self._tf.constant(batch, self._tf.uint8)})
        vectors = np.asarray(out["embedding"], dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != batch.shape[0]:
            raise ModelError(f"{self.model_dir}: embedding has shape {vectors.shape} for a batch of {batch.shape[0]}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
            raise ModelError(f"{self.model_dir}: the model returned a zero or non-finite embedding")
        return vectors / norms

    def embed_images(self, images: Iterable) -> Iterator[np.ndarray]:
        """PIL images -> embeddings, one float32 [dim] row per image, in order."""
        batch = []
        for image in images:
            batch.append(model_view(image, self.image_size))
            if len(batch) == self.batch_size:
                yield from self.embed(np.stack(batch))
                batch = []
        if batch:
            yield from self.embed(np.stack(batch))

    def settings(self) -> dict:
        """What, besides the model's files, decides the vectors (part of the cache key)."""
        return {"image_size": self.image_size, "view": "center_square_bilinear"}


def _declared_image_size(model) -> int | None:
    value = getattr(model, "image_size", None)
    if value is None:
        return None
    try:
        return int(value.numpy()) if hasattr(value, "numpy") else int(value)
    except (TypeError, ValueError):
        return None
