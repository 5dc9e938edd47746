"""Optimisation: layer-wise rates, a frozen classifier in stage 2, the weights'
EMA, model soups, gradient accumulation and the precision choice. One tiny
run (module fixture) carries the frozen classifier, the EMA and accumulation
at once, and its work folder is the soup's ingredient."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_trainer_train import CONFIG, NUM_CLASSES, synthetic_dataset

from unibed.trainer.__main__ import main
from unibed.trainer.accumulate import check_micro_batches, gradients
from unibed.trainer.config import ConfigError
from unibed.trainer.export import in_process_embed_fn, load_embed_fn
from unibed.trainer.model import build_models
from unibed.trainer.param_groups import (
    classifier_layers,
    set_stage_trainable,
    stage2_rate_multipliers,
)
from unibed.trainer.precision import Devices, choose_precision
from unibed.trainer.rates import make_optimizer
from unibed.trainer.run import load_trained_models
from unibed.trainer.soup import SoupError, soup
from unibed.trainer.train import WorkdirMismatch, _check_workdir, make_forward, train

DECAY = 0.5
ITERATIONS = "finetune_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
RUN = CONFIG.with_overrides(head_steps=0, finetune_steps=3, freeze_classifier=True,
                            ema_decay=DECAY, accumulate_steps=2, checkpoint_every_steps=1,
                            log_every_steps=1, dropout=0.0)


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _initial(config):
    keras.utils.set_random_seed(config.seed)  # the run's starting weights
    return build_models(config, NUM_CLASSES)


def _values(model):
    return [w.numpy().copy() for w in model.weights]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """3 stage-2 steps (no head stage), classifier frozen, EMA 0.5, 2 micro-batches a
    step, a checkpoint after every step; the weights after each step, read back."""
    workdir = str(tmp_path_factory.mktemp("optim") / "run")
    result = train(RUN, synthetic_dataset, NUM_CLASSES, workdir, on_event=lambda e: None)
    steps = [_values(_initial(RUN).embedding)]
    restored = _initial(RUN)
    for step in (1, 2, 3):
        tf.train.Checkpoint(model=restored.training).restore(
            f"{workdir}/checkpoints/ckpt-{step}").expect_partial()
        steps.append(_values(restored.embedding))
    return workdir, result, steps


def test_frozen_classifier_stays_while_the_backbone_moves(tiny_run):
    _, result, steps = tiny_run
    initial = _initial(RUN)
    (classifier,) = classifier_layers(result.models)
    assert classifier.name == "arc_margin" and not classifier.trainable
    before = initial.training.get_layer("arc_margin").get_weights()[0]
    np.testing.assert_array_equal(classifier.get_weights()[0], before)
    moved = [not np.array_equal(a, b) for a, b in zip(_values(initial.encoder),
                                                      _values(result.models.encoder))]
    assert sum(moved) > len(moved) // 2  # the tower did learn
    assert not np.array_equal(steps[3][-1], steps[0][-1])  # and the head's Dense


def test_ema_is_the_hand_computed_average_after_three_steps(tiny_run):
    workdir, result, steps = tiny_run
    # one optimizer step per 2 micro-batches: Adam's step count (and schedule) says 3
    reader = tf.train.load_checkpoint(f"{workdir}/checkpoints/ckpt-3")
    assert reader.get_tensor(ITERATIONS) == 3
    floating = [i for i, w in enumerate(result.models.embedding.weights)
                if keras.backend.is_float_dtype(w.dtype)]
    expected = [steps[0][i] for i in floating]
    for t in (1, 2, 3):
        expected = [DECAY * e + (1 - DECAY) * steps[t][i] for e, i in zip(expected, floating)]
    assert len(result.ema.averages) == len(floating)
    for want, got in zip(expected, result.ema.averages):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected[-1], steps[3][floating[-1]])  # the average lags the weights


def test_soup_of_two_identical_runs_equals_either_and_foreign_runs_are_refused(
        tiny_run, tmp_path, capsys):
    workdir, result, _ = tiny_run
    twin = str(tmp_path / "twin")
    shutil.copytree(workdir, twin)
    out = str(tmp_path / "soup")
    assert main(["soup", workdir, twin, "--out", out]) == 0
    _, run_models, _ = load_trained_models(workdir)  # the run's export: its EMA weights
    floating = [w for w in run_models.embedding.weights if keras.backend.is_float_dtype(w.dtype)]
    for w, average in zip(floating, result.ema.averages):
        np.testing.assert_array_equal(w.numpy(), average.numpy())
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    np.testing.assert_allclose(load_embed_fn(f"{out}/export")(images),
                               in_process_embed_fn(run_models.embedding, RUN.image_size)(images),
                               rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "soup" / "soup.json").read_text())["ingredients"] == [workdir, twin]

    run_json = tmp_path / "twin" / "run.json"
    info = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({**info, "num_classes": NUM_CLASSES + 1}))
    with pytest.raises(SoupError, match="has 5 classes"):
        soup([workdir, twin], out)
    run_json.write_text(json.dumps({**info, "config": {**info["config"], "seed": 7,
                                                      "finetune_lr": 0.5}}))
    assert main(["soup", workdir, twin, "--out", out]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: SoupError:") and "in ['seed']" in err[-1]  # lr may differ


def test_two_micro_batches_of_4_give_the_gradients_of_one_batch_of_8():
    models = _initial(CONFIG.with_overrides(dropout=0.0))
    set_stage_trainable(models, 1, freeze_classifier=False)
    variables = models.training.trainable_variables
    forward = make_forward(models.training, 8)
    images, labels = next(iter(synthetic_dataset(8, seed=1)))
    opt = make_optimizer(CONFIG, 1e-3, 10, "float32")
    one, loss_one, acc_one = gradients(forward, variables, opt, images, labels, 1)
    two, loss_two, acc_two = gradients(forward, variables, opt, images, labels, 2)
    assert float(loss_two) == pytest.approx(float(loss_one), rel=1e-5)
    assert float(acc_two) == pytest.approx(float(acc_one))
    assert len(one) == len(two) == len(variables)
    scale = max(float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g)))) for g in one)
    for a, b in zip(one, two):  # float32 sums in another order: equal to the gradients' scale
        np.testing.assert_allclose(tf.convert_to_tensor(b), tf.convert_to_tensor(a),
                                   rtol=1e-4, atol=1e-6 * scale)
    half, _, _ = gradients(forward, variables, opt, images[:4], labels[:4], 1)
    assert not np.allclose(half[-1], one[-1], atol=1e-6)  # the second micro-batch counted
    with pytest.raises(ValueError, match="accumulate_steps=3"):
        check_micro_batches(8, 3)


def test_layer_decay_gives_block_i_the_rate_base_times_decay_to_the_l_minus_i():
    layers, decay, base, head, wd = 3, 0.5, 1e-3, 4e-3, 0.1
    config = CONFIG.with_overrides(tiny_num_layers=layers, layer_decay=decay, finetune_lr=base,
                                   finetune_head_lr=head, weight_decay=wd, warmup_fraction=0.0)
    models = _initial(config)
    set_stage_trainable(models, 1, freeze_classifier=False)
    variables = models.training.trainable_variables
    encoder = models.encoder
    expected = {id(v): decay ** (layers + 1) for layer in (encoder.embedding, encoder.pre_layer_norm)
                for v in layer.trainable_weights}
    for i, block in enumerate(encoder.encoder_layers):
        expected.update({id(v): decay ** (layers - i) for v in block.trainable_weights})
    expected.update({id(v): 1.0 for v in encoder.layer_norm.trainable_weights})
    for name in ("embedding", "arc_margin"):
        expected.update({id(v): head / base for v in models.training.get_layer(name).trainable_weights})
    assert {id(v) for v in variables} == set(expected)
    before = [v.numpy().copy() for v in variables]
    for optimizer in ("sgd", "adamw"):
        for v, b in zip(variables, before):
            v.assign(b)
        opt = make_optimizer(config.with_overrides(optimizer=optimizer), base, 100, "float32")
        opt.build(variables)
        opt.set_rate_multipliers(stage2_rate_multipliers(models, config))
        lr = float(opt.learning_rate)  # the schedule's rate at step 0
        opt.apply([tf.ones_like(v) for v in variables], variables)
        for v, b in zip(variables, before):
            rate = lr * expected[id(v)]
            # first step: SGD -lr x g, Adam -lr x g / (|g| + eps); the decoupled decay
            # (lr x wd x w) scales with the variable's rate too
            step = rate if optimizer == "sgd" else rate / (1.0 + 1e-7)
            want = b * (1.0 - wd * rate) - step
            np.testing.assert_allclose(v.numpy(), want, rtol=0, atol=1e-3 * rate,
                                       err_msg=f"{optimizer} {v.path} x{expected[id(v)]}")


def test_precision_auto_picks_bf16_from_sm80_and_fp16_below():
    choose = choose_precision
    assert choose("auto", Devices("gpu", ((8, 0),))) == "bf16"  # A100
    assert choose("auto", Devices("gpu", ((9, 0), (9, 0)))) == "bf16"  # H100 x2
    assert choose("auto", Devices("gpu", ((7, 0),))) == "fp16"  # V100
    assert choose("auto", Devices("gpu", ((8, 6), (7, 5)))) == "fp16"  # the oldest decides
    assert choose("auto", Devices("tpu")) == "bf16"
    assert choose("auto", Devices("cpu")) == "float32"
    assert choose("fp16", Devices("gpu", ((9, 0),))) == "fp16"  # explicit flags are kept
    assert choose("bf16", Devices("cpu")) == "bf16"
    with pytest.raises(ValueError, match="compute capability 8.0 or more, found 7.5"):
        choose("bf16", Devices("gpu", ((7, 5),)))
    with pytest.raises(ValueError, match="fp16 on a TPU"):
        choose("fp16", Devices("tpu"))
    with pytest.raises(ValueError, match="unknown mixed_precision"):
        choose("fp8", Devices("cpu"))


def test_optimisation_keys_are_validated():
    for key, value, why in [("layer_decay", 0.0, "layer_decay"), ("ema_decay", 1.0, "ema_decay"),
                            ("accumulate_steps", 3, "multiple of accumulate_steps=3"),
                            ("class_min", 200, "class_cap=100"),
                            ("source_weights", "a=1,b", "source=weight"),
                            ("source_weights", "a=0", "every source weight is 0")]:
        with pytest.raises(ConfigError, match=why):
            CONFIG.with_overrides(class_cap=100, **{key: value})
    assert CONFIG.with_overrides(data_seed=5).input_seed == 5 and CONFIG.input_seed == CONFIG.seed


def test_a_run_from_before_the_new_keys_resumes_while_they_keep_their_defaults(tmp_path):
    steps = CONFIG.stage_steps()
    _check_workdir(str(tmp_path), CONFIG, NUM_CLASSES, steps)
    run_json = tmp_path / "run.json"
    info = json.loads(run_json.read_text())
    for key in ("layer_decay", "ema_decay", "accumulate_steps", "class_cap", "data_seed"):
        del info["config"][key]  # as an older trainer wrote it
    run_json.write_text(json.dumps(info))
    _check_workdir(str(tmp_path), CONFIG, NUM_CLASSES, steps)
    with pytest.raises(WorkdirMismatch, match=r"differs in \['ema_decay'\]"):
        _check_workdir(str(tmp_path), CONFIG.with_overrides(ema_decay=0.9), NUM_CLASSES, steps)
