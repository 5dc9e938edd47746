"""Backbone weights: Hugging Face CLIP checkpoints through keras-hub's converter,
position embeddings interpolated for another input size, the pooled feature
before or after CLIP's visual projection."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from tiny_backbone import tiny_config

from unibed.trainer.backbone import (
    CLIP_MEAN,
    CLIP_STD,
    build_encoder,
    clip_normalization,
    feature_model,
    random_encoder,
    save_encoder_preset,
)
from unibed.trainer.config import BACKBONE_PRESETS, get_config
from unibed.trainer.model import build_models
from unibed.trainer.position_embedding import interpolate_position_embedding, resize_encoder

TINY = tiny_config(tiny_projection_dim=24)


def _np(x) -> np.ndarray:
    """A model output as numpy on any Keras backend (these tests also pass under JAX)."""
    return np.asarray(keras.ops.convert_to_numpy(x))


# a tiny CLIPModel in Hugging Face's layout: 2 vision layers (so layer order shows), 1 text layer
HIDDEN, HEADS, LAYERS, MLP, PATCH, SIZE, PROJ = 32, 2, 2, 64, 8, 32, 24


def _tower(rng, prefix: str, layers: int, dim: int, mlp: int) -> dict[str, np.ndarray]:
    def arr(*shape):
        return rng.normal(size=shape).astype(np.float32) * 0.1

    t = {}
    for i in range(layers):
        p = f"{prefix}.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t[f"{p}.self_attn.{proj}.weight"] = arr(dim, dim)
            t[f"{p}.self_attn.{proj}.bias"] = arr(dim)
        for norm in ("layer_norm1", "layer_norm2"):
            t[f"{p}.{norm}.weight"], t[f"{p}.{norm}.bias"] = 1 + arr(dim), arr(dim)
        t[f"{p}.mlp.fc1.weight"], t[f"{p}.mlp.fc1.bias"] = arr(mlp, dim), arr(mlp)
        t[f"{p}.mlp.fc2.weight"], t[f"{p}.mlp.fc2.bias"] = arr(dim, mlp), arr(dim)
    return t


def write_hf_clip(folder, seed: int = 0) -> dict[str, np.ndarray]:
    """config.json + model.safetensors with CLIPModel's names and shapes (as the
    OpenAI and LAION repositories publish them); returns the tensors."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    n = (SIZE // PATCH) ** 2 + 1
    t = {"vision_model.embeddings.class_embedding": rng.normal(size=HIDDEN),
         "vision_model.embeddings.patch_embedding.weight":
             rng.normal(size=(HIDDEN, 3, PATCH, PATCH)) * 0.05,
         "vision_model.embeddings.position_embedding.weight": rng.normal(size=(n, HIDDEN)),
         "vision_model.pre_layrnorm.weight": 1 + rng.normal(size=HIDDEN) * 0.1,
         "vision_model.pre_layrnorm.bias": rng.normal(size=HIDDEN) * 0.1,
         "vision_model.post_layernorm.weight": 1 + rng.normal(size=HIDDEN) * 0.1,
         "vision_model.post_layernorm.bias": rng.normal(size=HIDDEN) * 0.1,
         "visual_projection.weight": rng.normal(size=(PROJ, HIDDEN)) * 0.1,
         "text_model.embeddings.token_embedding.weight": rng.normal(size=(50, 16)),
         "text_model.embeddings.position_embedding.weight": rng.normal(size=(8, 16)),
         "text_model.final_layer_norm.weight": np.ones(16),
         "text_model.final_layer_norm.bias": np.zeros(16),
         "text_projection.weight": rng.normal(size=(PROJ, 16)),
         "logit_scale": np.array(2.6592)}
    t = {k: np.asarray(v, np.float32) for k, v in t.items()}
    t |= _tower(rng, "vision_model", LAYERS, HIDDEN, MLP) | _tower(rng, "text_model", 1, 16, 32)
    folder.mkdir()
    save_file(t, str(folder / "model.safetensors"))
    config = {
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": PROJ,
        "logit_scale_init_value": 2.6592, "torch_dtype": "float32",
        "vision_config": {"model_type": "clip_vision_model", "hidden_size": HIDDEN,
                          "intermediate_size": MLP, "num_attention_heads": HEADS,
                          "num_hidden_layers": LAYERS, "image_size": SIZE, "patch_size": PATCH,
                          "hidden_act": "gelu", "layer_norm_eps": 1e-5, "num_channels": 3,
                          "projection_dim": PROJ},
        "text_config": {"model_type": "clip_text_model", "hidden_size": 16,
                        "intermediate_size": 32, "num_attention_heads": 2,
                        "num_hidden_layers": 1, "vocab_size": 50, "max_position_embeddings": 8,
                        "hidden_act": "gelu", "projection_dim": PROJ}}
    (folder / "config.json").write_text(json.dumps(config))
    return t


def _layer_norm(x, hf, name):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * hf[f"{name}.weight"] + hf[f"{name}.bias"]


def _reference_pooled(hf, images):
    """Hugging Face's CLIPVisionModel + visual projection, written out in numpy."""
    from scipy.special import erf

    x = (images / 255.0 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    b, g = len(x), SIZE // PATCH
    patches = x.reshape(b, g, PATCH, g, PATCH, 3).transpose(0, 1, 3, 5, 2, 4).reshape(b, g * g, -1)
    w = hf["vision_model.embeddings.patch_embedding.weight"].reshape(HIDDEN, -1)
    cls = np.broadcast_to(hf["vision_model.embeddings.class_embedding"], (b, 1, HIDDEN))
    x = np.concatenate([cls, patches @ w.T], 1)
    x = x + hf["vision_model.embeddings.position_embedding.weight"]
    x = _layer_norm(x, hf, "vision_model.pre_layrnorm")
    for i in range(LAYERS):
        p = f"vision_model.encoder.layers.{i}"

        def dense(h, name, p=p):
            return h @ hf[f"{p}.{name}.weight"].T + hf[f"{p}.{name}.bias"]

        h = _layer_norm(x, hf, f"{p}.layer_norm1")
        q, k, v = (dense(h, f"self_attn.{n}_proj").reshape(b, -1, HEADS, HIDDEN // HEADS)
                   .transpose(0, 2, 1, 3) for n in "qkv")
        a = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HIDDEN // HEADS)
        a = np.exp(a - a.max(-1, keepdims=True))
        a = (a / a.sum(-1, keepdims=True)) @ v
        x = x + dense(a.transpose(0, 2, 1, 3).reshape(b, -1, HIDDEN), "self_attn.out_proj")
        h = dense(_layer_norm(x, hf, f"{p}.layer_norm2"), "mlp.fc1")
        x = x + dense(0.5 * h * (1 + erf(h / np.sqrt(2))), "mlp.fc2")
    pooled = _layer_norm(x[:, 0], hf, "vision_model.post_layernorm")
    return pooled @ hf["visual_projection.weight"].T


def test_hugging_face_clip_checkpoint_loads_through_keras_hubs_converter(tmp_path):
    hf = write_hf_clip(tmp_path / "CLIP-ViT-tiny")
    config = TINY.with_overrides(backbone="clip_vit_h_14_laion2b_s32b_b79k",
                                 backbone_path=str(tmp_path / "CLIP-ViT-tiny"),
                                 pooled_feature="projected")
    enc = build_encoder(config)
    emb = enc.embedding
    np.testing.assert_array_equal(emb.patch_embedding.kernel.numpy(), np.transpose(
        hf["vision_model.embeddings.patch_embedding.weight"], (2, 3, 1, 0)))
    np.testing.assert_array_equal(emb.position_embedding.embeddings.numpy(),
                                  hf["vision_model.embeddings.position_embedding.weight"])
    np.testing.assert_array_equal(emb.class_embedding.numpy(),
                                  hf["vision_model.embeddings.class_embedding"])
    np.testing.assert_array_equal(emb.position_ids.numpy()[0], np.arange(17))
    np.testing.assert_array_equal(enc.pre_layer_norm.gamma.numpy(),
                                  hf["vision_model.pre_layrnorm.weight"])
    for i, layer in enumerate(enc.encoder_layers):  # each block from its own index
        p = f"vision_model.encoder.layers.{i}"
        np.testing.assert_array_equal(layer.dense_1.kernel.numpy(), hf[f"{p}.mlp.fc1.weight"].T)
        np.testing.assert_array_equal(layer.layer_norm_2.beta.numpy(), hf[f"{p}.layer_norm2.bias"])
        np.testing.assert_array_equal(
            layer.attention.query_dense.kernel.numpy(),
            hf[f"{p}.self_attn.q_proj.weight"].T.reshape(HIDDEN, HEADS, HIDDEN // HEADS))
    # MetaCLIP 2 keeps the post layer norm in its backbone: it must land in the encoder
    np.testing.assert_array_equal(enc.layer_norm.gamma.numpy(),
                                  hf["vision_model.post_layernorm.weight"])
    np.testing.assert_array_equal(enc.visual_projection.kernel.numpy(),
                                  hf["visual_projection.weight"].T)
    text_params = sum(v.size for k, v in hf.items() if k.startswith(("text_", "logit")))
    vision_params = sum(v.size for v in hf.values()) - text_params
    assert enc.count_params() == vision_params + 17  # the text tower is dropped; + position_ids
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    pooled = _np(feature_model(enc, 32)(images))
    assert pooled.shape == (2, PROJ)
    np.testing.assert_allclose(pooled, _reference_pooled(hf, images.astype(np.float64)),
                               atol=1e-4)
    # the same checkpoint at 48 px: position embeddings interpolated, the rest as loaded
    wide = build_encoder(config.with_overrides(image_size=48, pooled_feature="cls"))
    assert wide.visual_projection is None and wide.image_shape == (48, 48, 3)
    np.testing.assert_array_equal(wide.embedding.position_embedding.embeddings.numpy()[0],
                                  hf["vision_model.embeddings.position_embedding.weight"][0])
    assert feature_model(wide, 48)(np.zeros((1, 48, 48, 3), np.float32)).shape == (1, HIDDEN)


def test_position_embedding_interpolation():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(1 + 16 * 16, 8)).astype(np.float32)
    np.testing.assert_allclose(interpolate_position_embedding(table, 16), table, atol=1e-5)
    # a grid whose embedding grows down the rows only: resampled, it still does, and
    # stays constant along each row (rows and columns not swapped), class row untouched
    rows = np.repeat(np.arange(4, dtype=np.float32), 4)
    ramp = np.concatenate([[[-7.0, 3.0]], np.stack([rows, 2 * rows], axis=1)]).astype(np.float32)
    out = interpolate_position_embedding(ramp, 6)
    np.testing.assert_array_equal(out[0], ramp[0])
    grid = out[1:, 0].reshape(6, 6)
    np.testing.assert_allclose(grid, grid[:, :1].repeat(6, axis=1), atol=1e-5)
    assert np.all(np.diff(grid[:, 0]) > 0) and grid[0, 0] < 0.5 and grid[-1, 0] > 2.5
    np.testing.assert_allclose(out[1:, 1], 2 * out[1:, 0], atol=1e-5)  # linear per channel
    with pytest.raises(ValueError, match="square grid"):
        interpolate_position_embedding(table[:-1], 4)

    encoder = random_encoder(TINY)  # 32 px, 4 x 4 patches of 8
    wider = resize_encoder(encoder, 56)  # 7 x 7
    before = encoder.embedding.position_embedding.embeddings.numpy()
    after = wider.embedding.position_embedding.embeddings.numpy()
    assert after.shape == (50, 32)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(wider.embedding.position_ids.numpy()[0], np.arange(50))
    np.testing.assert_array_equal(wider.encoder_layers[0].dense_1.kernel.numpy(),
                                  encoder.encoder_layers[0].dense_1.kernel.numpy())
    same = resize_encoder(encoder, 32)
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(_np(same({"images": images})),
                               _np(encoder({"images": images})), atol=1e-5)
    assert wider({"images": np.zeros((2, 56, 56, 3), np.float32)}).shape == (2, 50, 32)
    with pytest.raises(ValueError, match="multiple of the backbone's patch size 8"):
        resize_encoder(encoder, 36)


def test_pooled_feature_is_the_class_token_before_or_after_the_projection():
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    cls_models = build_models(TINY, 5)
    projected = build_models(TINY.with_overrides(pooled_feature="projected"), 5)
    cls_features = cls_models.training.get_layer("clip_features")
    proj_features = projected.training.get_layer("clip_features")
    assert cls_features(images).shape == (3, 32)  # hidden wide
    assert proj_features(images).shape == (3, 24)  # projection wide
    assert projected.training.get_layer("embedding").kernel.shape == (24, 64)
    # the projected feature is the class token times the projection kernel
    enc = projected.encoder
    token = _np(enc({"images": clip_normalization()(images)}))[:, 0]
    np.testing.assert_allclose(_np(proj_features(images)),
                               token @ enc.visual_projection.kernel.numpy(), atol=1e-5)
    # the projection is part of the backbone: frozen with it in the head stage
    enc.trainable = False
    assert not enc.visual_projection.trainable
    assert all("visual_projection" not in v.path for v in projected.training.trainable_variables)


def test_a_saved_projected_encoder_loads_back_with_its_projection(tmp_path):
    config = TINY.with_overrides(pooled_feature="projected")
    encoder = random_encoder(config)
    save_encoder_preset(encoder, str(tmp_path / "tiny_projected"))
    loaded = build_encoder(config.with_overrides(backbone="clip_vit_h_14_laion2b_s32b_b79k",
                                                 backbone_path=str(tmp_path / "tiny_projected")))
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(_np(feature_model(loaded, 32)(images)),
                               _np(feature_model(encoder, 32)(images)), atol=1e-5)


def test_presets_name_the_four_backbones():
    h14 = get_config("vit_h14")
    assert h14.backbone == "clip_vit_h_14_laion2b_s32b_b79k" == BACKBONE_PRESETS[0]
    assert (get_config("vit_l14_336").backbone, get_config("vit_l14_336").image_size) == (
        "clip_vit_large_patch14_336", 336)
    assert get_config("vit_g14").backbone == "clip_vit_g_14_laion2b_s12b_b42k"
    assert get_config("vit_h14").with_overrides(image_size=280).image_size == 280
