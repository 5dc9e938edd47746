"""Model soup (Wortsman et al. 2022; the 4th place averaged 4 fine-tunes):
the uniform average of the weights of runs that share a starting point,
exported and scored like any run.

Ingredients must be the same model from the same initial weights: their
configs may differ only in what changes how they were trained (data order,
rates, steps, augmentation, sampling, EMA, precision...), never in the
architecture, the class count or `seed`, which fixes the initial weights
(the random head, and the whole tower for `tiny`); averaging models that
started apart averages unrelated coordinates. Each ingredient contributes
what its own export would hold: its EMA weights when it kept one.

    <out>/soup.json      the ingredients and their checkpoints
    <out>/export, <out>/submission.zip, <out>/metrics.json   as a run's
"""

from __future__ import annotations

import json
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from unibed.trainer import run as runs
from unibed.trainer.config import TrainConfig
from unibed.trainer.data import load_manifest, resolve_dataset
from unibed.trainer.ema import restore_final_weights
from unibed.trainer.export import export_saved_model, write_submission_zip
from unibed.trainer.model import build_models

# config keys that ingredients may differ in: how they were trained, not what they are
MAY_DIFFER = frozenset({
    "data_seed", "head_lr", "finetune_lr", "finetune_head_lr", "layer_decay", "weight_decay",
    "warmup_fraction", "head_steps", "finetune_steps", "head_epochs", "finetune_epochs",
    "optimizer", "augment", "dropout", "freeze_classifier", "ema_decay", "accumulate_steps",
    "mixed_precision", "class_cap", "class_min", "source_weights", "global_batch_size",
    "checkpoint_every_steps", "log_every_steps", "eval_batch_size", "tpu", "strategy",
    "backbone_path",
})


class SoupError(ValueError):
    """Runs that cannot be averaged into one model."""


def check_ingredients(workdirs: list[str], infos: list[tuple[TrainConfig, int]]) -> None:
    """Refuse fewer than two runs, or runs that differ in class count or model."""
    if len(workdirs) < 2:
        raise SoupError(f"a soup needs at least 2 runs, got {len(workdirs)}")
    first_config, first_classes = infos[0]
    base = first_config.to_dict()
    for workdir, (config, num_classes) in zip(workdirs[1:], infos[1:]):
        if num_classes != first_classes:
            raise SoupError(f"{workdir} has {num_classes} classes, {workdirs[0]} {first_classes}: "
                            "a soup averages runs of one label space")
        other = config.to_dict()
        diff = sorted(k for k in base.keys() | other.keys()
                      if k not in MAY_DIFFER and base.get(k) != other.get(k))
        if diff:
            raise SoupError(f"{workdir} differs from {workdirs[0]} in {diff}: a soup averages "
                            "runs of one model from one starting point")


def average_weights(checkpoints: list[str], ema_decays: list[float], config: TrainConfig,
                    num_classes: int):
    """The models with every float weight the mean of the ingredients' (integer
    ones, e.g. position ids, are equal in all and kept)."""
    keras.utils.set_random_seed(config.seed)
    models = build_models(config, num_classes, random_weights=True)
    weights = [v for v in models.training.weights if keras.backend.is_float_dtype(v.dtype)]
    sums = [np.zeros(v.shape, np.float64) for v in weights]
    for checkpoint, ema_decay in zip(checkpoints, ema_decays):
        restore_final_weights(models, ema_decay, checkpoint)
        for total, v in zip(sums, weights):
            total += v.numpy()
    for total, v in zip(sums, weights):
        v.assign((total / len(checkpoints)).astype(v.dtype))
    return models


def soup(workdirs: list[str], out: str, *, dataset: str | None = None,
         cache_dir: str | None = None, emit: Callable[[dict], None] = runs.emit_metric) -> dict:
    """Average the runs in `workdirs`, export under `out` and score on `dataset`
    (default: the dataset the first run's metrics.json names; none: export only)."""
    infos = [runs.read_run_info(w) for w in workdirs]
    check_ingredients(workdirs, infos)
    config, num_classes = infos[0]
    checkpoints = [runs.latest_checkpoint(w) for w in workdirs]
    models = average_weights(checkpoints, [c.ema_decay for c, _ in infos], config, num_classes)
    tf.io.gfile.makedirs(out)
    _write_json(_join(out, "soup.json"), {"ingredients": workdirs, "checkpoints": checkpoints,
                                          "config": config.to_dict(), "num_classes": num_classes})
    emit({"event": "soup", "ingredients": len(workdirs), "checkpoints": checkpoints, "out": out})
    dataset = dataset or _dataset_of(workdirs[0])
    if not dataset:
        export_dir = _join(out, "export")
        export_saved_model(models.embedding, config, export_dir)
        zip_path = write_submission_zip(export_dir, _join(out, "submission.zip"))
        emit({"event": "exported", "export_dir": export_dir, "zip": zip_path, "scored": False})
        return {"soup": workdirs, "checkpoints": checkpoints, "export_dir": export_dir}
    dataset_dir = resolve_dataset(dataset, cache_dir or runs.default_cache_dir())
    manifest = load_manifest(dataset_dir)
    metrics = {"soup": workdirs, "checkpoints": checkpoints,
               **runs.export_and_score(models.embedding, config, out, dataset_dir, manifest, emit)}
    _write_json(_join(out, "metrics.json"), metrics)
    emit({"event": "done", "metrics": _join(out, "metrics.json"), **runs.headline(metrics)})
    return metrics


def _join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts)


def _write_json(path: str, value: dict) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def _dataset_of(workdir: str) -> str | None:
    """The dataset a finished run was scored on (its metrics.json), if any."""
    path = _join(workdir, "metrics.json")
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f).get("dataset")
