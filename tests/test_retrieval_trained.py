"""The terminal search with a model the real trainer trained on the built sample.

`python -m trainer run --config tiny` trains on the sample build's train split
and exports the SavedModel; `search` then queries the train split with every
validation image. Same-class images must come first far more often than
chance. (Measured on this machine: top-1 same class 0.37, P@5 0.24 against a
chance of ~0.04. The untrained `tiny` network scores about the same on this
procedurally drawn sample - its random features already separate the classes'
colours and shapes - so the test does not demand a margin over it.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

METRIC = "UNIBED_METRIC "


@pytest.fixture(scope="session")
def trained_model(sample_build, tmp_path_factory) -> str:
    """The trainer's tiny model on the sample build, exported (a few minutes on a CPU)."""
    workdir = tmp_path_factory.mktemp("trainer-run")
    run = subprocess.run(
        [sys.executable, "-m", "trainer", "run", "--dataset", sample_build.output, "--workdir", str(workdir),
         "--config", "tiny", "--no-baseline"],
        check=False, capture_output=True, text=True, timeout=1500,
        cwd=os.path.dirname(os.path.dirname(__file__)))
    assert run.returncode == 0, run.stderr[-3000:]
    events = [json.loads(line[len(METRIC):]) for line in run.stdout.splitlines() if line.startswith(METRIC)]
    export_dir = next(e["export_dir"] for e in events if e.get("event") == "exported")
    assert os.path.isfile(os.path.join(export_dir, "saved_model.pb"))
    return export_dir


@pytest.mark.slow
def test_trained_model_finds_same_class_images_first(sample_build, trained_model, tmp_path, capsys):
    from unibed.retrieval.cli import main

    out = tmp_path / "report"
    code = main(["search", "--model", trained_model, "--gallery", sample_build.output,
                 "--gallery-split", "train", "--query-split", "validation", "-k", "5",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0

    manifest = sample_build.manifest
    gallery_counts = Counter({int(c): n for c, n in manifest.records_per_class["train"].items()})
    gallery_size = sum(gallery_counts.values())
    # each validation query with its label, and its top-1 match's label, from the printed table
    blocks = re.findall(r"^query (\S+)  \(label (\d+)\)\n\s+1\s+d=\S+\s+.+ \((\d+)\)\s+\w+\s+\S+$", stdout, re.MULTILINE)
    assert len(blocks) == manifest.splits["validation"].num_records
    top1 = sum(q_label == m_label for _, q_label, m_label in blocks) / len(blocks)
    # a random ranking's top-1 hits the query's class with probability (class's share of the gallery)
    chance = sum(gallery_counts[int(q_label)] for _, q_label, _ in blocks) / len(blocks) / gallery_size
    summary = re.search(r"validation queries: top-1 same label ([\d.]+), P@5 ([\d.]+)", stdout)
    assert summary and float(summary.group(1)) == pytest.approx(top1, abs=1e-3)
    print(f"trained tiny model: top-1 {top1:.3f}, P@5 {summary.group(2)}, chance {chance:.3f}")
    assert top1 >= max(0.25, 5 * chance)
    assert float(summary.group(2)) >= 3 * chance
    assert (out / "report.html").stat().st_size > 0 and (out / "contact_sheet.png").stat().st_size > 0
