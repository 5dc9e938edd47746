"""TensorFlow side of the TFRecord feature spec (unibed/schemas/features.py).

Trainer side of the process boundary: imports TensorFlow, never the
`tfrecord` package or unibed.dataplane.records.codec.
"""

from __future__ import annotations

import tensorflow as tf

from unibed.schemas import features

_DTYPES = {"bytes": tf.string, "int64": tf.int64}


def parse_spec(keys: tuple[str, ...] = features.TRAINING_KEYS) -> dict:
    """A tf.io.parse_single_example spec for the given keys (default: what training needs)."""
    unknown = set(keys) - features.FEATURES_BY_KEY.keys()
    if unknown:
        raise KeyError(f"not in the feature spec: {sorted(unknown)}")
    return {
        k: tf.io.FixedLenFeature([], _DTYPES[features.FEATURES_BY_KEY[k].dtype]) for k in keys
    }


def parse_example(serialized: tf.Tensor, keys: tuple[str, ...] = features.TRAINING_KEYS) -> dict:
    return tf.io.parse_single_example(serialized, parse_spec(keys))
