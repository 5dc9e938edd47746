"""Hugging Face-format CLIP checkpoints (config.json + model.safetensors, as the
OpenAI and LAION repositories publish them), loaded by keras-hub's own converter.

keras-hub 0.32 registers no converter for `model_type: "clip"` (neither does
its main branch as of 2026-08); its CLIP presets were converted offline with a
torch script that is not part of the package. It does ship the converter for
MetaCLIP 2 (`keras_hub/src/utils/transformers/convert_metaclip_2.py`), and
MetaCLIP 2 is CLIP's architecture under CLIP's Hugging Face weight names
(`vision_model.embeddings.patch_embedding.weight`, `vision_model.pre_layrnorm`,
`visual_projection.weight`, ...; its vision and encoder layers are the same
code as keras-hub's CLIP layers). So a CLIP checkpoint is read by keras-hub's
TransformersPresetLoader with that converter: the config mapping, the
transposes and reshapes, the safetensors reading and the local/gs:///hf://
file access (gs:// is copied to keras-hub's local cache first) are all
keras-hub's. What is left here is moving the converted vision tower from
MetaCLIP2Backbone's layers into a CLIPVisionEncoder layer by layer (the same
layer classes: MetaCLIP 2 only keeps the post layer norm in the backbone).
The text tower is converted too (the converter ports both) and dropped.
"""

from __future__ import annotations

from keras_hub.src.models.metaclip_2.metaclip_2_backbone import MetaCLIP2Backbone
from keras_hub.src.utils.preset_utils import load_json
from keras_hub.src.utils.transformers.preset_loader import TransformersPresetLoader

from unibed.trainer.clip_vision import ProjectedCLIPVisionEncoder, set_positions

# Hugging Face model types whose weights follow CLIPModel's names and shapes.
CLIP_MODEL_TYPES = ("clip", "metaclip_2")


def is_hf_checkpoint(path: str) -> bool:
    """True when the folder's config.json is a Hugging Face one (it names a
    model_type; keras-hub's own presets name a registered class instead)."""
    try:
        config = load_json(path)
    except (FileNotFoundError, ValueError):
        return False
    return "model_type" in config and "registered_name" not in config


def load_hf_clip_vision(path: str, *, dtype=None, load_weights: bool = True,
                        keep_projection: bool = True) -> ProjectedCLIPVisionEncoder:
    """The vision tower (and its visual projection when kept) of a Hugging Face
    CLIP checkpoint folder, local, gs:// or hf://."""
    config = load_json(path)
    model_type = config.get("model_type")
    if model_type not in CLIP_MODEL_TYPES:
        raise ValueError(f"{path}: config.json has model_type={model_type!r}, "
                         f"expected one of {CLIP_MODEL_TYPES} (a Hugging Face CLIPModel)")
    loader = TransformersPresetLoader(path, {**config, "model_type": "metaclip_2"})
    clip = loader.load_backbone(MetaCLIP2Backbone, load_weights=load_weights, dtype=dtype)
    return _vision_tower(clip, keep_projection, dtype)


def _vision_tower(clip: MetaCLIP2Backbone, keep_projection: bool,
                  dtype) -> ProjectedCLIPVisionEncoder:
    """MetaCLIP2Backbone's vision layers moved into a ProjectedCLIPVisionEncoder."""
    source = clip.vision_encoder
    encoder = ProjectedCLIPVisionEncoder(
        patch_size=source.patch_size, hidden_dim=source.hidden_dim,
        num_layers=source.num_layers, num_heads=source.num_heads,
        intermediate_dim=source.intermediate_dim,
        intermediate_activation=source.intermediate_activation,
        image_shape=source.image_shape,
        projection_dim=clip.projection_dim if keep_projection else 0,
        dtype=dtype or source.dtype_policy, name="clip_vision")
    pairs = [(encoder.embedding.patch_embedding, source.embedding.patch_embedding),
             (encoder.embedding.position_embedding, source.embedding.position_embedding),
             (encoder.pre_layer_norm, source.pre_layer_norm),
             (encoder.layer_norm, clip.vision_post_layer_norm),
             *zip(encoder.encoder_layers, source.encoder_layers, strict=True)]
    if keep_projection:
        pairs.append((encoder.visual_projection, clip.vision_projection))
    for target, layer in pairs:
        target.set_weights(layer.get_weights())
    encoder.embedding.class_embedding.assign(source.embedding.class_embedding)
    set_positions(encoder)
    return encoder

