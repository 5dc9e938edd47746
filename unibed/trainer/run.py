"""One training run end to end: dataset -> train (or resume) -> export -> score.

    resolve_dataset -> train -> SavedModel + submission.zip
      -> mP@5 of the exported SavedModel (loaded back, as the evaluator would)
      -> mP@5 of the same model before training (same config and seed: random
         for `tiny`, the pretrained backbone + random head for the presets)
         each closed-set (validation vs train) and, when the build has an
         evaluation split, open-set (held-out classes: `open_set` in metrics.json)
      -> <workdir>/metrics.json

Every event is printed as one line `UNIBED_METRIC {json}` on stdout, so a
Prefect flow running `python -m unibed.trainer run ...` as a subprocess can relay
progress and the final scores without parsing logs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable

import keras
import tensorflow as tf

from unibed.schemas.trainer_events import format_event
from unibed.trainer.config import TrainConfig
from unibed.trainer.data import load_manifest, resolve_dataset, train_dataset
from unibed.trainer.ema import restore_final_weights
from unibed.trainer.evaluate import evaluate, evaluate_open_set
from unibed.trainer.export import (
    export_saved_model,
    in_process_embed_fn,
    load_embed_fn,
    write_submission_zip,
)
from unibed.trainer.model import build_models
from unibed.trainer.sampling import SamplingPlan, sampling_plan
from unibed.trainer.train import train


def emit_metric(event: dict) -> None:
    sys.stdout.write(format_event(event) + "\n")
    sys.stdout.flush()


def _join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts)


def default_cache_dir() -> str:
    # local even when the work folder is gs://: staged shards are read by tf.data
    return os.path.join(tempfile.gettempdir(), "unibed-dataset-cache")


def with_total_steps(config: TrainConfig, steps: int) -> TrainConfig:
    """Split `steps` over the two stages in the config's head:finetune proportion."""
    head, fine = config.head_steps, config.finetune_steps
    share = head / (head + fine) if head + fine else 0.5
    head_steps = round(steps * share)
    return config.with_overrides(head_steps=head_steps, finetune_steps=steps - head_steps,
                                 head_epochs=0.0, finetune_epochs=0.0)


def run(dataset: str, workdir: str, config: TrainConfig, *, cache_dir: str | None = None,
        stop_at_step: int | None = None, baseline: bool = True,
        emit: Callable[[dict], None] = emit_metric) -> dict:
    """Train in `workdir` on `dataset` (a folder or gs:// URL holding manifest.json);
    returns what metrics.json holds (only the training state when stopped early)."""
    dataset_dir = resolve_dataset(dataset, cache_dir or default_cache_dir())
    manifest = load_manifest(dataset_dir)
    num_train = manifest.splits["train"].num_records if "train" in manifest.splits else 0
    plan = train_sampling(manifest, config)
    emit({"event": "dataset", "dataset": dataset_dir, "num_classes": manifest.num_classes,
          "train_records": num_train,
          **({"sampled_epoch": plan.epoch_size, "sampled_per_source": plan.per_source}
             if plan else {})})
    if plan:
        num_train = plan.epoch_size  # epochs count sampled records

    def dataset_fn(global_batch_size: int, seed: int) -> tf.data.Dataset:
        return train_dataset(dataset_dir, manifest, global_batch_size=global_batch_size,
                             image_size=config.image_size, augment=config.augment, seed=seed,
                             class_rates=plan.rates if plan else None)

    t0 = time.perf_counter()
    result = train(config, dataset_fn, manifest.num_classes, workdir,
                   num_train_records=num_train, stop_at_step=stop_at_step, on_event=emit,
                   class_counts=manifest.records_per_class.get("train", {}))
    summary = {"completed": result.completed, "global_step": result.global_step,
               "steps": result.stage_steps, "steps_run": result.steps_run,
               "train_seconds": round(result.seconds, 3),
               "resumed_from": result.resumed_from, "policy": result.policy,
               "replicas": result.strategy.num_replicas_in_sync,
               "last": result.last}
    if result.steps_run:
        summary["ms_per_step"] = round(1000 * result.seconds / result.steps_run, 2)
    if not result.completed:
        emit({"event": "stopped", **summary})
        return summary

    if result.ema is not None:  # export the averaged weights (ema_decay)
        result.ema.copy_to_model()
    metrics = {**summary, **export_and_score(result.models.embedding, config, workdir, dataset_dir,
                                             manifest, emit)}

    if baseline:
        untrained = _untrained_embed_fn(config, manifest.num_classes)
        metrics.update(score_model("untrained", untrained, dataset_dir, manifest, config, emit, metrics))
    metrics["run_seconds"] = round(time.perf_counter() - t0, 3)
    with tf.io.gfile.GFile(_join(workdir, "metrics.json"), "w") as f:
        f.write(json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n")
    emit({"event": "done", "metrics": _join(workdir, "metrics.json"), **headline(metrics)})
    return metrics


def train_sampling(manifest, config: TrainConfig) -> SamplingPlan | None:
    """The class sampling of the config on the manifest's train split (None: none)."""
    return sampling_plan(manifest.records_per_class.get("train", {}), manifest.label_ranges,
                         manifest.num_classes, class_cap=config.class_cap,
                         class_min=config.class_min, source_weights=config.source_weights)


def export_and_score(embedding_model, config: TrainConfig, workdir: str, dataset_dir: str,
                     manifest, emit: Callable[[dict], None]) -> dict:
    """SavedModel + submission.zip under workdir, and the export's scores (loaded
    back, as the evaluator would): the metrics.json fields they give."""
    export_dir = _join(workdir, "export")
    export_saved_model(embedding_model, config, export_dir)
    zip_path = write_submission_zip(export_dir, _join(workdir, "submission.zip"))
    emit({"event": "exported", "export_dir": export_dir, "zip": zip_path})
    metrics = {"config": config.to_dict(), "dataset": dataset_dir,
               "num_classes": manifest.num_classes, "export_dir": export_dir, "zip": zip_path}
    metrics.update(score_model("trained", load_embed_fn(export_dir), dataset_dir, manifest, config,
                               emit, metrics))
    return metrics


def _untrained_embed_fn(config: TrainConfig, num_classes: int):
    keras.utils.set_random_seed(config.seed)  # the initial weights the run started from
    return in_process_embed_fn(build_models(config, num_classes).embedding, config.image_size)


def score_model(name: str, embed_fn, dataset_dir: str, manifest, config: TrainConfig,
                emit: Callable[[dict], None], metrics: dict) -> dict:
    """{name: closed-set result} and, with an evaluation split, metrics' `open_set`
    gaining {name: open-set result}; one eval event each."""
    sizes = {"image_size": config.image_size, "batch_size": config.eval_batch_size}
    closed = evaluate(embed_fn, dataset_dir, manifest, **sizes).to_dict()
    emit({"event": "eval", "model": name, "set": "closed", **closed})
    out = {name: closed}
    opened = evaluate_open_set(embed_fn, dataset_dir, manifest, **sizes)
    if opened is not None:
        out["open_set"] = {**metrics.get("open_set", {}), name: opened.to_dict()}
        emit({"event": "eval", "model": name, "set": "open", **opened.to_dict()})
    return out


def headline(metrics: dict) -> dict:
    """The done event's figures: closed-set mP@5 and, when scored, open-set."""
    out = {"trained_mp_at_5": metrics["trained"]["mp_at_k"],
           "untrained_mp_at_5": metrics.get("untrained", {}).get("mp_at_k")}
    if "open_set" in metrics:
        out["trained_open_mp_at_5"] = metrics["open_set"]["trained"]["mp_at_k"]
        out["untrained_open_mp_at_5"] = metrics["open_set"].get("untrained", {}).get("mp_at_k")
    return out


def read_run_info(workdir: str) -> tuple[TrainConfig, int]:
    """The config and class count a work folder's run.json records."""
    path = _join(workdir, "run.json")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{workdir} holds no run.json: not a training run's work folder")
    with tf.io.gfile.GFile(path) as f:
        run_info = json.load(f)
    return TrainConfig.from_dict(run_info["config"]), int(run_info["num_classes"])


def latest_checkpoint(workdir: str) -> str:
    manager_dir = _join(workdir, "checkpoints")
    latest = tf.train.latest_checkpoint(manager_dir)
    if not latest:
        raise FileNotFoundError(f"no checkpoint under {manager_dir}")
    return latest


def load_trained_models(workdir: str):
    """Rebuild the models of a work folder's run and restore its latest checkpoint
    (the weights' averages in place of the weights when the run kept an EMA)."""
    config, num_classes = read_run_info(workdir)
    latest = latest_checkpoint(workdir)
    keras.utils.set_random_seed(config.seed)
    models = build_models(config, num_classes, random_weights=True)
    restore_final_weights(models, config.ema_decay, latest)
    return config, models, latest
