"""The trainer's input pipeline on the built sample: real shards, real TensorFlow,
and gs:// staging through the real GCS emulator."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from unibed.schemas.errors import SchemaError
from unibed.trainer.augment import AugmentConfig
from unibed.trainer.data import (
    DatasetError,
    eval_dataset,
    load_manifest,
    resolve_dataset,
    stage_dataset,
    train_dataset,
)

SIZE = 64  # small images keep the tests fast; the pipeline does not care


@pytest.fixture(scope="module")
def built(sample_build):
    return sample_build.output, load_manifest(sample_build.output)


def _first_batch(ds):
    images, labels = next(iter(ds))
    return images.numpy().astype(np.float32), labels.numpy()  # float: uint8 differences wrap around


def test_train_batches_have_the_promised_shapes_and_values(built):
    root, manifest = built
    ds = train_dataset(root, manifest, global_batch_size=8, image_size=SIZE, augment=AugmentConfig(), seed=0)
    for images, labels in ds.take(3):
        assert images.shape == (8, SIZE, SIZE, 3) and images.dtype == tf.uint8
        assert labels.shape == (8,) and labels.dtype == tf.int32
        assert int(tf.reduce_max(images)) > 1 and float(tf.math.reduce_std(tf.cast(images, tf.float32))) > 1.0
        assert ((labels >= 0) & (labels < manifest.num_classes)).numpy().all()


def test_uint8_batches_are_the_float32_batches_rounded(built):
    root, manifest = built

    def first(image_dtype):
        ds = train_dataset(root, manifest, global_batch_size=8, image_size=SIZE, augment=AugmentConfig(),
                           seed=3, image_dtype=image_dtype)
        return next(iter(ds))[0].numpy()

    as_uint8, as_float = first(tf.uint8), first(tf.float32)
    assert as_uint8.dtype == np.uint8 and as_float.dtype == np.float32
    assert 0.0 <= as_float.min() and as_float.max() <= 255.0
    assert (as_float != np.round(as_float)).mean() > 0.5  # float32 keeps the unrounded values
    np.testing.assert_array_equal(as_uint8, np.floor(as_float + np.float32(0.5)).astype(np.uint8))
    with pytest.raises(ValueError, match="image_dtype"):
        train_dataset(root, manifest, global_batch_size=8, image_size=SIZE, augment=AugmentConfig(),
                      seed=3, image_dtype=tf.float16)


def test_one_epoch_covers_every_train_record(built):
    root, manifest = built
    assert manifest.splits["train"].num_records == 253  # 11 x 23: no remainder to drop
    ds = train_dataset(root, manifest, global_batch_size=11, image_size=SIZE,
                       augment=AugmentConfig(), seed=5, repeat=False)
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert len(labels) == 253
    assert collections.Counter(labels.tolist()) == manifest.records_per_class["train"]


def test_same_seed_same_batches_and_augmentation_changes_pixels(built):
    root, manifest = built

    def first(augment, seed):
        return _first_batch(train_dataset(root, manifest, global_batch_size=8, image_size=SIZE,
                                          augment=augment, seed=seed))

    a_images, a_labels = first(AugmentConfig(), 7)
    b_images, b_labels = first(AugmentConfig(), 7)
    np.testing.assert_array_equal(a_labels, b_labels)
    np.testing.assert_array_equal(a_images, b_images)  # stateless per-image seeds: bit-identical
    _, c_labels = first(AugmentConfig(), 8)
    assert not np.array_equal(c_labels, a_labels)
    n_images, n_labels = first(AugmentConfig.none(), 7)
    np.testing.assert_array_equal(n_labels, a_labels)  # the order depends on the seed only
    assert np.abs(n_images - a_images).mean() > 5.0  # crops, flips and jitter moved pixels
    n2_images, _ = first(AugmentConfig.none(), 7)
    np.testing.assert_array_equal(n_images, n2_images)


def test_no_augmentation_is_the_central_square(built):
    root, manifest = built
    ds = train_dataset(root, manifest, global_batch_size=4, image_size=SIZE, augment=AugmentConfig.none(), seed=0)
    images, _ = _first_batch(ds)
    views = {  # the eval view of every train record (shorter side to S, centre crop)
        hashlib.sha1(img.tobytes()).hexdigest(): img
        for batch in eval_dataset(root, manifest, "train", batch_size=64, image_size=SIZE)
        for img in batch["image"].numpy()
    }
    for image in images:  # same crop, different resize filter: close to one eval view, far from the rest
        distances = sorted(np.abs(v.astype(np.float32) - image).mean() for v in views.values())
        assert distances[0] < 8.0 and distances[0] < 0.35 * distances[len(distances) // 2], distances[:3]


def test_every_augmentation_option_gives_valid_images(built):
    from dataclasses import replace

    from unibed.trainer.augment import augment_jpeg

    root, manifest = built
    record = next(iter(tf.data.TFRecordDataset(os.path.join(root, manifest.splits["train"].shards[0].path))))
    encoded = tf.io.parse_single_example(record, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})["image/encoded"]
    seed = tf.constant([1, 2], tf.int64)
    for config in (AugmentConfig(), AugmentConfig.none(), replace(AugmentConfig(), saturation=0.4, hue=0.1),
                   AugmentConfig(crop_scale=(0.05, 0.1), crop_ratio=(0.5, 2.0), brightness=0.5, contrast=0.5)):
        image = augment_jpeg(encoded, 48, config, seed).numpy()
        assert image.shape == (48, 48, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 255.0 and image.std() > 1.0
        cropped = augment_jpeg(encoded, 48, config, seed, crop_decode=False).numpy()
        np.testing.assert_allclose(image, cropped, atol=1e-3)  # the crop window decodes to the same pixels
    for bad in ({"crop_scale": (0.0, 1.0)}, {"crop_ratio": (2.0, 1.0)}, {"brightness": 1.0}, {"hue": 0.6}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            AugmentConfig(**bad)


@pytest.mark.parametrize("saturation", [0.0, 0.3])
def test_folded_colour_jitter_equals_the_op_by_op_definitions(saturation):
    from unibed.trainer.augment import _color_jitter

    config = AugmentConfig(brightness=0.2, contrast=0.3, saturation=saturation)
    image = tf.random.stateless_uniform([16, 16, 3], [1, 2], 0.0, 255.0)
    seeds = tf.random.experimental.stateless_split(tf.constant([3, 4], tf.int64), num=4)
    got = _color_jitter(image, config, seeds)
    b = 255.0 * tf.random.stateless_uniform([], seeds[0], -0.2, 0.2)
    c = tf.random.stateless_uniform([], seeds[1], 0.7, 1.3)
    x = image + b  # brightness
    mean = tf.reduce_mean(x, axis=[0, 1])
    x = mean + c * (x - mean)  # contrast around each channel's mean
    if saturation:
        s = tf.random.stateless_uniform([], seeds[2], 0.7, 1.3)
        grey = tf.image.rgb_to_grayscale(x)
        x = grey + s * (x - grey)  # saturation around the grey image
    np.testing.assert_allclose(got.numpy(), x.numpy(), atol=1e-3)
    assert np.abs(got.numpy() - image.numpy()).mean() > 1.0


def test_labels_outside_the_label_space_stop_the_pipeline(built):
    root, manifest = built
    small = manifest.model_copy(update={"num_classes": 5})  # as if the label space were 0..4
    ds = train_dataset(root, small, global_batch_size=64, image_size=SIZE, augment=AugmentConfig.none(), seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label out of range"):
        for _ in ds.take(4):
            pass


def test_eval_dataset_yields_every_record_in_stored_order(built):
    root, manifest = built
    batches = list(eval_dataset(root, manifest, "validation", batch_size=7, image_size=SIZE))
    assert [len(b["label"]) for b in batches] == [7, 7, 7, 7, 2]  # 30 records, last batch partial
    first = batches[0]
    assert first["image"].dtype == tf.uint8 and first["image"].shape == (7, SIZE, SIZE, 3)
    assert first["label"].dtype == tf.int64 and first["source"].dtype == tf.string
    ids = [i.decode() for b in batches for i in b["image_id"].numpy()]
    sources = [s.decode() for b in batches for s in b["source"].numpy()]
    labels = [int(v) for b in batches for v in b["label"].numpy()]
    # stored order: the validation shards read with the raw Example proto, one after another
    raw = []
    for shard in manifest.splits["validation"].shards:
        for record in tf.data.TFRecordDataset(os.path.join(root, shard.path)):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            raw.append(feature["image/id"].bytes_list.value[0].decode())
    assert ids == raw and len(set(ids)) == 30
    assert all(i.split("/", 1)[0] == s for i, s in zip(ids, sources, strict=True))
    assert collections.Counter(sources) == manifest.records_per_source["validation"]
    assert collections.Counter(labels) == manifest.records_per_class["validation"]
    for label, source in zip(labels, sources, strict=True):
        first_id, last_id = manifest.label_ranges[source]
        assert first_id <= label <= last_id


def test_unknown_or_empty_splits_fail_clearly(built):
    root, manifest = built
    with pytest.raises(DatasetError, match=r"split 'test' not in the dataset \(it has \['train', 'validation'\]\)"):
        eval_dataset(root, manifest, "test", batch_size=4, image_size=SIZE)
    empty = manifest.model_copy(update={"splits": {**manifest.splits, "validation": manifest.splits["validation"]
                                                   .model_copy(update={"num_records": 0, "shards": ()})}})
    with pytest.raises(DatasetError, match="split 'validation' has no records"):
        train_dataset(root, empty, split="validation", global_batch_size=4, image_size=SIZE,
                      augment=AugmentConfig(), seed=0)


def test_missing_shard_or_manifest_fails_clearly(built, tmp_path):
    root, manifest = built
    copy = str(tmp_path / "copy")
    shutil.copytree(root, copy)
    os.remove(os.path.join(copy, "train-00003-of-00009.tfrecord"))
    with pytest.raises(DatasetError, match=r"1 of 9 train shards .* missing.*train-00003-of-00009"):
        train_dataset(copy, manifest, global_batch_size=8, image_size=SIZE, augment=AugmentConfig(), seed=0)
    with pytest.raises(DatasetError, match="no manifest.json in"):
        load_manifest(str(tmp_path))
    with open(os.path.join(copy, "manifest.json")) as f:
        doc = json.load(f)
    doc["num_classes"] = 0
    with open(os.path.join(copy, "manifest.json"), "w") as f:
        json.dump(doc, f)
    with pytest.raises(SchemaError, match="num_classes"):
        load_manifest(copy)


def test_local_and_plain_gcs_locations_are_returned_unchanged(monkeypatch, tmp_path):
    assert resolve_dataset("/data/build", str(tmp_path)) == "/data/build"
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    assert resolve_dataset("gs://bucket/build", str(tmp_path)) == "gs://bucket/build"
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------- gs:// through the emulator


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def gcs_build(gcs_emulator, built):
    from gcs_emulator import upload_tree

    gcs_emulator.create_bucket("unibed-trainer")
    return upload_tree(built[0], "gs://unibed-trainer/builds/sample")


def test_resolve_stages_and_verifies_a_gcs_dataset(gcs_build, built, tmp_path):
    _, manifest = built
    cache = str(tmp_path / "cache")
    with pytest.raises(DatasetError, match="call unibed.trainer.data.resolve_dataset"):
        load_manifest(gcs_build)  # TensorFlow's gs:// cannot reach the emulator
    local = resolve_dataset(gcs_build, cache)
    assert local == os.path.join(cache, "unibed-trainer", "builds", "sample")
    staged = load_manifest(local)
    assert staged == manifest
    for split in manifest.splits.values():
        for shard in split.shards:
            assert _sha256(os.path.join(local, shard.path)) == shard.sha256
    assert _sha256(os.path.join(local, "label_map.csv")) == manifest.label_map_sha256
    assert not any(".partial-" in name for name in os.listdir(local))
    images, labels = _first_batch(train_dataset(local, staged, global_batch_size=8, image_size=SIZE,
                                                augment=AugmentConfig(), seed=0))
    assert images.shape == (8, SIZE, SIZE, 3) and labels.max() < manifest.num_classes

    again = stage_dataset(gcs_build, cache)
    assert again.path == local and again.copied == []
    assert len(again.kept) == 2 + sum(len(s.shards) for s in manifest.splits.values())  # + label map, manifest
    # a staged file that was damaged locally (sidecar no longer matches) is copied again
    with open(os.path.join(local, "validation-00000-of-00001.tfrecord.sha256"), "w") as f:
        f.write("0" * 64)
    assert stage_dataset(gcs_build, cache).copied == ["validation-00000-of-00001.tfrecord"]


def test_staging_refuses_corrupt_and_missing_shards(gcs_emulator, built, tmp_path):
    from gcs_emulator import upload_tree
    from google.cloud import storage

    root, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shard = copy / "train-00002-of-00009.tfrecord"
    data = bytearray(shard.read_bytes())
    data[1000] ^= 0xFF  # one flipped byte, same size
    shard.write_bytes(bytes(data))
    gcs_emulator.create_bucket("unibed-trainer-bad")
    url = upload_tree(str(copy), "gs://unibed-trainer-bad/corrupt")
    cache = str(tmp_path / "cache")
    with pytest.raises(DatasetError, match=r"train-00002-of-00009.tfrecord: sha256 \w+ does not match"):
        resolve_dataset(url, cache)
    staged = os.path.join(cache, "unibed-trainer-bad", "corrupt")
    assert not os.path.exists(os.path.join(staged, "train-00002-of-00009.tfrecord"))
    assert not os.path.exists(os.path.join(staged, "manifest.json"))  # never looks complete
    assert not any(".partial-" in name for name in os.listdir(staged))

    storage.Client().bucket("unibed-trainer-bad").blob("corrupt/train-00002-of-00009.tfrecord").delete()
    with pytest.raises(DatasetError, match="train-00002-of-00009.tfrecord is listed in the manifest but does not exist"):
        resolve_dataset(url, cache)
    with pytest.raises(DatasetError, match="no manifest.json at gs://unibed-trainer-bad/elsewhere"):
        resolve_dataset("gs://unibed-trainer-bad/elsewhere", cache)
