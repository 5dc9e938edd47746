"""The head's options against hand-computed cases: CosFace, sub-centres, per-class
margins, dynamic margins from counts, the margin schedule, BatchNorm and
parallel branches; then one short real training run that uses them all."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_backbone import tiny_config

from unibed.trainer.config import ConfigError, TrainConfig
from unibed.trainer.heads.dynamic_margin import (
    counts_per_class,
    dynamic_margin_coefficients,
    dynamic_margins,
)
from unibed.trainer.heads.margin_product import MarginProduct
from unibed.trainer.heads.margin_schedule import MarginPlan, margin_plan
from unibed.trainer.model import build_models
from unibed.trainer.train import train

TINY = tiny_config()


def _unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def _layer(kernel: np.ndarray, num_classes: int, **kwargs) -> MarginProduct:
    layer = MarginProduct(num_classes, **kwargs)
    layer.build([(None, kernel.shape[0]), (None,)])
    layer.kernel.assign(kernel.astype(np.float32))
    return layer


def _logits(layer, emb, labels) -> np.ndarray:
    return layer([tf.constant(np.asarray(emb, np.float32)), tf.constant(labels)]).numpy()


# ---------------------------------------------------------------- margin products

def test_cosface_subtracts_the_margin_from_the_target_cosine_only():
    s, m = 30.0, 0.35
    layer = _layer(np.eye(2) * [3.0, 0.5], 2, scale=s, margin=m, margin_type="cosface")
    out = _logits(layer, [np.array(_unit(0.5)) * 4, _unit(2.0)], [0, 1])
    assert out[0, 0] == pytest.approx(s * (math.cos(0.5) - m), abs=1e-4)  # target: s*(cos - m)
    assert out[0, 1] == pytest.approx(s * math.sin(0.5), abs=1e-4)  # other: s*cos
    assert out[1, 1] == pytest.approx(s * (math.sin(2.0) - m), abs=1e-4)
    assert out[1, 0] == pytest.approx(s * math.cos(2.0), abs=1e-4)


def test_subcenter_logit_is_the_best_centre_then_the_margin():
    s, m = 30.0, 0.3
    # class-major columns: class 0's centres at 0 and pi/2, class 1's at pi and 3pi/2 (K = 2)
    kernel = np.array([_unit(0.0), _unit(math.pi / 2), _unit(math.pi), _unit(1.5 * math.pi)]).T
    arc = _layer(kernel, 2, scale=s, margin=m, subcenters=2)
    assert arc.kernel.shape == (2, 4)
    out = _logits(arc, [_unit(0.3), _unit(1.4), _unit(1.4)], [0, 0, 1])
    # 0.3 rad from centre 0; 1.4 rad is closer to the pi/2 centre (0.17 rad away)
    assert out[0, 0] == pytest.approx(s * math.cos(0.3 + m), abs=1e-4)
    assert out[1, 0] == pytest.approx(s * math.cos(math.pi / 2 - 1.4 + m), abs=1e-4)
    # class 1 as non-target: the max of cos(pi - 1.4) and cos(3pi/2 - 1.4), no margin
    assert out[1, 1] == pytest.approx(s * max(math.cos(math.pi - 1.4), math.cos(1.5 * math.pi - 1.4)),
                                      abs=1e-4)
    assert out[2, 0] == pytest.approx(s * math.cos(math.pi / 2 - 1.4), abs=1e-4)
    cos = _layer(kernel, 2, scale=s, margin=m, subcenters=2, margin_type="cosface")
    assert _logits(cos, [_unit(1.4)], [0])[0, 0] == pytest.approx(s * (math.cos(math.pi / 2 - 1.4) - m),
                                                                   abs=1e-4)


def test_each_target_takes_its_own_classes_margin_from_the_variable():
    s = 10.0
    layer = _layer(np.eye(3), 3, scale=s, margin=0.3)
    np.testing.assert_allclose(layer.margins.numpy(), [0.3] * 3)  # every class starts at margin
    layer.margins.assign(np.array([0.1, 0.5, 0.2], np.float32))
    emb = [[math.cos(0.4), math.sin(0.4), 0.0], [math.sin(0.4), math.cos(0.4), 0.0]]
    out = _logits(layer, emb, [0, 1])
    assert out[0, 0] == pytest.approx(s * math.cos(0.4 + 0.1), abs=1e-4)
    assert out[1, 1] == pytest.approx(s * math.cos(0.4 + 0.5), abs=1e-4)
    clone = MarginProduct.from_config(_layer(np.eye(3), 3, margin_type="cosface", subcenters=1).get_config())
    assert (clone.margin_type, clone.subcenters, clone.compute_dtype) == ("cosface", 1, "float32")


# ---------------------------------------------------------------- dynamic margins, schedule

def test_dynamic_margins_follow_n_to_the_minus_quarter_between_the_bounds():
    counts = np.array([1, 16, 81, 0])  # n^(-1/4): 1, 1/2, 1/3; a class without images
    a, b = dynamic_margin_coefficients(counts, 0.05, 0.5)
    assert (a, b) == pytest.approx((0.675, -0.175))  # 0.45 / (1 - 1/3), 0.05 - a/3
    np.testing.assert_allclose(dynamic_margins(counts, 0.05, 0.5), [0.5, 0.1625, 0.05, 0.5], atol=1e-6)
    np.testing.assert_allclose(dynamic_margins(np.array([7, 7]), 0.05, 0.5), [0.5, 0.5])
    # the manifest's {class id: records} over the whole label space
    np.testing.assert_array_equal(counts_per_class({2: 81, 0: 1, 1: 16}, 4), counts)


def test_margin_schedule_rises_per_epoch_to_its_cap():
    # the 2nd place's schedule; 100 train records at batch 10: 10 steps per epoch
    plan = margin_plan(TINY.with_overrides(arcface_margin=0.3, margin_schedule_step=0.1,
                                           margin_schedule_max=0.8, global_batch_size=10), 3,
                       num_train_records=100)
    assert [plan.epoch_at(s) for s in (0, 9, 10, 25)] == [0, 0, 1, 2]
    assert [float(plan.margins_at(e)[0]) for e in (0, 1, 4, 5, 9)] == pytest.approx([0.3, 0.4, 0.7, 0.8, 0.8])
    assert plan.steps_to_next_epoch(3) == 7 and plan.steps_to_next_epoch(50) is None
    uneven = MarginPlan(np.array([0.3], np.float32), 0.1, 0.8, 95, 10)  # epoch = 9.5 steps
    assert (uneven.epoch_at(9), uneven.epoch_at(10), uneven.steps_to_next_epoch(4)) == (0, 1, 6)
    fixed = margin_plan(TINY, 3)
    assert fixed.steps_to_next_epoch(10**6) is None and float(fixed.margins_at(7)[0]) == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="per-class counts"):
        margin_plan(TINY.with_overrides(dynamic_margin=True), 3)
    with pytest.raises(ConfigError, match="train split's size"):
        margin_plan(TINY.with_overrides(margin_schedule_step=0.1), 3)


def test_head_config_keys_parse_and_refuse_bad_values():
    c = TINY.with_settings(["margin_type=cosface", "subcenters=3", "dynamic_margin=true",
                            "dynamic_margin_range=0.1,0.4", "head_branches=20", "head_batchnorm=on"])
    assert (c.margin_type, c.subcenters, c.dynamic_margin_range, c.head_branches) == \
        ("cosface", 3, (0.1, 0.4), 20)
    assert TrainConfig.from_json(c.to_json()) == c
    for bad, key in [("margin_type=sphereface", "margin_type"), ("subcenters=0", "subcenters"),
                     ("dynamic_margin_range=0.5,0.1", "dynamic_margin_range"),
                     ("head_branches=0", "head_branches"), ("margin_schedule_step=-0.1", "margin_schedule_step")]:
        with pytest.raises(ConfigError, match=key):
            TINY.with_settings([bad])


# ---------------------------------------------------------------- embedding head

def test_batchnorm_and_parallel_branches_average_into_the_embedding():
    config = TINY.with_overrides(head_batchnorm=True, head_branches=3, embedding_dim=128)
    models = build_models(config, 5)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    assert models.training([images, np.array([0, 4], np.int32)]).shape == (2, 5)
    assert models.embedding(images).shape == (2, 64)
    branches = [models.training.get_layer(f"embedding_branch_{i}") for i in range(3)]
    assert [b.units for b in branches] == [128] * 3
    # inference: the embedding is the mean of the branches' Dense outputs on the BN'd feature
    probe = keras.Model(models.training.inputs[0], [models.training.get_layer("head_batchnorm").output,
                                                    models.training.get_layer("embedding").output])
    normed, embedding = (t.numpy() for t in probe(images, training=False))
    want = np.mean([normed @ b.kernel.numpy() + b.bias.numpy() for b in branches], axis=0)
    np.testing.assert_allclose(embedding, want, atol=1e-4)


# ---------------------------------------------------------------- one real run

def _synthetic(global_batch_size: int, seed: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    labels = np.arange(16) % 3
    images = rng.uniform(0, 80, (16, 32, 32, 3)) + (labels * 60)[:, None, None, None]
    ds = tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels.astype("int32")))
    return ds.repeat().shuffle(16, seed=seed).batch(global_batch_size, drop_remainder=True)


def test_training_applies_dynamic_scheduled_margins(tmp_path):
    """Sub-centre CosFace, dynamic margins rising per epoch, BN and 2 branches: 5 steps of 8
    over 16 records (2 steps per epoch); the head's margins end at epoch 2's. (One stage:
    the margins do not depend on it, and a second stage doubles the test's time.)"""
    config = TINY.with_overrides(
        global_batch_size=8, head_steps=5, finetune_steps=0, log_every_steps=5, checkpoint_every_steps=5,
        margin_type="cosface", subcenters=2, dynamic_margin=True, dynamic_margin_range=(0.1, 0.3),
        margin_schedule_step=0.2, margin_schedule_max=0.6, head_batchnorm=True, head_branches=2)
    result = train(config, _synthetic, 3, str(tmp_path / "w"), num_train_records=16,
                   class_counts={0: 1, 1: 16, 2: 81}, on_event=lambda e: None)
    assert result.completed
    # base: (0.1, 0.3) over n^-1/4 = 1, 1/2, 1/3 -> 0.3, 0.15, 0.1; + 0.2 * epoch 2, capped at 0.6
    base = dynamic_margins(np.array([1, 16, 81]), 0.1, 0.3)
    np.testing.assert_allclose(base, [0.3, 0.15, 0.1], atol=1e-6)
    np.testing.assert_allclose(result.models.training.get_layer("arc_margin").margins.numpy(),
                               np.minimum(base + 0.4, 0.6), atol=1e-6)
