"""Everything that uses the trained run (conftest's `trained_run`, about a minute
of training, in one module so that one test worker trains it once): the trainer's
own checks on it, then the terminal search with it.

The trainer through its command line on the generated sample: a tiny CLIP trained
for about a minute beats the same architecture untrained by a clear margin and
resumes after a stop.

The terminal search with a model the real trainer trained on the built sample.

`python -m unibed.trainer run --config tiny` trains on the sample build's train split
and exports the SavedModel; `search` then queries the train split with every
validation image. For most queries the top-1 match must have the query's
class, far above chance and above the same network untrained (exported the
way unibed/trainer/run.py exports its baseline). Measured on this machine: trained
top-1 0.63, P@5 0.64; untrained 0.40, 0.27; chance 0.035.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections import Counter

import pytest

from unibed.schemas.trainer_events import parse_events


@pytest.mark.slow
def test_tiny_clip_trained_on_the_sample_beats_untrained(sample_build, trained_run):
    # trained_run (conftest): `run --stop-at-step 100`, then the same command again
    workdir = trained_run.workdir
    events = parse_events(trained_run.stopped.stdout)
    assert events[-1]["event"] == "stopped" and events[-1]["global_step"] == 100
    assert not any(e["event"] == "exported" for e in events)

    events = parse_events(trained_run.resumed.stdout)
    resume = next(e for e in events if e["event"] == "resume")
    assert (resume["stage"], resume["step"]) == ("finetune", 50)  # head stage is 50 steps
    assert {e["stage"] for e in events if e["event"] == "train"} == {"finetune"}
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    trained, untrained = metrics["trained"]["mp_at_k"], metrics["untrained"]["mp_at_k"]
    print(f"\nsample mP@5: trained {trained:.3f}, untrained {untrained:.3f} "
          f"({metrics['global_step']} steps, {metrics['steps_run']} in the resumed call, "
          f"{metrics['ms_per_step']} ms/step)")
    assert metrics["completed"] and metrics["global_step"] == 450
    assert metrics["trained"]["num_queries"] == sample_build.manifest.splits["validation"].num_records
    assert trained >= untrained + 0.15
    final = events[-1]
    assert final["event"] == "done" and final["trained_mp_at_5"] == trained
    names = zipfile.ZipFile(os.path.join(workdir, "submission.zip")).namelist()
    assert "saved_model.pb" in names and "variables/variables.index" in names


@pytest.fixture(scope="session")
def trained_model(trained_run) -> str:
    """The trainer's tiny model on the sample build, exported (conftest's trained_run)."""
    assert os.path.isfile(os.path.join(trained_run.export_dir, "saved_model.pb"))
    return trained_run.export_dir


def _search(model: str, build: str, tmp, capsys) -> tuple[list[tuple[str, str, str]], float, float]:
    """The terminal search of the validation split against the train split:
    (query id, query label, top-1 label) per query, top-1 rate and P@5 as printed."""
    from unibed.cli.search import main

    out = tmp / "report"
    code = main(["search", "--model", model, "--gallery", build, "--gallery-split", "train",
                 "--query-split", "validation", "-k", "5", "--cache-dir", str(tmp / "cache"), "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert (out / "report.html").stat().st_size > 0 and (out / "contact_sheet.png").stat().st_size > 0
    blocks = re.findall(r"^query (\S+)  \(label (\d+)\)\n\s+1\s+d=\S+\s+.+ \((\d+)\)\s+\w+\s+\S+$",
                        stdout, re.MULTILINE)
    summary = re.search(r"validation queries: top-1 same label ([\d.]+), P@5 ([\d.]+)", stdout)
    assert summary, stdout[-1000:]
    return blocks, float(summary.group(1)), float(summary.group(2))


def _untrained_model(num_classes: int, path: str) -> str:
    """The tiny network at the weights training starts from, exported like the trained one."""
    import keras

    from unibed.trainer.config import get_config
    from unibed.trainer.export import export_saved_model
    from unibed.trainer.model import build_models

    config = get_config("tiny")
    keras.utils.set_random_seed(config.seed)
    export_saved_model(build_models(config, num_classes).embedding, config, path)
    return path


@pytest.mark.slow
def test_trained_model_finds_same_class_images_first(sample_build, trained_model, tmp_path, capsys):
    manifest = sample_build.manifest
    blocks, top1_printed, p5 = _search(trained_model, sample_build.output, tmp_path / "trained", capsys)
    assert len(blocks) == manifest.splits["validation"].num_records
    top1 = sum(q_label == m_label for _, q_label, m_label in blocks) / len(blocks)
    assert top1_printed == pytest.approx(top1, abs=1e-3)
    # a random ranking's top-1 hits the query's class with probability (class's share of the gallery)
    gallery_counts = Counter({int(c): n for c, n in manifest.records_per_class["train"].items()})
    chance = sum(gallery_counts[int(q)] for _, q, _ in blocks) / len(blocks) / sum(gallery_counts.values())

    untrained = _untrained_model(manifest.num_classes, str(tmp_path / "untrained-model"))
    _, top1_untrained, p5_untrained = _search(untrained, sample_build.output, tmp_path / "untrained", capsys)
    print(f"top-1 / P@5: trained {top1:.3f} / {p5:.3f}, untrained {top1_untrained:.3f} / "
          f"{p5_untrained:.3f}, chance {chance:.3f}")
    assert top1 > 0.5 and top1 > 5 * chance
    assert top1 > top1_untrained and p5 > p5_untrained + 0.1
