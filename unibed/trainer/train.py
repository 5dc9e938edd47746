"""The two-stage training loop.

Stage `head`: the CLIP tower frozen, only Dropout -> Dense -> ArcFace learn at
head_lr. Stage `finetune`: everything at the low finetune_lr (per block with
layer_decay, the class weights optionally frozen: param_groups.py). Each stage
has its own optimizer (rates.py) and warm-up + cosine schedule (schedule.py);
a step may accumulate several micro-batches (accumulate.py).

A custom loop rather than model.fit, because resuming must land on the same
stage and step: the checkpoint (tf.train.CheckpointManager under
<workdir>/checkpoints) holds the model, both optimizers, the weights' EMA
(when ema_decay is set) and two counters,
`stage` (0 head, 1 finetune, 2 done) and `step` (steps done in that stage).
A checkpoint is written every checkpoint_every_steps and at the end of each
stage with the counters already advanced, so a finished stage is never
redone. The input stream of a resumed stage is reseeded with the step it
resumes at (it does not replay the batches the lost steps saw).

<workdir>/run.json records the config and the class count; a rerun with
another config is refused rather than mixing two runs in one checkpoint.
Paths go through tf.io.gfile, so the work folder may be gs://.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from unibed.trainer.accumulate import check_micro_batches, gradients
from unibed.trainer.config import TrainConfig
from unibed.trainer.ema import WeightEMA
from unibed.trainer.heads.margin_schedule import MarginPlan, margin_plan
from unibed.trainer.model import Models, build_models
from unibed.trainer.param_groups import (
    set_stage_trainable,
    stage2_rate_multipliers,
    uses_rate_multipliers,
)
from unibed.trainer.rates import inner, make_optimizer
from unibed.trainer.strategy import check_batch, choose_policy, make_strategy, set_policy

STAGES = ("head", "finetune")
DONE = len(STAGES)
# keys that may change between a run and its resumption: they do not change what is learnt
RESUMABLE_KEYS = frozenset({"checkpoint_every_steps", "log_every_steps", "eval_batch_size",
                            "tpu", "strategy", "backbone_path"})

# dataset_fn(global_batch_size, seed) -> tf.data.Dataset of (images uint8 or float32 [B,S,S,3] in
# [0, 255], labels int32 [B]), repeated, batches of exactly global_batch_size
DatasetFn = Callable[[int, int], tf.data.Dataset]


class WorkdirMismatch(RuntimeError):
    """The work folder holds a run of another config."""


@dataclass
class TrainResult:
    models: Models
    strategy: tf.distribute.Strategy
    policy: str
    stage_steps: dict[str, int]
    resumed_from: dict | None  # {"stage": ..., "step": ...} when a checkpoint was restored
    completed: bool  # False when stopped by stop_at_step
    global_step: int  # steps done over both stages
    steps_run: int  # steps run by this call
    seconds: float  # wall time of this call's training steps (tracing included)
    last: dict = field(default_factory=dict)  # last logged metrics
    ema: WeightEMA | None = None  # when ema_decay > 0: the averages export uses


def _join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts)


def _check_workdir(workdir: str, config: TrainConfig, num_classes: int, steps: dict) -> None:
    path = _join(workdir, "run.json")
    mine = {"config": config.to_dict(), "num_classes": num_classes, "stage_steps": steps}
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            theirs = json.load(f)
        # a key the older run.json lacks had its default then (keys added later)
        defaults = json.loads(json.dumps(TrainConfig().to_dict()))
        a = {k: v for k, v in theirs.get("config", {}).items() if k not in RESUMABLE_KEYS}
        b = {k: v for k, v in json.loads(json.dumps(mine["config"])).items()
             if k not in RESUMABLE_KEYS}
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k, defaults.get(k)) != b.get(k))
        if theirs.get("num_classes") != num_classes:
            diff.append("num_classes")
        if theirs.get("stage_steps") != steps:
            diff.append("stage_steps")
        if diff:
            raise WorkdirMismatch(
                f"work folder {workdir} holds a run of another config (differs in {diff}); "
                "use a new work folder or the same config")
        return
    tf.io.gfile.makedirs(workdir)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(mine, indent=2, sort_keys=True) + "\n")


def make_forward(model: keras.Model, global_batch: int):
    """forward(images, labels) -> (loss, accuracy), both summed over the slice and
    divided by the global batch, so slices and replicas add up to the batch's means."""
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    def forward(images, labels):
        logits = model([images, labels], training=True)
        per_example = ce(labels, logits)  # softmax + cross-entropy, fused for stability
        loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        # accuracy on the margin logits: a lower bound of the plain cosine accuracy
        hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                tf.cast(labels, tf.int32)), tf.float32)
        return loss, tf.reduce_sum(hits) / global_batch

    return forward


def _make_loop(models: Models, optimizer, strategy, global_batch: int, micro_steps: int = 1,
               ema: WeightEMA | None = None):
    """A tf.function running `n` steps on the iterator; returns mean loss and accuracy.

    Several steps per call keep a TPU busy between host round trips. A step
    accumulates `micro_steps` micro-batches (unibed/trainer/accumulate.py)."""
    variables = models.training.trainable_variables
    forward = make_forward(models.training, global_batch)

    def replica_step(images, labels):
        grads, loss, acc = gradients(forward, variables, optimizer, images, labels, micro_steps)
        optimizer.apply(grads, variables)
        return loss, acc

    @tf.function
    def loop(iterator, n):
        total_loss = tf.constant(0.0)
        total_acc = tf.constant(0.0)
        for _ in tf.range(n):
            images, labels = next(iterator)
            loss, acc = strategy.run(replica_step, args=(images, labels))
            total_loss += strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
            total_acc += strategy.reduce(tf.distribute.ReduceOp.SUM, acc, axis=None)
            if ema is not None:
                ema.update()
        n_f = tf.cast(n, tf.float32)
        return total_loss / n_f, total_acc / n_f

    return loop


def _scalars(writer, step: int, **values: float) -> None:
    """TensorBoard scalars through the core summary op: tf.summary.scalar needs the
    tensorboard package, which TensorFlow no longer installs; the event files are
    the same (plugin "scalars")."""
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    with writer.as_default():
        for tag, value in values.items():
            tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=metadata)


def _print_event(event: dict) -> None:
    print(json.dumps(event), flush=True)


@dataclass
class _Run:
    """What the steps of one train() call share, and what they have done so far."""
    config: TrainConfig
    steps: dict[str, int]
    strategy: tf.distribute.Strategy
    dataset_fn: DatasetFn
    models: Models
    optimizers: list
    stage_var: tf.Variable  # checkpointed: 0 head, 1 finetune, 2 done
    step_var: tf.Variable  # checkpointed: steps done in that stage
    manager: tf.train.CheckpointManager
    writer: tf.summary.SummaryWriter
    on_event: Callable[[dict], None]
    stop_at_step: int | None
    ema: WeightEMA | None = None
    steps_run: int = 0
    seconds: float = 0.0
    last: dict = field(default_factory=dict)
    stopped: bool = False
    margins: MarginPlan | None = None  # per-class margins by epoch (heads/margin_schedule.py)

    @property
    def offsets(self) -> dict[str, int]:
        """The global step each stage starts at."""
        return {"head": 0, "finetune": self.steps["head"]}


def train(config: TrainConfig, dataset_fn: DatasetFn, num_classes: int, workdir: str, *,
          num_train_records: int | None = None, stop_at_step: int | None = None,
          strategy: tf.distribute.Strategy | None = None, random_backbone: bool = False,
          on_event: Callable[[dict], None] = _print_event, class_counts=None) -> TrainResult:
    """Train (or resume) in `workdir`; stop_at_step (a global step) interrupts on purpose.

    random_backbone: a preset's architecture with random weights instead of its
    pretrained ones (benchmarks; nothing is downloaded). class_counts: the train
    split's records per class ({id: n}, the manifest's), for dynamic margins."""
    steps = config.stage_steps(num_train_records)
    margins = margin_plan(config, num_classes, class_counts, num_train_records)
    _check_workdir(workdir, config, num_classes, steps)
    strategy = strategy or make_strategy(config.strategy, config.tpu)
    policy = _prepare(config, strategy)
    models, optimizers, ema = _build(config, num_classes, steps, policy, strategy, random_backbone)
    stage_var, step_var, manager, resumed = _restore(models, optimizers, workdir, on_event, ema)
    run = _Run(config, steps, strategy, dataset_fn, models, optimizers, stage_var, step_var, manager,
               tf.summary.create_file_writer(_join(workdir, "tensorboard")), on_event, stop_at_step,
               ema)
    run.margins = margins
    while int(run.stage_var) < DONE and not run.stopped:
        _run_stage(run)
    run.writer.flush()
    done = int(run.stage_var) >= DONE
    return TrainResult(models=models, strategy=strategy, policy=policy, stage_steps=steps,
                       resumed_from=resumed, completed=done, global_step=_global_step(run, done),
                       steps_run=run.steps_run, seconds=run.seconds, last=run.last, ema=ema)


def _prepare(config: TrainConfig, strategy: tf.distribute.Strategy) -> str:
    """Check the batch against the replicas, set the precision policy and the seeds; the policy."""
    check_micro_batches(check_batch(config.global_batch_size, strategy), config.accumulate_steps)
    policy = choose_policy(config.mixed_precision, strategy)
    set_policy(policy)
    keras.utils.set_random_seed(config.seed)
    return policy


def _build(config: TrainConfig, num_classes: int, steps: dict[str, int], policy: str,
           strategy: tf.distribute.Strategy, random_backbone: bool):
    """The models, both stages' optimizers and the weights' EMA (or None), under the strategy."""
    with strategy.scope():
        models = build_models(config, num_classes, random_weights=random_backbone)
        optimizers = [make_optimizer(config, config.head_lr, steps["head"], policy),
                      make_optimizer(config, config.finetune_lr, steps["finetune"], policy)]
        # both optimizers built up front so one checkpoint restores either stage
        for stage_index, opt in enumerate(optimizers):
            set_stage_trainable(models, stage_index, config.freeze_classifier)
            opt.build(models.training.trainable_variables)
        if uses_rate_multipliers(config):
            inner(optimizers[1]).set_rate_multipliers(stage2_rate_multipliers(models, config))
        ema = WeightEMA(models.embedding.weights, config.ema_decay) if config.ema_decay else None
    return models, optimizers, ema


def _restore(models: Models, optimizers: list, workdir: str, on_event: Callable[[dict], None],
             ema: WeightEMA | None = None):
    """The stage and step counters, the checkpoint manager, and where a restored run resumes (or None)."""
    # host-side counters, outside the scope so they stay plain variables
    stage_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage")
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage_step")
    ckpt = tf.train.Checkpoint(model=models.training, head_optimizer=optimizers[0],
                               finetune_optimizer=optimizers[1], stage=stage_var,
                               stage_step=step_var, **({"ema": ema.state} if ema else {}))
    manager = tf.train.CheckpointManager(ckpt, _join(workdir, "checkpoints"), max_to_keep=3)
    resumed = None
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        resumed = {"stage": STAGES[int(stage_var)] if int(stage_var) < DONE else "done",
                   "step": int(step_var), "checkpoint": manager.latest_checkpoint}
        on_event({"event": "resume", **resumed})
    return stage_var, step_var, manager, resumed


def _run_stage(run: _Run) -> None:
    """Run the current stage from its checkpointed step to its end, or until stop_at_step."""
    stage_index = int(run.stage_var)
    total = run.steps[STAGES[stage_index]]
    set_stage_trainable(run.models, stage_index, run.config.freeze_classifier)
    step = int(run.step_var)
    if step < total:
        loop, iterator = _start_stage(run, stage_index, step)
        while step < total and not run.stopped:
            step = _run_chunk(run, stage_index, loop, iterator, step)
    _end_stage(run, stage_index)


def _start_stage(run: _Run, stage_index: int, start: int):
    """The stage's training loop and an input stream seeded with the step it starts at."""
    config, stage = run.config, STAGES[stage_index]
    loop = _make_loop(run.models, run.optimizers[stage_index], run.strategy, config.global_batch_size,
                      config.accumulate_steps, run.ema)
    seed = config.input_seed + 1_000_003 * stage_index + start
    dataset = run.dataset_fn(config.global_batch_size, seed)
    iterator = iter(run.strategy.experimental_distribute_dataset(dataset))
    run.on_event({"event": "stage_start", "stage": stage, "step": start, "steps": run.steps[stage],
                  "trainable_params": int(sum(math.prod(v.shape) for v in
                                              run.models.training.trainable_variables))})
    return loop, iterator


def _chunk_size(run: _Run, stage: str, step: int) -> int:
    """Steps up to the next boundary: the stage's end, a log, a checkpoint, or stop_at_step
    (at least one step, even when stop_at_step is already behind)."""
    config = run.config
    bounds = [run.steps[stage], (step // config.log_every_steps + 1) * config.log_every_steps,
              (step // config.checkpoint_every_steps + 1) * config.checkpoint_every_steps]
    if run.stop_at_step is not None:
        bounds.append(max(run.stop_at_step - run.offsets[stage], step + 1))
    return min(bounds) - step


def _run_chunk(run: _Run, stage_index: int, loop, iterator, step: int) -> int:
    """Run the steps up to the next boundary, then log / checkpoint / stop; the new step."""
    stage = STAGES[stage_index]
    n = run.margins.before_chunk(run.models.training, run.offsets[stage] + step,
                                 _chunk_size(run, stage, step))
    t0 = time.perf_counter()
    loss, acc = loop(iterator, tf.constant(n, tf.int32))
    loss, acc = float(loss), float(acc)
    run.seconds += time.perf_counter() - t0
    step += n
    run.steps_run += n
    run.step_var.assign(step)
    lr = float(inner(run.optimizers[stage_index]).learning_rate)
    run.last = {"event": "train", "stage": stage, "step": step,
                "global_step": run.offsets[stage] + step, "loss": loss, "accuracy": acc, "lr": lr}
    _after_chunk(run, stage_index, step)
    return step


def _after_chunk(run: _Run, stage_index: int, step: int) -> None:
    """Log on the cadence, advance the counters at the stage's end (before the checkpoint,
    so a finished stage is never redone), checkpoint, and stop when asked."""
    stage = STAGES[stage_index]
    total, global_step, last = run.steps[stage], run.offsets[stage] + step, run.last
    if step % run.config.log_every_steps == 0 or step == total:
        run.on_event(last)
        _scalars(run.writer, global_step, loss=last["loss"], accuracy=last["accuracy"], lr=last["lr"])
    if step == total:
        run.stage_var.assign(stage_index + 1)
        run.step_var.assign(0)
    past_stop = run.stop_at_step is not None and global_step >= run.stop_at_step
    if step == total or step % run.config.checkpoint_every_steps == 0 or past_stop:
        path = run.manager.save(checkpoint_number=global_step)
        run.on_event({"event": "checkpoint", "stage": stage, "step": step,
                      "global_step": global_step, "path": path})
    if past_stop and step < total:
        run.stopped = True


def _end_stage(run: _Run, stage_index: int) -> None:
    """Close a stage that was not stopped, and stop if stop_at_step falls at or before its end."""
    stage = STAGES[stage_index]
    total = run.steps[stage]
    end = run.offsets[stage] + total
    if not run.stopped and int(run.stage_var) == stage_index:  # an empty stage (0 steps)
        run.stage_var.assign(stage_index + 1)
        run.step_var.assign(0)
        run.manager.save(checkpoint_number=end)
    if not run.stopped:
        run.on_event({"event": "stage_end", "stage": stage, "steps": total})
    if run.stop_at_step is not None and end >= run.stop_at_step and int(run.stage_var) < DONE:
        run.stopped = True


def _global_step(run: _Run, done: bool) -> int:
    """Steps done over both stages."""
    if done:
        return sum(run.steps.values())
    return run.offsets[STAGES[int(run.stage_var)]] + int(run.step_var)
