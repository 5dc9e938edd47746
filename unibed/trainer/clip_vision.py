"""CLIP's vision tower with its visual projection attached.

keras-hub keeps the visual projection (class token -> the joint image-text
space, e.g. 1280 -> 1024 for ViT-H/14) in the full CLIPBackbone, not in
CLIPVisionEncoder. The GUIE winners pooled either side of it (1st place the
projected 1024-d vector, 2nd the 1280-d class token), so the projection has to
travel with the vision tower: freezing the tower (`trainable = False`) freezes
the projection too, the checkpoints hold it, and a keras-hub preset saved from
this class loads back through `Backbone.from_preset`.
"""

from __future__ import annotations

import keras
import keras_hub
import numpy as np


@keras.saving.register_keras_serializable(package="unibed")
class ProjectedCLIPVisionEncoder(keras_hub.models.CLIPVisionEncoder):
    """CLIPVisionEncoder (same call, same outputs) plus `visual_projection`, a
    bias-free Dense(projection_dim) for the class token, or None when
    projection_dim is 0."""

    def __init__(self, *, projection_dim: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.projection_dim = int(projection_dim)
        self.visual_projection = None
        if self.projection_dim:
            self.visual_projection = keras.layers.Dense(
                self.projection_dim, use_bias=False, dtype=self.dtype_policy,
                name="visual_projection")
            self.visual_projection.build((None, self.hidden_dim))

    def get_config(self):
        return {**super().get_config(), "projection_dim": self.projection_dim}


def architecture(encoder: keras_hub.models.CLIPVisionEncoder) -> dict:
    """The constructor arguments that define a vision encoder's shapes."""
    keys = ("patch_size", "hidden_dim", "num_layers", "num_heads", "intermediate_dim",
            "intermediate_activation", "image_shape")
    config = encoder.get_config()
    return {k: config[k] for k in keys}


def set_positions(encoder: keras_hub.models.CLIPVisionEncoder) -> None:
    """keras-hub creates `position_ids` as a zeros weight and relies on a preset's
    weights to fill it with 0..N-1 (Hugging Face checkpoints no longer store it);
    without this every patch would get the same position embedding."""
    ids = encoder.embedding.position_ids
    n = ids.shape[-1]
    ids.assign(np.arange(n, dtype="int64").reshape(1, n))


def with_projection(vision: keras_hub.models.CLIPVisionEncoder, projection_kernel,
                    keep_projection: bool, dtype=None) -> ProjectedCLIPVisionEncoder:
    """A ProjectedCLIPVisionEncoder holding `vision`'s weights and (when kept)
    the projection kernel [hidden, projection_dim]; same-class weights copy in order."""
    if keep_projection and projection_kernel is None:
        raise ValueError("the checkpoint has no visual projection (a bare vision encoder "
                         "preset); use pooled_feature=cls")
    kernel = np.asarray(projection_kernel) if keep_projection else None
    encoder = ProjectedCLIPVisionEncoder(
        **architecture(vision), projection_dim=0 if kernel is None else kernel.shape[1],
        dtype=dtype or vision.dtype_policy, name="clip_vision")
    for target, source in zip(_vision_weights(encoder), _vision_weights(vision), strict=True):
        target.assign(source)
    if kernel is not None:
        encoder.visual_projection.kernel.assign(kernel)
    return encoder


def _vision_weights(encoder) -> list:
    """The vision tower's own weights in build order (the projection left out)."""
    skip = {id(v) for v in getattr(getattr(encoder, "visual_projection", None), "weights", [])}
    return [v for v in encoder.weights if id(v) not in skip]
