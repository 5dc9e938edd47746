"""Prefect flow `train`: train -> export -> evaluate, by the bundled trainer.

The trainer runs as its own process (`python -m unibed.trainer run ...`): TensorFlow
configures devices once per process (TPU, GPUs, logical CPU replicas), holds
its memory until exit, and a flow worker should survive a crashed trainer.
The trainer prints one `UNIBED_METRIC {json}` line per event; this flow relays
them to the run log, and attaches the scores (trained vs untrained, per
source) as a markdown artifact. The trainer resumes from its own checkpoints,
so rerunning the flow with the same workdir continues where it stopped; a
trainer killed by a signal (preempted, OOM) is retried that way, one that
exits with an error (bad config, bad dataset) is not.

Parameters are checked before the trainer starts (the dataset holds
manifest.json, the config is a preset or a .json file, overrides are
key=value). Artifacts: `retrieval-scores` (markdown), `mp-at-5-per-source`
(table), `training-curves` (markdown table of the logged steps) and
`training-curves-plot` (PNG line plot).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import deque

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from unibed.flows import artifacts
from unibed.flows.retries import retry_settings
from unibed.flows.stages import ParameterError, stage
from unibed.schemas.trainer_events import parse_event

FLOW = "train"
# unibed/trainer/config.py PRESET_NAMES (not imported: TensorFlow)
PRESETS = ("tiny", "vit_h14", "vit_l14", "vit_l14_336", "vit_g14", "guie_1st", "guie_2nd", "guie_4th", "unibed_best")
_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=.*$")


class TrainerFailed(RuntimeError):
    """The trainer process failed. `transient`: it was killed by a signal
    (preemption, OOM killer), so a rerun that resumes from checkpoints may pass;
    an error exit (bad config or dataset) will fail the same way again."""

    def __init__(self, message: str, returncode: int):
        super().__init__(message)
        self.returncode = returncode
        self.transient = returncode < 0


def trainer_command(dataset: str, workdir: str, config: str, overrides: list[str] | None,
                    steps: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "unibed.trainer", "run", "--dataset", dataset, "--workdir", workdir,
           "--config", config]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    for item in overrides or []:
        cmd += ["--set", item]
    return cmd


def _exists(path: str) -> bool:
    from unibed.dataplane import storage

    return storage.exists(path)


def check_parameters(dataset: str, workdir: str, config: str, overrides: list[str] | None,
                     steps: int | None) -> None:
    """What can be checked before the trainer (and TensorFlow) starts."""
    for name, value in (("dataset", dataset), ("workdir", workdir)):
        if not value or ("://" in value and not value.startswith("gs://")):
            raise ParameterError(FLOW, name, f"{value!r} must be a local path or a gs:// URL")
    if not _exists(dataset.rstrip("/") + "/manifest.json"):
        raise ParameterError(FLOW, "dataset", f"{dataset} holds no manifest.json: not a built "
                             "dataset (build it first with build-dataset)")
    if config not in PRESETS and not (config.endswith(".json") and _exists(config)):
        raise ParameterError(FLOW, "config", f"{config!r} is neither a preset {PRESETS} nor an "
                             "existing .json config file")
    bad = [o for o in overrides or [] if not _OVERRIDE.match(o)]
    if bad:
        raise ParameterError(FLOW, "overrides", f"each must be key=value, got {bad}")
    if steps is not None and steps < 1:
        raise ParameterError(FLOW, "steps", f"must be >= 1, got {steps}")


def _log_event(logger, event: dict) -> None:
    kind = event.get("event", "metric")
    details = " ".join(f"{k}={v}" for k, v in event.items() if k != "event" and not isinstance(v, dict))
    logger.info("trainer %s: %s", kind, details)


@task(name="train-export-evaluate", cache_policy=NO_CACHE, **retry_settings(retries=2))
def run_trainer(dataset: str, workdir: str, config: str, overrides: list[str] | None,
                steps: int | None = None) -> list[dict]:
    """Run the trainer process; relay its metric lines; fail with its last words."""
    logger = get_run_logger()
    cmd = trainer_command(dataset, workdir, config, overrides, steps)
    logger.info("running %s", " ".join(cmd))
    events, tail = [], deque(maxlen=40)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, bufsize=1) as proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            event = parse_event(line)
            if event is not None:
                events.append(event)
                _log_event(logger, event)
            else:
                tail.append(line)
                logger.debug("%s", line)
        code = proc.wait()
    if code != 0:
        last = "\n".join(tail)
        errors = [line for line in tail if line.startswith("error:")]
        why = errors[-1] if errors else f"last output:\n{last}"
        raise TrainerFailed(f"trainer exited with code {code} (dataset {dataset}, workdir {workdir}): {why}", code)
    return events


def read_metrics(workdir: str) -> dict:
    """The trainer's `<workdir>/metrics.json` (local or gs://)."""
    from unibed.dataplane import storage

    return json.loads(storage.read_text(storage.join(workdir, "metrics.json")))


def scores_markdown(metrics: dict, dataset: str, workdir: str) -> str:
    trained, untrained = metrics["trained"], metrics["untrained"]
    k = trained.get("k", 5)
    lines = [
        f"# Retrieval scores (mP@{k})",
        "",
        (f"dataset `{dataset}`, model in `{workdir}`; {trained['num_queries']} queries "
        f"against {trained['num_index']} index images"),
        "",
        "| | all | " + " | ".join(sorted(trained["per_source"])) + " |",
        "|---|---|" + "---|" * len(trained["per_source"]),
    ]
    for name, result in (("trained", trained), ("untrained (same architecture)", untrained)):
        per = " | ".join(f"{result['per_source'].get(s, float('nan')):.3f}" for s in sorted(trained["per_source"]))
        lines.append(f"| {name} | {result['mp_at_k']:.3f} | {per} |")
    return "\n".join(lines + open_set_markdown(metrics))


def open_set_markdown(metrics: dict) -> list[str]:
    """The open-set scores (classes never trained on), when the build had an evaluation split."""
    opened = metrics.get("open_set")
    if not opened:
        return []
    trained = opened["trained"]
    domains = sorted(trained["per_source"])
    lines = ["", f"## Open set: classes the model never trained on (mP@{trained.get('k', 5)})", "",
             (f"{trained['num_queries']} queries against {trained['num_index']} index images "
              f"({trained['queries_without_match']} queries without a relevant index image, left out)"), "",
             "| | all | " + " | ".join(domains) + " |", "|---|---|" + "---|" * len(domains)]
    for name, result in sorted(opened.items()):
        per = " | ".join(f"{result['per_source'].get(d, float('nan')):.3f}" for d in domains)
        lines.append(f"| {name} | {result['mp_at_k']:.3f} | {per} |")
    return lines


def curve_points(events: list[dict]) -> list[dict]:
    """The logged training steps, one per global step (a resumed run logs again)."""
    points = {e["global_step"]: e for e in events if e.get("event") == "train" and "global_step" in e}
    return [points[k] for k in sorted(points)]


def curves_markdown(points: list[dict]) -> str:
    lines = ["# Training curves", "", "| stage | step | global step | loss | accuracy | lr |",
             "|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.get('stage', '')} | {p.get('step', '')} | {p['global_step']} | {p['loss']:.4f} "
                     f"| {p.get('accuracy', float('nan')):.4f} | {p.get('lr', float('nan')):.2e} |")
    return "\n".join(lines)


def per_source_rows(metrics: dict) -> list[dict]:
    trained, untrained = metrics["trained"], metrics.get("untrained") or {}
    k = trained.get("k", 5)
    opened = metrics.get("open_set") or {}
    rows = []
    for source in sorted(set(trained["per_source"]) | set(opened.get("trained", {}).get("per_source", {}))) + ["all"]:
        get = (lambda r, s=source: r.get("mp_at_k") if s == "all" else r.get("per_source", {}).get(s))
        row = {"source": source, f"trained mP@{k}": get(trained), f"untrained mP@{k}": get(untrained)}
        if opened:
            row |= {f"trained open-set mP@{k}": get(opened.get("trained", {})),
                    f"untrained open-set mP@{k}": get(opened.get("untrained", {}))}
        rows.append(row)
    return rows


def attach_artifacts(events: list[dict], metrics: dict, dataset: str, workdir: str) -> None:
    create_markdown_artifact(scores_markdown(metrics, dataset, workdir), key="retrieval-scores",
                             description="mP@5 trained vs untrained, per source")
    create_table_artifact(per_source_rows(metrics), key="mp-at-5-per-source",
                          description=f"mP@5 per source of the model in {workdir}")
    points = curve_points(events)
    if points:
        create_markdown_artifact(curves_markdown(points), key="training-curves",
                                 description="loss and accuracy per logged step")
        create_image_artifact(artifacts.png_data_uri(artifacts.curve_png(points)), key="training-curves-plot",
                              description="loss (blue) and accuracy (orange) by global step")


@flow(name=FLOW)
def train_flow(dataset: str, workdir: str, config: str = "tiny", overrides: list[str] | None = None,
               steps: int | None = None) -> dict:
    """Train on a built dataset (folder or gs:// holding manifest.json), export
    the 64-d embedding model under `<workdir>/export`, and score it with mP@5.
    `overrides`: config fields as key=value; `steps`: total training steps."""
    logger = get_run_logger()
    check_parameters(dataset, workdir, config, overrides, steps)
    where = {"dataset": dataset, "workdir": workdir}
    with stage(FLOW, "train-export-evaluate", **where):
        events = run_trainer(dataset, workdir, config, overrides, steps)
    with stage(FLOW, "read-metrics", **where):
        metrics = read_metrics(workdir)
        trained, untrained = metrics["trained"], metrics["untrained"]
    logger.info("mP@%d trained %.3f, untrained %.3f", trained.get("k", 5), trained["mp_at_k"], untrained["mp_at_k"])
    for source, score in sorted(trained["per_source"].items()):
        logger.info("mP@%d %s: %.3f", trained.get("k", 5), source, score)
    for name, result in sorted((metrics.get("open_set") or {}).items()):
        per = ", ".join(f"{d} {v:.3f}" for d, v in sorted(result["per_source"].items()))
        logger.info("open-set mP@%d (classes never trained on) %s %.3f (%s)", result.get("k", 5), name,
                    result["mp_at_k"], per)
    try:
        attach_artifacts(events, metrics, dataset, workdir)
    except Exception as e:  # noqa: BLE001 - the model is exported and scored; artifacts are extra
        logger.warning("artifacts not attached: %s: %s", type(e).__name__, e)
    return metrics
