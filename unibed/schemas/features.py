"""The TFRecord feature spec: what one record of a shard holds.

Both sides of the process boundary read this module (it imports neither
TensorFlow nor the `tfrecord` package): the data plane encodes Examples
with it (unibed/dataplane/records/codec.py) and the trainer builds its
tf.io.parse_single_example spec from it (unibed/trainer/features.py).

`image/encoded` and `image/class/label` are the keys the competition's
public trainers and Google's baseline read; the rest follow the TF Model
Garden / DELF builders, plus our provenance and perceptual hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from unibed.schemas.errors import SchemaError

ENCODED = "image/encoded"
LABEL = "image/class/label"
IMAGE_ID = "image/id"
SOURCE = "image/source"
SOURCE_LABEL = "image/source_label"
HEIGHT = "image/height"
WIDTH = "image/width"
FORMAT = "image/format"
CHANNELS = "image/channels"
COLORSPACE = "image/colorspace"
PHASH = "image/phash"


@dataclass(frozen=True)
class Feature:
    key: str
    dtype: str  # "bytes" or "int64"; every feature is a single value
    description: str


FEATURES: tuple[Feature, ...] = (
    Feature(ENCODED, "bytes", "JPEG bytes, 3 channels (RGB), baseline"),
    Feature(LABEL, "int64", "unified class id, 0 <= id < num_classes (see label_map.csv)"),
    Feature(IMAGE_ID, "bytes", "globally unique image key 'source/source_image_id'"),
    Feature(SOURCE, "bytes", "source dataset: the recipe's source name (imagenet, products10k, gldv2, sop, ...)"),
    Feature(SOURCE_LABEL, "bytes", "the label in the source's own terms (wnid, SKU, landmark)"),
    Feature(HEIGHT, "int64", "height of the encoded image in pixels"),
    Feature(WIDTH, "int64", "width of the encoded image in pixels"),
    Feature(FORMAT, "bytes", "always 'jpeg'"),
    Feature(CHANNELS, "int64", "always 3"),
    Feature(COLORSPACE, "bytes", "always 'RGB'"),
    Feature(PHASH, "int64", "64-bit DCT perceptual hash (imagehash.phash bit order) as signed int64"),
)
FEATURES_BY_KEY = {f.key: f for f in FEATURES}
# The minimum a trainer needs; everything else is provenance and metadata.
TRAINING_KEYS = (ENCODED, LABEL)

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def phash_to_int64(phash: int) -> int:
    """Store an unsigned 64-bit hash in an int64 feature (two's complement)."""
    if not 0 <= phash < (1 << 64):
        raise SchemaError(f"perceptual hash must be an unsigned 64-bit value, got {phash}")
    return phash - (1 << 64) if phash >= (1 << 63) else phash


def int64_to_phash(value: int) -> int:
    return value & ((1 << 64) - 1)


def validate_example(values: dict) -> dict:
    """Check a record's values against the spec before it is encoded.

    Returns the values; raises SchemaError naming the key and the image.
    """
    who = values.get(IMAGE_ID, "<no image/id>")
    missing = [f.key for f in FEATURES if f.key not in values]
    if missing:
        raise SchemaError(f"record {who!r} lacks features {missing}")
    extra = sorted(values.keys() - FEATURES_BY_KEY.keys())
    if extra:
        raise SchemaError(f"record {who!r} has features not in the spec: {extra}")
    for f in FEATURES:
        v = values[f.key]
        if f.dtype == "bytes" and not isinstance(v, (bytes, str)):
            raise SchemaError(f"record {who!r}: {f.key} must be bytes or str, got {type(v).__name__}")
        is_int64 = isinstance(v, int) and not isinstance(v, bool) and _INT64_MIN <= v <= _INT64_MAX
        if f.dtype == "int64" and not is_int64:
            raise SchemaError(f"record {who!r}: {f.key} must be an int64, got {v!r}")
    if not values[ENCODED]:
        raise SchemaError(f"record {who!r}: {ENCODED} is empty")
    if values[LABEL] < 0:
        raise SchemaError(f"record {who!r}: {LABEL} must be >= 0, got {values[LABEL]}")
    if values[HEIGHT] <= 0 or values[WIDTH] <= 0:
        raise SchemaError(f"record {who!r}: non-positive size {values[WIDTH]}x{values[HEIGHT]}")
    return values
