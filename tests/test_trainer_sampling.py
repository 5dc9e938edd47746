"""Class caps, up-sampling and source shares at training time, on the built
sample's real shards (30 classes of 2-13 train images in three sources)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tensorflow as tf

from unibed.schemas import features
from unibed.trainer.augment import AugmentConfig
from unibed.trainer.config import TrainConfig
from unibed.trainer.data import load_manifest, train_dataset, train_records
from unibed.trainer.features import parse_spec
from unibed.trainer.run import train_sampling
from unibed.trainer.sampling import SamplingError, class_target, sampling_plan

CAP, MIN = 6, 4
WEIGHTS = "gldv2=2,imagenet=1,products10k=1"  # gldv2 half of every epoch
EPOCHS = 40


@pytest.fixture(scope="module")
def built(sample_build):
    return sample_build.output, load_manifest(sample_build.output)


def _plan(manifest, **kw):
    return sampling_plan(manifest.records_per_class["train"], manifest.label_ranges,
                         manifest.num_classes, **kw)


def _stream(root, manifest, plan, seed, n):
    """(labels, image ids) of the first n sampled records."""
    records = train_records(root, manifest, seed=seed, class_rates=plan.rates)
    spec = parse_spec((features.LABEL, features.IMAGE_ID))
    parsed = records.batch(1024).map(lambda s: tf.io.parse_example(s, spec))
    labels, ids = [], []
    for batch in parsed.take(-(-n // 1024)):
        labels.extend(batch[features.LABEL].numpy().tolist())
        ids.extend(batch[features.IMAGE_ID].numpy().tolist())
    return labels[:n], ids[:n]


def test_the_plan_caps_upsamples_and_shares_the_sources(built):
    _, manifest = built
    counts = manifest.records_per_class["train"]
    assert [class_target(n, CAP, MIN) for n in (2, 5, 13, 0)] == [4, 5, 6, 0]
    assert _plan(manifest) is None  # nothing set: the stored stream, untouched
    capped = _plan(manifest, class_cap=CAP, class_min=MIN)
    assert capped.epoch_size == sum(class_target(n, CAP, MIN) for n in counts.values())
    for c, n in counts.items():
        assert capped.rates[c] * n == pytest.approx(class_target(n, CAP, MIN))
    shared = _plan(manifest, class_cap=CAP, class_min=MIN, source_weights=WEIGHTS)
    assert shared.epoch_size == capped.epoch_size  # the epoch keeps its size
    assert shared.per_source["gldv2"] == pytest.approx(shared.epoch_size / 2, abs=0.5)
    assert shared.per_source["imagenet"] == pytest.approx(shared.per_source["products10k"])
    assert train_sampling(manifest, TrainConfig(class_cap=CAP, class_min=MIN,
                                                source_weights=WEIGHTS)) == shared  # run's wiring
    dropped = _plan(manifest, source_weights="gldv2=0,imagenet=1,products10k=1")
    lo, hi = manifest.label_ranges["gldv2"]
    assert all(r == 0 for r in dropped.rates[lo:hi + 1]) and dropped.per_source["gldv2"] == 0
    with pytest.raises(SamplingError, match=r"no weight for \['products10k'\]"):
        _plan(manifest, source_weights="gldv2=1,imagenet=1")
    with pytest.raises(SamplingError, match=r"names \['shopee'\]"):
        _plan(manifest, source_weights="gldv2=1,imagenet=1,products10k=1,shopee=1")


def test_sampled_labels_follow_caps_and_shares_and_the_seed_fixes_the_order(built):
    root, manifest = built
    plan = _plan(manifest, class_cap=CAP, class_min=MIN, source_weights=WEIGHTS)
    n = EPOCHS * plan.epoch_size
    labels, ids = _stream(root, manifest, plan, seed=3, n=n)
    per_class = collections.Counter(labels)
    counts = manifest.records_per_class["train"]
    for c, count in counts.items():  # each record's copies are Bernoulli: sd <= sqrt(n_c / 4) an epoch
        expected = EPOCHS * plan.rates[c] * count
        assert abs(per_class[c] - expected) <= 5 * np.sqrt(EPOCHS * count / 4) + 1, c
    source_of = {c: s for s, (lo, hi) in manifest.label_ranges.items() for c in range(lo, hi + 1)}
    shares = collections.Counter(source_of[c] for c in labels)
    assert shares["gldv2"] / n == pytest.approx(0.5, abs=0.03)
    assert shares["imagenet"] / n == pytest.approx(0.25, abs=0.03)
    biggest = max(counts, key=counts.get)  # capped at 6 an epoch, yet every image shows up
    assert counts[biggest] > CAP
    assert len({i for c, i in zip(labels, ids) if c == biggest}) == counts[biggest]

    again, _ = _stream(root, manifest, plan, seed=3, n=500)
    other, _ = _stream(root, manifest, plan, seed=4, n=500)
    assert again == labels[:500] and other != again


def test_train_batches_come_from_the_sampled_stream(built):
    root, manifest = built
    plan = _plan(manifest, source_weights="gldv2=0,imagenet=1,products10k=0")
    ds = train_dataset(root, manifest, global_batch_size=16, image_size=32,
                       augment=AugmentConfig.none(), seed=0, class_rates=plan.rates)
    images, labels = next(iter(ds))
    lo, hi = manifest.label_ranges["imagenet"]
    assert images.shape == (16, 32, 32, 3) and ((labels >= lo) & (labels <= hi)).numpy().all()
