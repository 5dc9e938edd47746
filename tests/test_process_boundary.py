"""The process boundary (DESIGN.md): the data plane never imports TensorFlow
(Beam workers stay lean), the trainer never imports the data plane, and
TensorFlow reads what the TF-free codec writes - in another process, and in the
same process too (the codec's protos live in a private descriptor pool)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap

import pytest

from unibed import trainer
from unibed.dataplane.records.codec import decode_example, encode_example
from unibed.dataplane.records.framing import frame, iter_records
from unibed.schemas import features

DATA_PLANE_MODULES = (
    "unibed.schemas.recipe", "unibed.schemas.manifest", "unibed.schemas.label_map", "unibed.dataplane.storage",
    "unibed.dataplane.records.codec", "unibed.dataplane.sources", "unibed.dataplane.build.launcher",
    "unibed.sample", "unibed.flows.build_dataset", "unibed.cli",
)
TRAINER_MODULES = tuple(
    m.name for m in pkgutil.walk_packages(trainer.__path__, "unibed.trainer.") if m.name != "unibed.trainer.__main__"
)


def _record(i: int, label: int) -> dict:
    return {
        features.ENCODED: b"\xff\xd8jpeg-bytes-%d" % i,
        features.LABEL: label,
        features.IMAGE_ID: f"imagenet/n1_{i}",
        features.SOURCE: "imagenet",
        features.SOURCE_LABEL: "n1",
        features.HEIGHT: 288,
        features.WIDTH: 384,
        features.FORMAT: "jpeg",
        features.CHANNELS: 3,
        features.COLORSPACE: "RGB",
        features.PHASH: features.phash_to_int64((1 << 64) - 1 - i),
    }


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_encoding_is_deterministic_and_round_trips():
    rec = _record(1, 17690)
    assert encode_example(rec) == encode_example(dict(reversed(list(rec.items()))))
    back = decode_example(encode_example(rec))
    assert back[features.LABEL] == 17690
    assert back[features.IMAGE_ID] == b"imagenet/n1_1"
    assert features.int64_to_phash(back[features.PHASH]) == (1 << 64) - 2


@pytest.fixture(scope="module")
def tensorflow_process(tmp_path_factory) -> dict:
    """One TensorFlow process (its import costs ~10 s) for the three checks that
    need one, in an order that keeps them apart: the trainer's imports are
    recorded before the codec is imported, then TensorFlow parses codec records
    from a file and the codec and TensorFlow share the process."""
    path = tmp_path_factory.mktemp("boundary") / "train-00000-of-00001.tfrecord"
    raw = [encode_example(_record(i, i * 1000)) for i in range(5)]
    path.write_bytes(b"".join(frame(r) for r in raw))
    with open(path, "rb") as f:
        assert list(iter_records(f)) == raw
    out = _run(f"""
        import json, sys
        for m in {TRAINER_MODULES!r}:
            __import__(m)
        trainer_imports = sorted(m for m in sys.modules if m.split(".")[0] in ("tfrecord", "apache_beam", "prefect")
                                 or m.startswith(("unibed.dataplane", "unibed.flows")))
        import tensorflow as tf
        from unibed.trainer.features import parse_example
        ds = tf.data.TFRecordDataset([{str(path)!r}]).map(parse_example)
        parsed = [[int(x["image/class/label"]), x["image/encoded"].numpy().decode("latin1")] for x in ds]

        from unibed.dataplane.records.codec import decode_example, encode_example
        from tests.test_process_boundary import _record
        raw = encode_example(_record(7, 123))
        example = tf.train.Example.FromString(raw)
        shared = [example.SerializeToString(deterministic=True) == raw,
                  decode_example(example.SerializeToString())["image/class/label"],
                  int(example.features.feature["image/class/label"].int64_list.value[0])]
        print(json.dumps({{"trainer_imports": trainer_imports, "parsed": parsed, "shared": shared}}))
        """)
    return json.loads(out.strip().splitlines()[-1])


def test_tensorflow_parses_codec_records_with_only_the_training_keys(tensorflow_process):
    parsed = tensorflow_process["parsed"]
    assert [label for label, _ in parsed] == [0, 1000, 2000, 3000, 4000]
    assert parsed[2][1].encode("latin1") == b"\xff\xd8jpeg-bytes-2"


def test_framing_detects_corruption(tmp_path):
    import io

    data = bytearray(frame(b"hello") + frame(b"world"))
    data[15] ^= 0xFF  # inside the first record's data
    with pytest.raises(IOError, match="record 0: data checksum"):
        list(iter_records(io.BytesIO(bytes(data)), "x.tfrecord"))
    with pytest.raises(IOError, match="truncated"):
        list(iter_records(io.BytesIO(frame(b"hello")[:-2])))


def test_data_plane_never_imports_tensorflow():
    out = _run(f"""
        import sys
        for m in {DATA_PLANE_MODULES!r}:
            __import__(m)
        print(sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"))
        """)
    assert out.strip().splitlines()[-1] == "[]"


def test_trainer_never_imports_the_data_plane(tensorflow_process):
    assert tensorflow_process["trainer_imports"] == []


def test_codec_and_tensorflow_share_a_process(tensorflow_process):
    assert tensorflow_process["shared"] == [True, 123, 123]
