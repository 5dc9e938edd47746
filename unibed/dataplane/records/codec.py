"""TF-free encoding of shard records as tf.train.Example protos.

Data-plane side of the process boundary (see DESIGN.md): Beam workers never
need TensorFlow installed. The message classes come from a private descriptor
pool (unibed/dataplane/records/example_proto.py), so this module may share a process with
TensorFlow (tests, a launcher that also trains).
"""

from __future__ import annotations

from unibed.dataplane.records.example_proto import Example
from unibed.schemas.features import FEATURES, FEATURES_BY_KEY, validate_example


def encode_example(values: dict) -> bytes:
    """Validate and serialise one record. Deterministic: map keys are sorted."""
    validate_example(values)
    example = Example()
    feature_map = example.features.feature
    for f in FEATURES:
        value = values[f.key]
        if f.dtype == "bytes":
            data = value.encode("utf-8") if isinstance(value, str) else value
            feature_map[f.key].bytes_list.value.append(data)
        else:
            feature_map[f.key].int64_list.value.append(value)
    return example.SerializeToString(deterministic=True)


def decode_example(serialized: bytes) -> dict:
    """Parse a record back into {key: value} (bytes or int), for validation and reports."""
    example = Example.FromString(serialized)
    out = {}
    for key, feature in example.features.feature.items():
        spec = FEATURES_BY_KEY.get(key)
        if spec is None:
            continue
        values = feature.bytes_list.value if spec.dtype == "bytes" else feature.int64_list.value
        out[key] = values[0] if len(values) == 1 else list(values)
    return out
