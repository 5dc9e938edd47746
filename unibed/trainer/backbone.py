"""The CLIP vision tower: keras-hub's CLIPVisionEncoder, wrapped so that it
takes float images in [0, 255] and returns CLIP's pooled feature (the class
token, before or after the visual projection: config.pooled_feature). A
checkpoint of another input size than config.image_size gets its position
embeddings interpolated (position_embedding.py).

Four ways to get one:
- a saved preset folder (local or gs://; keras-hub reads gs:// through
  tf.io.gfile): either a full CLIPBackbone preset (what keras-hub publishes;
  we keep its vision tower and visual projection) or a vision encoder preset
  (what `save_encoder_preset` writes);
- a Hugging Face CLIP checkpoint folder (config.json + model.safetensors,
  local, gs:// or hf://), through keras-hub's converter (hf_clip.py);
- a preset name (`clip_vit_large_patch14`, ...), which keras-hub downloads
  from Kaggle in production (nothing can be downloaded here);
- random weights: the tiny config, or a preset's architecture built from the
  known values below without fetching anything (benchmarks, baselines).
"""

from __future__ import annotations

import keras
import keras_hub

from unibed.trainer.clip_vision import ProjectedCLIPVisionEncoder, set_positions, with_projection
from unibed.trainer.config import TrainConfig
from unibed.trainer.position_embedding import resize_encoder

# CLIP's image normalisation, on pixel values scaled to [0, 1].
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The vision towers of the presets (OpenAI ViT-L/14 and ViT-L/14-336, OpenCLIP
# ViT-H/14 and ViT-g/14 LAION-2B; the Hugging Face configs keras-hub converted),
# for building the architecture with random weights offline.
PRESET_ARCHITECTURES = {
    "clip_vit_large_patch14": {
        "patch_size": 14, "hidden_dim": 1024, "num_layers": 24, "num_heads": 16,
        "intermediate_dim": 4096, "intermediate_activation": "quick_gelu",
        "image_shape": (224, 224, 3)},
    "clip_vit_large_patch14_336": {
        "patch_size": 14, "hidden_dim": 1024, "num_layers": 24, "num_heads": 16,
        "intermediate_dim": 4096, "intermediate_activation": "quick_gelu",
        "image_shape": (336, 336, 3)},
    "clip_vit_h_14_laion2b_s32b_b79k": {
        "patch_size": 14, "hidden_dim": 1280, "num_layers": 32, "num_heads": 16,
        "intermediate_dim": 5120, "intermediate_activation": "gelu",
        "image_shape": (224, 224, 3)},
    "clip_vit_g_14_laion2b_s12b_b42k": {
        "patch_size": 14, "hidden_dim": 1408, "num_layers": 40, "num_heads": 16,
        "intermediate_dim": 6144, "intermediate_activation": "gelu",
        "image_shape": (224, 224, 3)},
}
# The width of each preset's visual projection (the joint image-text space).
PRESET_PROJECTION_DIMS = {"clip_vit_large_patch14": 768, "clip_vit_large_patch14_336": 768,
                          "clip_vit_h_14_laion2b_s32b_b79k": 1024,
                          "clip_vit_g_14_laion2b_s12b_b42k": 1024}


def _projected(config: TrainConfig) -> bool:
    return config.pooled_feature == "projected"


def random_encoder(config: TrainConfig, dtype=None) -> ProjectedCLIPVisionEncoder:
    """The architecture named by config.backbone with random weights, at config.image_size."""
    if config.backbone == "tiny":
        arch = {
            "patch_size": config.tiny_patch_size, "hidden_dim": config.tiny_hidden_dim,
            "num_layers": config.tiny_num_layers, "num_heads": config.tiny_num_heads,
            "intermediate_dim": config.tiny_intermediate_dim,
            "intermediate_activation": "quick_gelu"}
        projection_dim = config.tiny_projection_dim
    else:
        arch = PRESET_ARCHITECTURES[config.backbone]
        projection_dim = PRESET_PROJECTION_DIMS[config.backbone]
    arch = {**arch, "image_shape": (config.image_size, config.image_size, 3)}
    encoder = ProjectedCLIPVisionEncoder(
        **arch, projection_dim=projection_dim if _projected(config) else 0, dtype=dtype,
        name="clip_vision")
    set_positions(encoder)
    return encoder


def load_encoder(preset: str, dtype=None, load_weights: bool = True,
                 keep_projection: bool = False) -> ProjectedCLIPVisionEncoder:
    """Load a CLIP vision encoder (and its visual projection when kept) from a
    keras-hub preset folder, gs:// path or preset name, or from a Hugging Face
    CLIP checkpoint folder (load_weights=False: its architecture only, randomly
    initialised)."""
    # keras-hub's transformers loader imports every converter's needs (sentencepiece, ...)
    from unibed.trainer.hf_clip import is_hf_checkpoint, load_hf_clip_vision

    if ("/" in preset or "://" in preset) and is_hf_checkpoint(preset):
        return load_hf_clip_vision(preset, dtype=dtype, load_weights=load_weights,
                                   keep_projection=keep_projection)
    loaded = keras_hub.models.Backbone.from_preset(preset, load_weights=load_weights, dtype=dtype)
    projection = None
    if isinstance(loaded, keras_hub.models.CLIPBackbone):
        projection = loaded.vision_projection.kernel
        loaded = loaded.vision_encoder
    elif getattr(loaded, "visual_projection", None) is not None:
        projection = loaded.visual_projection.kernel
    if not isinstance(loaded, keras_hub.models.CLIPVisionEncoder):
        raise TypeError(f"preset {preset!r} holds a {type(loaded).__name__}, not a CLIP model")
    encoder = with_projection(loaded, projection, keep_projection, dtype)
    if not load_weights:
        set_positions(encoder)
    return encoder


def build_encoder(config: TrainConfig, *, random_weights: bool = False, dtype=None):
    """The encoder a run trains: the preset's weights when the config names one
    (random_weights: its architecture only), random for `tiny`. A checkpoint made
    for another image size gets its position embeddings interpolated to
    config.image_size."""
    if config.backbone == "tiny" or (random_weights and not config.backbone_path):
        return random_encoder(config, dtype=dtype)  # the known architecture: nothing fetched
    encoder = load_encoder(config.backbone_path or config.backbone, dtype=dtype,
                           load_weights=not random_weights, keep_projection=_projected(config))
    if encoder.image_shape[0] != config.image_size:
        encoder = resize_encoder(encoder, config.image_size)
    return encoder


def save_encoder_preset(encoder: keras_hub.models.CLIPVisionEncoder, preset_dir: str) -> str:
    """Save an encoder as a keras-hub preset folder (config.json + weights), the
    form `load_encoder` reads; used by tests with a tiny random model."""
    encoder.save_to_preset(preset_dir)
    return preset_dir


@keras.saving.register_keras_serializable(package="unibed")
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
    """images float [B, S, S, 3] in [0, 255] -> pooled CLIP feature: the class
    token [B, hidden], through the encoder's visual projection when it has one
    (pooled_feature=projected) [B, projection_dim]."""
    images = keras.Input((image_size, image_size, 3), dtype="float32", name="images")
    x = clip_normalization()(images)
    x = encoder({"images": x})
    if isinstance(x, dict):
        x = x["sequence_output"]
    pooled = ClsToken(name="cls_token")(x)
    if getattr(encoder, "visual_projection", None) is not None:
        pooled = encoder.visual_projection(pooled)
    return keras.Model(images, pooled, name="clip_features")
