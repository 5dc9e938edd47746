"""The model pieces: config parsing, ArcFace math, the CLIP backbone and its
preset round trip, the two models, the schedule and the policy choice."""

from __future__ import annotations

import itertools
import json
import math

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from tiny_backbone import tiny_config

from unibed.trainer.augment import AugmentConfig
from unibed.trainer.backbone import (
    CLIP_MEAN,
    CLIP_STD,
    build_encoder,
    clip_normalization,
    load_encoder,
    random_encoder,
    save_encoder_preset,
)
from unibed.trainer.config import ConfigError, TrainConfig, get_config
from unibed.trainer.heads.margin_product import MarginProduct
from unibed.trainer.model import GroupMean, build_models
from unibed.trainer.run import with_total_steps
from unibed.trainer.schedule import WarmupCosine, stage_schedule
from unibed.trainer.strategy import check_batch, choose_policy

TINY = tiny_config()


# ---------------------------------------------------------------- config

def test_config_overrides_are_typed_and_unknown_keys_fail():
    c = get_config("tiny").with_settings(
        ["head_steps=7", "finetune_lr=2e-4", "optimizer=adam", "augment.flip=false",
         "augment.crop_scale=0.5,1.0"])
    assert (c.head_steps, c.finetune_lr, c.optimizer) == (7, 2e-4, "adam")
    assert c.augment.flip is False and c.augment.crop_scale == (0.5, 1.0)
    with pytest.raises(ConfigError, match="unknown config key 'head_stpes'"):
        c.with_settings(["head_stpes=3"])
    with pytest.raises(ConfigError, match="head_steps='ten'"):
        c.with_settings(["head_steps=ten"])
    with pytest.raises(ConfigError, match="augment.flip"):
        c.with_settings(["augment.flip=maybe"])
    with pytest.raises(ConfigError, match="unknown augment keys"):
        c.with_settings(["augment.blur=1"])
    with pytest.raises(ConfigError, match="mixed_precision"):
        c.with_overrides(mixed_precision="fp8")
    with pytest.raises(ConfigError, match="multiple of 64"):
        c.with_overrides(embedding_dim=100)
    with pytest.raises(ConfigError, match="key=value"):
        c.with_settings(["head_steps"])


def test_config_json_round_trip_and_presets():
    c = get_config("tiny").with_overrides(augment=AugmentConfig.none(), seed=3)
    assert TrainConfig.from_json(c.to_json()) == c
    assert json.loads(c.to_json())["augment"]["flip"] is False
    l14, h14 = get_config("vit_l14"), get_config("vit_h14")
    assert (l14.backbone, l14.image_size) == ("clip_vit_large_patch14", 224)
    assert h14.backbone == "clip_vit_h_14_laion2b_s32b_b79k"
    assert l14.stage_steps(256 * 10) == {"head": 10, "finetune": 10}  # one epoch each
    with pytest.raises(ConfigError, match="unknown config preset"):
        get_config("vit_b16")
    split = with_total_steps(get_config("tiny").with_overrides(head_steps=10, finetune_steps=30), 8)
    assert (split.head_steps, split.finetune_steps) == (2, 6)


# ---------------------------------------------------------------- ArcFace

def _arcface_numpy(emb, w, labels, s, m, easy_margin=False):
    """The reference notebook's ArcMarginProduct, written out in numpy."""
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    wn = w / np.linalg.norm(w, axis=0, keepdims=True)
    cos = x @ wn
    sin = np.sqrt(1 - cos**2)
    phi = cos * math.cos(m) - sin * math.sin(m)
    if easy_margin:
        phi = np.where(cos > 0, phi, cos)
    else:
        phi = np.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)
    one_hot = np.eye(w.shape[1])[labels]
    return s * (one_hot * phi + (1 - one_hot) * cos)


def test_arcface_matches_the_hand_computed_case():
    s, m = 30.0, 0.3
    # class weights along the axes; the embeddings sit at known angles to them
    w = np.eye(3, dtype=np.float32) * np.array([2.0, 0.5, 1.0], np.float32)
    angles = [0.4, 2.0, 3.0]  # radians from class 0; 3.0 > pi - m: the th fallback
    emb = np.stack([[math.cos(a), math.sin(a), 0.0] for a in angles]).astype(np.float32) * 5
    labels = np.array([0, 0, 0])
    layer = MarginProduct(3, scale=s, margin=m)
    layer.build([(None, 3), (None,)])
    layer.kernel.assign(w)
    out = layer([tf.constant(emb), tf.constant(labels)]).numpy()
    want = _arcface_numpy(emb, w, labels, s, m)
    np.testing.assert_allclose(out, want, atol=1e-4)
    # by hand: target gets s*cos(theta + m) below pi - m, s*(cos(theta) - sin(pi-m)*m) beyond
    assert out[0, 0] == pytest.approx(s * math.cos(0.4 + m), abs=1e-4)
    assert out[1, 0] == pytest.approx(s * math.cos(2.0 + m), abs=1e-4)
    assert out[2, 0] == pytest.approx(s * (math.cos(3.0) - math.sin(math.pi - m) * m), abs=1e-4)
    # the margin only touches the target class: others are s*cos(theta) unchanged
    assert out[0, 1] == pytest.approx(s * math.sin(0.4), abs=1e-4)
    assert out[0, 2] == pytest.approx(0.0, abs=1e-4)
    # the same embedding with another label: column 1 gets the margin, column 0 none
    out1 = layer([tf.constant(emb[:1]), tf.constant([1])]).numpy()
    assert out1[0, 0] == pytest.approx(s * math.cos(0.4), abs=1e-4)
    assert out1[0, 1] == pytest.approx(s * math.cos(math.pi / 2 - 0.4 + m), abs=1e-4)
    easy = MarginProduct(3, scale=s, margin=m, easy_margin=True)
    easy.build([(None, 3), (None,)])
    easy.kernel.assign(w)
    np.testing.assert_allclose(easy([tf.constant(emb), tf.constant(labels)]).numpy(),
                               _arcface_numpy(emb, w, labels, s, m, easy_margin=True), atol=1e-4)


def test_arcface_is_float32_under_mixed_precision_and_serialisable():
    layer = MarginProduct(5, scale=10.0, margin=0.2, dtype="mixed_bfloat16")
    emb = tf.random.stateless_normal([4, 8], seed=[1, 2], dtype=tf.bfloat16)
    out = layer([emb, tf.constant([0, 1, 2, 3])])
    assert out.dtype == tf.float32 and layer.kernel.dtype == "float32"
    clone = MarginProduct.from_config(layer.get_config())
    assert (clone.num_classes, clone.scale, clone.margin) == (5, 10.0, 0.2)
    # gradients stay finite even where cos(theta) = 1 exactly
    layer2 = MarginProduct(2)
    layer2.build([(None, 2), (None,)])
    layer2.kernel.assign(np.eye(2, dtype=np.float32))
    x = tf.Variable([[1.0, 0.0]])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer2([x, tf.constant([0])]))
    assert np.isfinite(tape.gradient(y, x).numpy()).all()


# ---------------------------------------------------------------- backbone

def test_clip_normalisation_is_clips():
    x = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
    got = clip_normalization()(x).numpy().reshape(3)
    want = (np.array([0.0, 0.5, 1.0]) - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_random_encoder_gets_distinct_positions():
    enc = random_encoder(TINY)
    emb = next(layer for layer in enc.layers if hasattr(layer, "position_ids"))
    np.testing.assert_array_equal(emb.position_ids.numpy()[0], np.arange(17))


def test_preset_round_trip_through_the_real_loading_path(tmp_path):
    keras.utils.set_random_seed(1)
    encoder = random_encoder(TINY)
    preset = save_encoder_preset(encoder, str(tmp_path / "tiny_clip"))
    assert (tmp_path / "tiny_clip" / "config.json").exists()
    # a config naming a preset and a folder to load it from: the production path
    config = TINY.with_overrides(backbone="clip_vit_large_patch14", backbone_path=preset)
    loaded = build_encoder(config)
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded({"images": images}).numpy(),
                               encoder({"images": images}).numpy(), atol=1e-5)
    # architecture only (load_weights=False): same shapes, other weights
    fresh = build_encoder(config, random_weights=True)
    assert fresh.count_params() == encoder.count_params()
    assert not np.allclose(fresh({"images": images}).numpy(), encoder({"images": images}).numpy())
    # another size than the checkpoint's interpolates; it must fit whole patches
    assert build_encoder(config.with_overrides(image_size=224)).image_shape == (224, 224, 3)
    with pytest.raises(ValueError, match="multiple of the backbone's patch size 8"):
        build_encoder(config.with_overrides(image_size=36))
    with pytest.raises(ValueError, match="no visual projection"):  # a bare vision encoder
        build_encoder(config.with_overrides(pooled_feature="projected"))


def test_full_clip_preset_yields_its_vision_tower(tmp_path):
    """keras-hub publishes CLIP as a CLIPBackbone (vision + text): we keep the vision tower."""
    vision = random_encoder(TINY)
    text = keras_hub.models.CLIPTextEncoder(vocabulary_size=50, embedding_dim=16, hidden_dim=16,
                                            num_layers=1, num_heads=2, intermediate_dim=32,
                                            max_sequence_length=8)
    clip = keras_hub.models.CLIPBackbone(vision, text, projection_dim=8)
    clip.save_to_preset(str(tmp_path / "clip"))
    loaded = load_encoder(str(tmp_path / "clip"))
    assert isinstance(loaded, keras_hub.models.CLIPVisionEncoder)
    assert loaded.visual_projection is None
    projected = load_encoder(str(tmp_path / "clip"), keep_projection=True)  # its own projection
    np.testing.assert_array_equal(projected.visual_projection.kernel.numpy(),
                                  clip.vision_projection.kernel.numpy())
    images = np.ones((1, 32, 32, 3), np.float32)
    np.testing.assert_allclose(loaded({"images": images}).numpy(),
                               vision({"images": images}).numpy(), atol=1e-5)


# ---------------------------------------------------------------- models

def test_models_take_the_manifests_class_count(sample_build):
    n = sample_build.manifest.num_classes
    models = build_models(TINY, n)
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    logits = models.training([images, np.array([0, 1, n - 1], np.int32)])
    assert logits.shape == (3, n)
    emb = models.embedding(images).numpy()
    assert emb.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    # the embedding model shares the trained layers
    assert models.training.get_layer("embedding") is models.embedding.get_layer("embedding")


def test_wide_embedding_is_reduced_to_64_inside_the_model():
    models = build_models(TINY.with_overrides(embedding_dim=256), 4)
    assert models.training.get_layer("embedding").units == 256
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    emb = models.embedding(images).numpy()
    assert emb.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    x = np.arange(8, dtype=np.float32).reshape(1, 8)
    np.testing.assert_allclose(GroupMean(4)(x).numpy(), [[0.5, 2.5, 4.5, 6.5]])


# ---------------------------------------------------------------- schedule, policy

def test_warmup_then_cosine():
    sched = stage_schedule(1e-3, 100, 0.1)
    assert isinstance(sched, WarmupCosine) and sched.warmup_steps == 10
    lr = [float(sched(t)) for t in range(100)]
    assert lr[0] == pytest.approx(1e-4) and lr[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in itertools.pairwise(lr[:10]))  # linear warm-up
    assert all(a >= b for a, b in itertools.pairwise(lr[9:]))  # then decay
    assert lr[54] == pytest.approx(5e-4, rel=0.05) and lr[99] == pytest.approx(0.0, abs=1e-9)
    assert WarmupCosine.from_config(sched.get_config()).get_config() == sched.get_config()


def test_policy_and_batch_checks():
    default = tf.distribute.get_strategy()
    assert choose_policy("auto", default) == "float32"  # CPU here
    assert choose_policy("bf16", default) == "mixed_bfloat16"
    assert choose_policy("fp16", default) == "mixed_float16"
    assert check_batch(32, default) == 32
