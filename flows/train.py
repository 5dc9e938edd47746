"""Prefect flow `train`: train -> export -> evaluate, by the bundled trainer.

The trainer runs as its own process (`python -m trainer run ...`): TensorFlow
configures devices once per process (TPU, GPUs, logical CPU replicas), holds
its memory until exit, and a flow worker should survive a crashed trainer.
The trainer prints one `UNIBED_METRIC {json}` line per event; this flow relays
them to the run log, and attaches the scores (trained vs untrained, per
source) as a markdown artifact. The trainer resumes from its own checkpoints,
so rerunning the flow with the same workdir continues where it stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

METRIC_PREFIX = "UNIBED_METRIC "


class TrainerFailed(RuntimeError):
    pass


def trainer_command(dataset: str, workdir: str, config: str, overrides: list[str] | None,
                    steps: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "trainer", "run", "--dataset", dataset, "--workdir", workdir,
           "--config", config]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    for item in overrides or []:
        cmd += ["--set", item]
    return cmd


def _log_event(logger, event: dict) -> None:
    kind = event.get("event", "metric")
    details = " ".join(f"{k}={v}" for k, v in event.items() if k != "event" and not isinstance(v, dict))
    logger.info("trainer %s: %s", kind, details)


@task(name="train-export-evaluate", cache_policy=NO_CACHE)
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
            if line.startswith(METRIC_PREFIX):
                event = json.loads(line[len(METRIC_PREFIX):])
                events.append(event)
                _log_event(logger, event)
            else:
                tail.append(line)
                logger.debug("%s", line)
        code = proc.wait()
    if code != 0:
        last = "\n".join(tail)
        raise TrainerFailed(f"trainer exited with code {code} (dataset {dataset}, workdir {workdir}):\n{last}")
    return events


def read_metrics(workdir: str) -> dict:
    """The trainer's `<workdir>/metrics.json` (local or gs://, read with Beam-free IO)."""
    if "://" in workdir:
        from unibed import storage

        return json.loads(storage.read_text(workdir.rstrip("/") + "/metrics.json"))
    with open(os.path.join(workdir, "metrics.json")) as f:
        return json.load(f)


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
    return "\n".join(lines)


@flow(name="train")
def train_flow(dataset: str, workdir: str, config: str = "tiny", overrides: list[str] | None = None,
               steps: int | None = None) -> dict:
    """Train on a built dataset (folder or gs:// holding manifest.json), export
    the 64-d embedding model under `<workdir>/export`, and score it with mP@5.
    `steps` = total training steps over both stages (default: the config's)."""
    logger = get_run_logger()
    run_trainer(dataset, workdir, config, overrides, steps)
    metrics = read_metrics(workdir)
    trained, untrained = metrics["trained"], metrics["untrained"]
    logger.info("mP@%d trained %.3f, untrained %.3f", trained.get("k", 5), trained["mp_at_k"], untrained["mp_at_k"])
    for source, score in sorted(trained["per_source"].items()):
        logger.info("mP@%d %s: %.3f", trained.get("k", 5), source, score)
    create_markdown_artifact(scores_markdown(metrics, dataset, workdir), key="retrieval-scores",
                             description="mP@5 trained vs untrained, per source")
    return metrics
