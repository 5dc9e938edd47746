"""Training: both stages run, stage 1 leaves the backbone alone, an interrupted
run resumes at its checkpointed stage and step, a foreign config is refused,
TensorBoard gets scalars, bf16 runs on CPU, and the two-replica path works."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_backbone import tiny_config

from unibed.trainer.train import WorkdirMismatch, train

CONFIG = tiny_config(global_batch_size=8, head_steps=6, finetune_steps=6, log_every_steps=2,
                     checkpoint_every_steps=4)
NUM_CLASSES = 4


def synthetic_dataset(global_batch_size: int, seed: int) -> tf.data.Dataset:
    """Class-coloured noise images (float [0, 255]) and int32 labels, repeated."""
    rng = np.random.default_rng(0)
    labels = np.arange(32) % NUM_CLASSES
    images = rng.uniform(0, 80, (32, 32, 32, 3)) + (labels * 40)[:, None, None, None]
    ds = tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels.astype("int32")))
    return ds.repeat().shuffle(32, seed=seed).batch(global_batch_size, drop_remainder=True)


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _events(**kwargs):
    events = []
    result = train(CONFIG if "config" not in kwargs else kwargs.pop("config"), synthetic_dataset,
                   NUM_CLASSES, on_event=events.append, **kwargs)
    return result, events


def _encoder_weights(result):
    return [w.numpy().copy() for w in result.models.encoder.weights]


def test_two_stages_run_and_stage_one_leaves_the_backbone_alone(tmp_path):
    workdir = str(tmp_path / "w")
    first, events = _events(workdir=workdir, stop_at_step=6)  # exactly the end of stage 1
    assert not first.completed and first.global_step == 6
    assert [e["stage"] for e in events if e["event"] == "stage_end"] == ["head"]
    keras.utils.set_random_seed(CONFIG.seed)
    from unibed.trainer.model import build_models

    initial = build_models(CONFIG, NUM_CLASSES)  # the run's starting weights (same seed)
    for a, b in zip(_encoder_weights(first), [w.numpy() for w in initial.encoder.weights]):
        np.testing.assert_array_equal(a, b)
    head_before = initial.training.get_layer("embedding").get_weights()[0]
    assert not np.allclose(first.models.training.get_layer("embedding").get_weights()[0],
                           head_before)

    second, events = _events(workdir=workdir)
    assert second.completed and second.global_step == 12 and second.steps_run == 6
    assert events[0] == {"event": "resume", "stage": "finetune", "step": 0,
                         "checkpoint": events[0]["checkpoint"]}
    assert [e["stage"] for e in events if e["event"] == "stage_start"] == ["finetune"]
    changed = [not np.array_equal(a, b) for a, b in
               zip(_encoder_weights(second), [w.numpy() for w in initial.encoder.weights])]
    assert any(changed)  # stage 2 trains the backbone
    train_events = [e for e in events if e["event"] == "train"]
    assert all(np.isfinite(e["loss"]) for e in train_events)
    assert train_events[-1]["lr"] == pytest.approx(0.0, abs=1e-9)  # cosine ends at 0

    # tensorboard scalars, readable without the tensorboard package
    tags = set()
    for path in glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"loss", "accuracy", "lr"} <= tags

    third, events = _events(workdir=workdir)  # a finished run does nothing more
    assert third.completed and third.steps_run == 0
    assert not [e for e in events if e["event"] == "stage_start"]


def test_resume_mid_stage_continues_from_the_checkpointed_step(tmp_path):
    workdir = str(tmp_path / "w")
    first, events = _events(workdir=workdir, stop_at_step=9)  # stage 2, step 3
    assert first.global_step == 9 and not first.completed
    assert events[-1]["event"] == "checkpoint" and events[-1]["global_step"] == 9
    saved = first.models.training.get_layer("embedding").get_weights()[0]

    second, events = _events(workdir=workdir, stop_at_step=10)
    assert second.resumed_from["stage"] == "finetune" and second.resumed_from["step"] == 3
    # the restored run starts from the checkpoint's weights, optimizer and step
    assert second.steps_run == 1 and second.global_step == 10
    assert [e["step"] for e in events if e["event"] == "stage_start"] == [3]
    assert not [e for e in events if e.get("stage") == "head"]
    assert not np.allclose(second.models.training.get_layer("embedding").get_weights()[0], saved)

    third, _ = _events(workdir=workdir)
    assert third.completed and third.global_step == 12 and third.steps_run == 2


def test_a_workdir_of_another_config_is_refused(tmp_path):
    workdir = str(tmp_path / "w")
    _events(workdir=workdir, stop_at_step=2)
    with pytest.raises(WorkdirMismatch, match=r"differs in \['arcface_margin'\]"):
        _events(workdir=workdir, config=CONFIG.with_overrides(arcface_margin=0.2))
    # logging and checkpoint cadence may change on resume
    result, _ = _events(workdir=workdir, config=CONFIG.with_overrides(log_every_steps=3),
                        stop_at_step=3)
    assert result.resumed_from is not None
    run_json = json.loads((tmp_path / "w" / "run.json").read_text())
    assert run_json["num_classes"] == NUM_CLASSES and run_json["config"]["arcface_margin"] == 0.3


def test_bf16_training_step_runs_on_cpu(tmp_path):
    result, events = _events(workdir=str(tmp_path / "w"),
                             config=CONFIG.with_overrides(mixed_precision="bf16"), stop_at_step=2)
    assert result.policy == "mixed_bfloat16"
    assert result.models.encoder.compute_dtype == "bfloat16"
    assert result.models.training.get_layer("arc_margin").compute_dtype == "float32"
    assert np.isfinite([e["loss"] for e in events if e["event"] == "train"]).all()


TWO_DEVICES = """
    import json, sys, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {tests!r})
    from test_trainer_train import CONFIG, NUM_CLASSES, synthetic_dataset
    from unibed.trainer.export import in_process_embed_fn
    from unibed.trainer.strategy import make_strategy
    from unibed.trainer.train import train
    import numpy as np
    strategy = make_strategy("mirrored")
    out = {{"replicas": strategy.num_replicas_in_sync}}
    try:
        train(CONFIG.with_overrides(global_batch_size=7, strategy="mirrored"), synthetic_dataset,
              NUM_CLASSES, {workdir!r} + "/odd", strategy=strategy, on_event=lambda e: None)
    except ValueError as e:
        out["odd_batch_error"] = str(e)
    events = []
    result = train(CONFIG.with_overrides(strategy="mirrored"), synthetic_dataset, NUM_CLASSES,
                   {workdir!r} + "/w", strategy=strategy, on_event=events.append)
    out["completed"] = result.completed
    out["losses"] = [e["loss"] for e in events if e["event"] == "train"]
    emb = in_process_embed_fn(result.models.embedding, CONFIG.image_size)(
        np.zeros((2, 40, 40, 3), np.uint8))
    out["embedding_shape"] = list(emb.shape)
    print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_two_logical_cpu_devices_mirrored(tmp_path):
    code = TWO_DEVICES.format(tests=os.path.dirname(__file__), workdir=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False,
                          capture_output=True,
                          text=True, cwd=os.path.dirname(os.path.dirname(__file__)), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    assert out["replicas"] == 2
    assert "global_batch_size=7 is not divisible by the 2 replicas" in out["odd_batch_error"]
    assert out["completed"] and len(out["losses"]) == 6
    assert all(np.isfinite(out["losses"]))
    assert out["embedding_shape"] == [2, 64]
