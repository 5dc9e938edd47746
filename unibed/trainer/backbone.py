"""The CLIP vision tower: keras-hub's CLIPVisionEncoder, wrapped so that it
takes float images in [0, 255] and returns CLIP's pooled feature.

Three ways to get one:
- a saved preset folder (local or gs://; keras-hub reads gs:// through
  tf.io.gfile): either a full CLIPBackbone preset (what keras-hub publishes;
  we keep its vision tower) or a CLIPVisionEncoder preset (what
  `save_encoder_preset` writes);
- a preset name (`clip_vit_large_patch14`, ...), which keras-hub downloads
  from Kaggle in production (nothing can be downloaded here);
- random weights: the tiny config, or a preset's architecture built from the
  known values below without fetching anything (benchmarks, baselines).
"""

from __future__ import annotations

import keras
import keras_hub
import numpy as np

from unibed.trainer.config import TrainConfig

# CLIP's image normalisation, on pixel values scaled to [0, 1].
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The vision towers of the two presets (OpenAI ViT-L/14 and OpenCLIP ViT-H/14
# LAION-2B), for building the architecture with random weights offline.
PRESET_ARCHITECTURES = {
    "clip_vit_large_patch14": {
        "patch_size": 14, "hidden_dim": 1024, "num_layers": 24, "num_heads": 16,
        "intermediate_dim": 4096, "intermediate_activation": "quick_gelu",
        "image_shape": (224, 224, 3)},
    "clip_vit_h_14_laion2b_s32b_b79k": {
        "patch_size": 14, "hidden_dim": 1280, "num_layers": 32, "num_heads": 16,
        "intermediate_dim": 5120, "intermediate_activation": "gelu",
        "image_shape": (224, 224, 3)},
}


def _fix_position_ids(encoder: keras.Model) -> keras.Model:
    """keras-hub creates `position_ids` as a zeros weight and relies on the
    preset's weights to fill it with 0..N-1; a randomly built encoder would
    otherwise give every patch the same position embedding. Set it here."""
    emb = _embedding_layer(encoder)
    n = emb.position_ids.shape[-1]
    emb.position_ids.assign(np.arange(n, dtype="int64").reshape(1, n))
    return encoder


def _embedding_layer(encoder: keras.Model):
    for layer in encoder.layers:
        if hasattr(layer, "position_ids"):
            return layer
    raise ValueError("encoder has no CLIP vision embedding layer")


def random_encoder(config: TrainConfig, dtype=None) -> keras_hub.models.CLIPVisionEncoder:
    """The architecture named by config.backbone with random weights."""
    if config.backbone == "tiny":
        arch = {
            "patch_size": config.tiny_patch_size, "hidden_dim": config.tiny_hidden_dim,
            "num_layers": config.tiny_num_layers, "num_heads": config.tiny_num_heads,
            "intermediate_dim": config.tiny_intermediate_dim,
            "intermediate_activation": "quick_gelu",
            "image_shape": (config.image_size, config.image_size, 3)}
    else:
        arch = PRESET_ARCHITECTURES[config.backbone]
    encoder = keras_hub.models.CLIPVisionEncoder(**arch, dtype=dtype, name="clip_vision")
    return _fix_position_ids(encoder)


def load_encoder(preset: str, dtype=None, load_weights: bool = True
                 ) -> keras_hub.models.CLIPVisionEncoder:
    """Load a CLIP vision encoder from a preset folder, gs:// path or preset name
    (load_weights=False: its architecture only, randomly initialised)."""
    loaded = keras_hub.models.Backbone.from_preset(preset, load_weights=load_weights, dtype=dtype)
    if isinstance(loaded, keras_hub.models.CLIPBackbone):
        loaded = loaded.vision_encoder
    if not isinstance(loaded, keras_hub.models.CLIPVisionEncoder):
        raise TypeError(f"preset {preset!r} holds a {type(loaded).__name__}, not a CLIP model")
    return loaded if load_weights else _fix_position_ids(loaded)


def build_encoder(config: TrainConfig, *, random_weights: bool = False, dtype=None):
    """The encoder a run trains: the preset's weights when the config names one
    (random_weights: its architecture only), random for `tiny`. Checks that the
    encoder takes config.image_size."""
    if config.backbone == "tiny":
        encoder = random_encoder(config, dtype=dtype)
    elif config.backbone_path:  # the preset's own config, with or without its weights
        encoder = load_encoder(config.backbone_path, dtype=dtype, load_weights=not random_weights)
    elif random_weights:  # the known architecture: nothing is fetched
        encoder = random_encoder(config, dtype=dtype)
    else:
        encoder = load_encoder(config.backbone, dtype=dtype)
    size = encoder.image_shape[0]
    if size != config.image_size:
        raise ValueError(
            f"the backbone takes {size}x{size} images (its position embeddings fix the size) "
            f"but image_size={config.image_size}; set image_size={size}")
    return encoder


def save_encoder_preset(encoder: keras_hub.models.CLIPVisionEncoder, preset_dir: str) -> str:
    """Save an encoder as a keras-hub preset folder (config.json + weights), the
    form `load_encoder` reads; used by tests with a tiny random model."""
    encoder.save_to_preset(preset_dir)
    return preset_dir


class ClsToken(keras.layers.Layer):
    """CLIP's pooled output: the class token of the post-layer-normed sequence."""

    def call(self, sequence):
        return sequence[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def clip_normalization() -> keras.layers.Normalization:
    """(x/255 - mean)/std as one fixed Normalization on [0, 255] pixels, in float32
    (it stays serialisable and exports as two constants)."""
    mean = [255.0 * m for m in CLIP_MEAN]
    var = [(255.0 * s) ** 2 for s in CLIP_STD]
    return keras.layers.Normalization(mean=mean, variance=var, dtype="float32",
                                      name="clip_normalize")


def feature_model(encoder: keras.Model, image_size: int) -> keras.Model:
    """images float [B, S, S, 3] in [0, 255] -> pooled CLIP feature [B, hidden]."""
    images = keras.Input((image_size, image_size, 3), dtype="float32", name="images")
    x = clip_normalization()(images)
    x = encoder({"images": x})
    if isinstance(x, dict):
        x = x["sequence_output"]
    pooled = ClsToken(name="cls_token")(x)
    return keras.Model(images, pooled, name="clip_features")
