"""Every named preset stays trainable: its recipe (head, margins, schedule, rates,
layer decay, EMA, frozen classifier, pooled feature, sampling keys) on a tiny random
backbone in place of its CLIP one, one step per stage, then the export. The
presets' own fields are checked against the write-ups they cite."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from unibed.flows.train import PRESETS
from unibed.trainer.config import PRESET_NAMES, get_config
from unibed.trainer.export import export_saved_model, load_embed_fn
from unibed.trainer.guie_presets import GUIE_PRESETS
from unibed.trainer.train import train

NUM_CLASSES = 3
# the backbone swapped for a tiny random one; the stages cut to one step each
TINY_BACKBONE = {"backbone": "tiny", "image_size": 16, "tiny_patch_size": 8, "tiny_hidden_dim": 16,
                 "tiny_num_layers": 2, "tiny_num_heads": 2, "tiny_intermediate_dim": 32,
                 "tiny_projection_dim": 16, "global_batch_size": 4, "head_epochs": 0.0,
                 "finetune_epochs": 0.0, "head_steps": 1, "finetune_steps": 1,
                 "mixed_precision": "float32", "log_every_steps": 1, "checkpoint_every_steps": 2}


def _synthetic(global_batch_size: int, seed: int) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    labels = (np.arange(8) % NUM_CLASSES).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    return ds.repeat().batch(global_batch_size, drop_remainder=True)


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_the_flow_offers_every_preset_the_trainer_knows():
    assert PRESETS == PRESET_NAMES
    assert set(GUIE_PRESETS) <= set(PRESET_NAMES)


def test_the_guie_presets_carry_what_each_write_up_did():
    first, second, fourth = (get_config(n) for n in ("guie_1st", "guie_2nd", "guie_4th"))
    assert {p.backbone for p in (first, second, fourth)} == {"clip_vit_h_14_laion2b_s32b_b79k"}
    assert (first.image_size, first.pooled_feature, first.margin_type, first.optimizer) == \
        (280, "projected", "cosface", "sgd")
    assert first.freeze_classifier and first.finetune_lr == pytest.approx(first.head_lr / 10)
    assert (second.pooled_feature, second.subcenters, second.margin_schedule_step,
            second.margin_schedule_max, second.class_cap, second.class_min) == ("cls", 2, 0.1, 0.8, 100, 20)
    assert second.finetune_lr == pytest.approx(second.finetune_head_lr * 1e-3)
    assert fourth.dynamic_margin and fourth.dynamic_margin_range == (0.05, 0.5) and fourth.class_cap == 50
    # their per-block rates: 1e-5 at the top, 8x lower 26 blocks down
    assert fourth.layer_decay ** 26 == pytest.approx(1 / 8, rel=0.02)


@pytest.mark.parametrize("name", sorted(GUIE_PRESETS))
def test_each_preset_trains_a_step_per_stage_and_exports(name, tmp_path):
    config = get_config(name).with_overrides(**TINY_BACKBONE)
    result = train(config, _synthetic, NUM_CLASSES, str(tmp_path / "w"), num_train_records=8,
                   class_counts={0: 3, 1: 3, 2: 2}, on_event=lambda e: None)
    assert result.completed and result.stage_steps == {"head": 1, "finetune": 1}
    if result.ema is not None:
        result.ema.copy_to_model()
    export_saved_model(result.models.embedding, config, str(tmp_path / "export"))
    embed = load_embed_fn(str(tmp_path / "export"))
    out = np.asarray(embed(np.zeros((2, 20, 24, 3), np.uint8)))
    assert out.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
