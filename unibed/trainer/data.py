"""The trainer's input pipeline: a built dataset (manifest.json + shards) -> tf.data.

Shards are the ones the manifest lists, never a glob: a folder holding a
stale or partial shard cannot leak into training.

Determinism (`train_dataset`): with the same seed, TF version and dataset,
the sequence of batches is identical run to run. The file order per epoch
and the record shuffle are seeded; the parallel interleave and map keep
their deterministic order (tf.data's default, and set explicitly);
augmentation uses stateless ops fed per-image seeds drawn from a seeded
`Dataset.random` zipped in after the shuffle, so which thread decodes which
image does not matter. Not deterministic: a trainer that sets
`options.deterministic = False` for speed, tf.data service or
multi-worker auto-sharding (each worker's order depends on its shard), and
different TF versions (stateless RNG and resize kernels may change).

Local staging (`resolve_dataset`): TensorFlow's own gs:// filesystem cannot
be pointed at a GCS emulator (its hosts are hard-coded), so under
STORAGE_EMULATOR_HOST a gs:// dataset is copied into a local cache with
google-cloud-storage and every file is checked against the manifest's
sha256. In production gs:// paths go to TensorFlow unchanged.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass, field

import tensorflow as tf

from unibed.schemas import features
from unibed.schemas.errors import SchemaError
from unibed.schemas.manifest import Manifest
from unibed.trainer.augment import AugmentConfig, augment_jpeg, center_crop_uint8
from unibed.trainer.features import parse_example

MANIFEST = "manifest.json"
AUTOTUNE = tf.data.AUTOTUNE
_EVAL_KEYS = (features.ENCODED, features.LABEL, features.SOURCE, features.IMAGE_ID)


class DatasetError(ValueError):
    """A dataset that cannot be read as asked: missing split, shard, manifest, bad label."""


# ---------------------------------------------------------------- location & manifest


def _join(root: str, relative: str) -> str:
    if relative.startswith("/") or ".." in relative.split("/"):
        raise DatasetError(f"manifest path {relative!r} must be relative and stay inside the dataset")
    return posixpath.join(root, relative) if "://" in root else os.path.join(root, relative)


def load_manifest(dataset_dir: str) -> Manifest:
    """Read and validate `dataset_dir/manifest.json` (local or gs://, via tf.io.gfile)."""
    _refuse_unreachable_gcs(dataset_dir)
    path = _join(dataset_dir, MANIFEST)
    if not tf.io.gfile.exists(path):
        raise DatasetError(
            f"no {MANIFEST} in {dataset_dir}: not a built dataset, or its build has not been "
            "published yet (the manifest is written last)"
        )
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    return Manifest.from_json(text, where=path)  # SchemaError names the bad field


def _refuse_unreachable_gcs(location: str) -> None:
    if location.startswith("gs://") and os.environ.get("STORAGE_EMULATOR_HOST"):
        raise DatasetError(
            f"{location}: STORAGE_EMULATOR_HOST is set, and TensorFlow's gs:// filesystem cannot "
            "reach an emulator; call unibed.trainer.data.resolve_dataset(location, cache_dir) first"
        )


@dataclass
class StageReport:
    """What `stage_dataset` did: the local folder, and which files it copied or kept."""

    path: str
    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def resolve_dataset(location: str, cache_dir: str) -> str:
    """A path TensorFlow can read for the dataset at `location`.

    Local paths and gs:// URLs come back as they are, except a gs:// URL while
    STORAGE_EMULATOR_HOST is set: that one is staged into `cache_dir` (see
    `stage_dataset`) and the local folder is returned.
    """
    if location.startswith("gs://") and os.environ.get("STORAGE_EMULATOR_HOST"):
        return stage_dataset(location, cache_dir).path
    return location


def stage_dataset(url: str, cache_dir: str) -> StageReport:
    """Copy manifest.json, the label map and the manifest's shards from gs:// into
    `cache_dir/<bucket>/<prefix>`, checking each file's sha256 against the manifest.

    Files already staged and verified (a `.sha256` sidecar matching the
    manifest, same size) are kept, so a second call copies nothing. Each file
    is downloaded to a temporary name and renamed only once verified; the
    manifest is written last, so a staged folder with a manifest is complete.
    """
    from google.cloud import storage  # lazily: only staging needs it

    bucket_name, _, prefix = url.removeprefix("gs://").partition("/")
    prefix = prefix.strip("/")
    if not bucket_name:
        raise DatasetError(f"{url}: no bucket in the URL")
    local_root = os.path.join(cache_dir, bucket_name, *filter(None, prefix.split("/")))
    os.makedirs(local_root, exist_ok=True)
    bucket = storage.Client().bucket(bucket_name)

    def blob_name(relative: str) -> str:
        return "/".join(filter(None, [prefix, relative]))

    manifest_blob = bucket.blob(blob_name(MANIFEST))
    if not manifest_blob.exists():
        raise DatasetError(f"no {MANIFEST} at {url}: not a built dataset, or not published yet")
    manifest_bytes = manifest_blob.download_as_bytes()
    manifest = Manifest.from_json(manifest_bytes.decode("utf-8"), where=f"{url}/{MANIFEST}")

    report = StageReport(local_root)
    local_manifest = _join(local_root, MANIFEST)
    if _read(local_manifest) not in (None, manifest_bytes):
        os.remove(local_manifest)  # another build now: the folder must not look complete while it changes
    wanted = [(manifest.label_map, manifest.label_map_sha256, None)]
    wanted += [(s.path, s.sha256, s.num_bytes) for split in manifest.splits.values() for s in split.shards]
    for relative, sha256, size in wanted:
        target = _join(local_root, relative)
        if _staged(target, sha256, size):
            report.kept.append(relative)
            continue
        _download_verified(bucket.blob(blob_name(relative)), target, sha256, f"gs://{bucket_name}/{blob_name(relative)}")
        report.copied.append(relative)

    if _read(local_manifest) == manifest_bytes:
        report.kept.append(MANIFEST)
    else:
        _write_atomic(local_manifest, manifest_bytes)
        report.copied.append(MANIFEST)
    return report


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.partial-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _staged(target: str, sha256: str, size: int | None) -> bool:
    sidecar = _read(target + ".sha256")
    if sidecar is None or sidecar.decode().strip() != sha256 or not os.path.exists(target):
        return False
    return size is None or os.path.getsize(target) == size


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_verified(blob, target: str, sha256: str, where: str) -> None:
    from google.api_core.exceptions import NotFound

    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.partial-{os.getpid()}"
    try:
        blob.download_to_filename(tmp)
    except NotFound:
        _remove(tmp)
        raise DatasetError(f"{where} is listed in the manifest but does not exist") from None
    actual = _sha256_file(tmp)
    if actual != sha256:
        _remove(tmp)
        raise DatasetError(f"{where}: sha256 {actual} does not match the manifest's {sha256} (corrupt or replaced)")
    os.replace(tmp, target)
    _write_atomic(target + ".sha256", sha256.encode())


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- splits & shards


def check_split(manifest: Manifest, split: str) -> None:
    """Raise DatasetError unless `split` exists in the manifest and holds records."""
    if split not in manifest.splits:
        raise DatasetError(f"split {split!r} not in the dataset (it has {sorted(manifest.splits)})")
    if manifest.splits[split].num_records == 0:
        raise DatasetError(f"split {split!r} has no records")


def shard_paths(dataset_dir: str, manifest: Manifest, split: str) -> list[str]:
    """The split's shards (non-empty ones) as the manifest lists them; all must exist."""
    check_split(manifest, split)
    _refuse_unreachable_gcs(dataset_dir)
    paths = [_join(dataset_dir, s.path) for s in manifest.splits[split].shards if s.num_records]
    # one listing per folder rather than one stat per shard (hundreds of round trips on gs://)
    present: set[str] = set()
    for folder in sorted({posixpath.dirname(p) if "://" in p else os.path.dirname(p) for p in paths}):
        if tf.io.gfile.isdir(folder):
            present.update(_join(folder, name.rstrip("/")) for name in tf.io.gfile.listdir(folder))
    missing = [p for p in paths if p not in present]
    if missing:
        raise DatasetError(
            f"{len(missing)} of {len(paths)} {split} shards listed in the manifest are missing, "
            f"e.g. {missing[:3]}"
        )
    return paths


# ---------------------------------------------------------------- training


def _check_label(label: tf.Tensor, num_classes: int) -> tf.Tensor:
    ok = tf.logical_and(label >= 0, label < num_classes)
    with tf.control_dependencies([
        tf.debugging.Assert(ok, ["label out of range [0, num_classes): label", label,
                                 "num_classes", num_classes], summarize=1)
    ]):
        return tf.cast(label, tf.int32)


def train_dataset(
    dataset_dir: str,
    manifest: Manifest,
    *,
    split: str = "train",
    global_batch_size: int,
    image_size: int,
    augment: AugmentConfig,
    seed: int,
    repeat: bool = True,
    shuffle_buffer: int = 8192,
    cycle_length: int = 16,
    image_dtype: tf.DType = tf.uint8,
    class_rates: tuple[float, ...] | None = None,
) -> tf.data.Dataset:
    """Batches `(images uint8 [B, S, S, 3], labels int32 [B])`.

    class_rates (unibed/trainer/sampling.py): each record of class c is emitted
    floor(rate_c) times plus once more with probability frac(rate_c) - class
    caps, up-sampling and source shares; None keeps every record once.

    The augmented pixels are rounded to uint8 per image (the same type the
    evaluation and serving paths feed the model); the model's float32 Input
    casts them on the accelerator. A float32 batch costs the host ~0.3-0.5 ms
    more CPU per 224-px image (4x the bytes copied into a 38 MB batch that
    no cache holds: benchmarks/bench_input_pipeline.py), about a fifth of
    the budget. `image_dtype=tf.float32` keeps the unrounded values in [0, 255].

    Files are reshuffled every epoch and read `cycle_length` at a time with a
    parallel interleave; records pass a `shuffle_buffer` (capped at the split
    size; the build already spreads classes over shards by hash); the last
    partial batch is dropped. A label outside [0, manifest.num_classes) stops
    iteration with an InvalidArgumentError naming it.
    """
    if global_batch_size <= 0 or image_size <= 0:
        raise ValueError(f"global_batch_size and image_size must be positive, got {global_batch_size}, {image_size}")
    if image_dtype not in (tf.uint8, tf.float32):
        raise ValueError(f"image_dtype must be tf.uint8 or tf.float32, got {image_dtype}")
    check_split(manifest, split)
    num_records = manifest.splits[split].num_records
    if not repeat and num_records < global_batch_size and class_rates is None:
        raise DatasetError(f"split {split!r} has {num_records} records, fewer than one batch of {global_batch_size}")
    num_classes = manifest.num_classes
    records = train_records(dataset_dir, manifest, split=split, seed=seed, repeat=repeat,
                            shuffle_buffer=shuffle_buffer, cycle_length=cycle_length,
                            class_rates=class_rates)
    # per-image seeds for the stateless augmentation ops, aligned with the shuffled order
    image_seeds = tf.data.Dataset.random(seed=seed + 2).batch(2)
    ds = tf.data.Dataset.zip((records, image_seeds))

    def decode(serialized, image_seed):
        parsed = parse_example(serialized)  # only image/encoded + image/class/label
        image = augment_jpeg(parsed[features.ENCODED], image_size, augment, image_seed)
        if image_dtype == tf.uint8:
            image = tf.cast(image + 0.5, tf.uint8)  # rounds half up: values are already in [0, 255]
        return image, _check_label(parsed[features.LABEL], num_classes)

    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(global_batch_size, drop_remainder=True)
    ds = ds.prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options)


def train_records(dataset_dir: str, manifest: Manifest, *, split: str = "train", seed: int,
                  repeat: bool = True, shuffle_buffer: int = 8192, cycle_length: int = 16,
                  class_rates: tuple[float, ...] | None = None) -> tf.data.Dataset:
    """The serialized records `train_dataset` decodes, in its order: files reshuffled
    per epoch, a parallel deterministic interleave, the class sampling when given,
    then a record shuffle (so a repeated record's copies spread out)."""
    paths = shard_paths(dataset_dir, manifest, split)
    files = tf.data.Dataset.from_tensor_slices(paths)
    files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        files = files.repeat()
    records = files.interleave(
        lambda path: tf.data.TFRecordDataset(path, buffer_size=1 << 20),
        cycle_length=min(cycle_length, len(paths)),
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    expected = manifest.splits[split].num_records
    if class_rates is not None:
        records = resample_records(records, class_rates, manifest.num_classes, seed=seed + 3)
        expected = max(1, round(sum(n * class_rates[c] for c, n in
                                    manifest.records_per_class.get(split, {}).items())))
    return records.shuffle(min(shuffle_buffer, expected), seed=seed + 1, reshuffle_each_iteration=True)


def resample_records(records: tf.data.Dataset, class_rates: tuple[float, ...], num_classes: int, *,
                     seed: int) -> tf.data.Dataset:
    """Each record of class c floor(rate_c) times, and once more with probability
    frac(rate_c); the draws come from a seeded stream aligned with the records, so
    the same seed keeps and repeats the same records."""
    if len(class_rates) != num_classes:
        raise ValueError(f"{len(class_rates)} class rates for {num_classes} classes")
    rates = tf.constant(class_rates, tf.float32)
    draws = tf.data.Dataset.random(seed=seed)

    def copies(serialized, draw):
        label = _check_label(parse_example(serialized, (features.LABEL,))[features.LABEL], num_classes)
        rate = tf.gather(rates, label)
        uniform = tf.cast(tf.math.floormod(draw, 1 << 24), tf.float32) / float(1 << 24)
        whole = tf.floor(rate)
        count = tf.cast(whole, tf.int64) + tf.cast(uniform < rate - whole, tf.int64)
        return tf.data.Dataset.from_tensors(serialized).repeat(count)

    return tf.data.Dataset.zip((records, draws)).flat_map(copies)


# ---------------------------------------------------------------- evaluation


def eval_dataset(dataset_dir: str, manifest: Manifest, split: str, *, batch_size: int, image_size: int) -> tf.data.Dataset:
    """Batches of {image: uint8 [B, S, S, 3], label: int64 [B], source: string [B],
    image_id: string [B]} in stored order (shard by shard), the last batch partial."""
    if batch_size <= 0 or image_size <= 0:
        raise ValueError(f"batch_size and image_size must be positive, got {batch_size}, {image_size}")
    paths = shard_paths(dataset_dir, manifest, split)

    def decode(serialized):
        parsed = parse_example(serialized, _EVAL_KEYS)
        return {
            "image": center_crop_uint8(parsed[features.ENCODED], image_size),
            "label": parsed[features.LABEL],
            "source": parsed[features.SOURCE],
            "image_id": parsed[features.IMAGE_ID],
        }

    ds = tf.data.TFRecordDataset(paths, buffer_size=1 << 20)  # sequential: stored order
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


__all__ = [
    "AugmentConfig", "DatasetError", "SchemaError", "StageReport", "check_split", "eval_dataset",
    "load_manifest", "resample_records", "resolve_dataset", "shard_paths", "stage_dataset",
    "train_dataset", "train_records",
]
