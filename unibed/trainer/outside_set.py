"""Scoring an outside retrieval set (a folder or CSV of query and index images with
labels, unibed/schemas/retrieval_set.py) with the same metric as the build's splits.

Listing and reading go through tf.io.gfile (local or gs://); each image gets the
evaluation view the build's records get (shorter side to S, central S x S).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from unibed.schemas.retrieval_set import Entry, RetrievalSet, parse_csv, parse_folder
from unibed.trainer.evaluate import Embedded, EvalResult, score


def _join(root: str, relative: str) -> str:
    if relative.startswith("/") or "://" in relative:
        return relative
    return root.rstrip("/") + "/" + relative


def read_retrieval_set(location: str) -> tuple[str, RetrievalSet]:
    """(the folder paths are relative to, the listing) of a CSV file or a folder."""
    if location.lower().endswith(".csv"):
        with tf.io.gfile.GFile(location) as f:
            return location.rsplit("/", 1)[0] if "/" in location else ".", parse_csv(f.read(), location)
    if not tf.io.gfile.isdir(location):
        raise FileNotFoundError(f"{location}: neither a CSV file nor a folder of query/ and index/ images")
    root = location.rstrip("/")
    relative = []
    for folder, _, files in tf.io.gfile.walk(root):
        prefix = folder[len(root):].strip("/")
        relative += [f"{prefix}/{name}" if prefix else name for name in files]
    return root, parse_folder(relative, location)


def _view(data: tf.Tensor, image_size: int) -> tf.Tensor:
    """The evaluation view of any image format (as augment.center_crop_uint8 for JPEG)."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(image_size, tf.float32) / tf.reduce_min(shape)
    new_hw = tf.maximum(tf.cast(tf.math.ceil(shape * scale - 1e-3), tf.int32), image_size)
    resized = tf.image.resize(image, new_hw, method="bilinear", antialias=True)
    top, left = (new_hw[0] - image_size) // 2, (new_hw[1] - image_size) // 2
    crop = resized[top:top + image_size, left:left + image_size]
    return tf.cast(tf.clip_by_value(tf.round(crop), 0.0, 255.0), tf.uint8)


def embed_entries(embed_fn: Callable, root: str, entries: tuple[Entry, ...], ids: dict[str, int], *,
                  image_size: int, batch_size: int) -> Embedded:
    chunks = []
    for start in range(0, len(entries), batch_size):
        batch = []
        for entry in entries[start:start + batch_size]:
            path = _join(root, entry.path)
            try:
                batch.append(_view(tf.io.gfile.GFile(path, "rb").read(), image_size).numpy())
            except (tf.errors.OpError, OSError) as e:
                raise ValueError(f"{path}: cannot be read as an image: {getattr(e, 'message', e)}") from None
        chunks.append(np.asarray(embed_fn(np.stack(batch)), dtype=np.float32))
    return Embedded(np.concatenate(chunks), np.array([ids[e.label] for e in entries], np.int64),
                    np.array([e.domain for e in entries]), np.array([e.path for e in entries]))


def evaluate_outside_set(embed_fn: Callable, location: str, *, image_size: int, batch_size: int,
                         k: int = 5) -> EvalResult:
    """mP@k of `embed_fn` on an outside set's queries against its index."""
    root, listing = read_retrieval_set(location)
    ids = listing.label_ids()
    queries = embed_entries(embed_fn, root, listing.queries, ids, image_size=image_size, batch_size=batch_size)
    index = embed_entries(embed_fn, root, listing.index, ids, image_size=image_size, batch_size=batch_size)
    return score(queries, index, k, f"queries of {location}", "index image")
