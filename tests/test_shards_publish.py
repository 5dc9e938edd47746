"""The last build stages: shard layout and writing, reports, validation, publication."""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import pytest

from unibed.dataplane.build import reports
from unibed.dataplane.build.lock import OutputLockedError, acquire_lock, release_lock
from unibed.dataplane.build.output import (
    OutputExistsError,
    OutputState,
    claim_output,
    inspect_output,
    prepare_output,
    publish_manifest,
)
from unibed.dataplane.build.shards import (
    num_shards,
    shard_index,
    shard_name,
    shuffle_key,
    write_shard,
)
from unibed.dataplane.build.validate import ValidationError, validate_output
from unibed.dataplane.records.codec import encode_example
from unibed.schemas import features
from unibed.schemas.label_map import LabelEntry, LabelMap
from unibed.schemas.manifest import Manifest, SourceAccounting, SplitInfo
from unibed.schemas.recipe import ShardSpec, parse_recipe
from unibed.schemas.source_record import Rejection, RejectReason

SALT = "test-salt"
LABEL_MAP = LabelMap(
    (
        LabelEntry(0, "imagenet", "n01440764", "tench"),
        LabelEntry(1, "imagenet", "n01443537", "goldfish"),
        LabelEntry(2, "products10k", "7", "sku 7"),
    )
)
# split -> (source, image id, unified label)
RECORDS = {
    "train": [("imagenet", f"i{n}", n % 2) for n in range(10)] + [("products10k", f"p{n}", 2) for n in range(6)],
    "validation": [("imagenet", "v0", 0), ("imagenet", "v1", 1), ("products10k", "pv0", 2)],
}


SOURCE_LABELS = {e.unified_id: e.source_label for e in LABEL_MAP.entries}


def _example(source: str, image_id: str, label: int) -> bytes:
    return encode_example(
        {
            features.ENCODED: b"\xff\xd8 not really a jpeg " + image_id.encode(),
            features.LABEL: label,
            features.IMAGE_ID: f"{source}/{image_id}",
            features.SOURCE: source,
            features.SOURCE_LABEL: SOURCE_LABELS.get(label, "unknown"),
            features.HEIGHT: 32,
            features.WIDTH: 48,
            features.FORMAT: "jpeg",
            features.CHANNELS: 3,
            features.COLORSPACE: "RGB",
            features.PHASH: features.phash_to_int64(0x8000_0000_0000_0001),
        }
    )


def _keyed(source: str, image_id: str, label: int) -> tuple[bytes, bytes]:
    return shuffle_key(f"{source}/{image_id}", SALT), _example(source, image_id, label)


def _write_split(out: str, split: str, count: int) -> SplitInfo:
    by_shard: dict[int, list] = {i: [] for i in range(count)}
    for source, image_id, label in RECORDS[split]:
        by_shard[shard_index(f"{source}/{image_id}", SALT, count)].append(_keyed(source, image_id, label))
    shards = tuple(write_shard(out, split, i, count, records) for i, records in by_shard.items())
    return SplitInfo(
        num_records=sum(s.num_records for s in shards),
        num_bytes=sum(s.num_bytes for s in shards),
        shards=shards,
    )


def _manifest(out: str, splits: dict[str, SplitInfo]) -> Manifest:
    recipe = parse_recipe(
        {
            "name": "tiny",
            "output": out,
            "sources": [
                {"name": "imagenet", "location": "data/imagenet"},
                {"name": "products10k", "location": "data/products10k"},
            ],
            "shards": {"target_bytes": 1024, "count_multiple": 2},
        }
    )
    written = Counter(source for records in RECORDS.values() for source, _, _ in records)
    return Manifest(
        unibed_version="0.1.0",
        created_at="2024-01-01T00:00:00Z",
        recipe=recipe,
        recipe_digest=recipe.digest(),
        num_classes=LABEL_MAP.num_classes,
        label_ranges=LABEL_MAP.ranges(),
        label_map_sha256=LABEL_MAP.digest(),
        splits=splits,
        records_per_source={s: dict(Counter(r[0] for r in RECORDS[s])) for s in RECORDS},
        records_per_class={s: dict(Counter(r[2] for r in RECORDS[s])) for s in RECORDS},
        accounting={
            source: SourceAccounting(inputs=n + 1, written=n, duplicates=1, rejected=0)
            for source, n in written.items()
        },
    )


@pytest.fixture
def built(tmp_path) -> tuple[str, Manifest]:
    """A tiny complete output: label map, 2 splits x 2 shards, manifest."""
    out = str(tmp_path / "out")
    reports.write_label_map(os.path.join(out, "label_map.csv"), LABEL_MAP)
    splits = {split: _write_split(out, split, 2) for split in RECORDS}
    manifest = _manifest(out, splits)
    publish_manifest(out, manifest)
    return out, manifest


# --- layout ---------------------------------------------------------------


@pytest.mark.parametrize(
    "total_bytes, num_records, multiple, expected",
    [
        (0, 0, 8, 1),  # an empty split is one empty shard
        (50_000, 3, 8, 3),  # fewer records than the multiple: one shard per record
        (1, 100, 8, 8),  # one shard's worth, rounded up to the multiple
        (8 * 1024, 100, 8, 8),
        (9 * 1024, 100, 8, 16),
        (100 * 1024, 20, 8, 16),  # capped at the largest multiple not above the records
        (2049, 10, 1, 3),
    ],
)
def test_num_shards_rule(total_bytes, num_records, multiple, expected):
    spec = ShardSpec(target_bytes=1024, count_multiple=multiple)
    assert num_shards(total_bytes, num_records, spec) == expected


def test_shard_index_spreads_keys_evenly():
    counts = Counter(shard_index(f"imagenet/img{n}", SALT, 8) for n in range(10_000))
    assert sorted(counts) == list(range(8))
    assert all(1100 < n < 1400 for n in counts.values()), counts


def test_shard_names_match_the_manifest_contract():
    assert shard_name("train", 0, 8) == "train-00000-of-00008.tfrecord"
    assert shard_name("validation", 12, 13) == "validation-00012-of-00013.tfrecord"
    with pytest.raises(ValueError):
        shard_name("train", 8, 8)
    with pytest.raises(ValueError):
        shard_name("test", 0, 1)


def test_write_shard_is_byte_identical_whatever_the_input_order(tmp_path):
    records = [_keyed(source, image_id, label) for source, image_id, label in RECORDS["train"]]
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    first = write_shard(str(tmp_path / "a"), "train", 0, 1, records)
    second = write_shard(str(tmp_path / "b"), "train", 0, 1, shuffled)
    assert first == second and first.num_records == len(records)
    name = "train-00000-of-00001.tfrecord"
    data = (tmp_path / "a" / name).read_bytes()
    assert data == (tmp_path / "b" / name).read_bytes()
    assert len(data) == first.num_bytes


# --- reports --------------------------------------------------------------


def test_reports_are_sorted_csv_with_headers(tmp_path):
    dup = str(tmp_path / "duplicates.csv")
    reports.write_duplicates_report(
        dup,
        [
            ("gldv2/b", "imagenet/a", 3, "near", True, "5", "1"),
            reports.DuplicateRow("gldv2/a", "imagenet/a", 0, "exact", False, "1", "1"),
        ],
    )
    assert (tmp_path / "duplicates.csv").read_text().splitlines() == [
        ",".join(reports.DUPLICATES_HEADER),
        "gldv2/a,imagenet/a,0,exact,false,1,1",
        "gldv2/b,imagenet/a,3,near,true,5,1",
    ]
    with pytest.raises(ValueError, match="similar"):
        reports.write_duplicates_report(dup, [("a", "b", 1, "similar", False, "1", "1")])

    rejects = str(tmp_path / "rejects.csv")
    reports.write_rejects_report(
        rejects,
        [
            Rejection("imagenet", "x2", RejectReason.TRUNCATED, "cut, short", "a.tar!x2.JPEG"),
            Rejection("gldv2", "", RejectReason.MALFORMED_ROW, "bad row", "train.csv:7"),
        ],
    )
    assert (tmp_path / "rejects.csv").read_text().splitlines() == [
        "source,image_id,reason,detail,where",
        "gldv2,,malformed_row,bad row,train.csv:7",
        'imagenet,x2,truncated,"cut, short",a.tar!x2.JPEG',
    ]


# --- validation -----------------------------------------------------------


def test_a_published_output_validates_and_reads_back(built):
    out, manifest = built
    validate_output(out, manifest, LABEL_MAP)
    assert inspect_output(out) is OutputState.COMPLETE
    assert not [n for n in os.listdir(out) if n.startswith("manifest.json.tmp")]
    assert Manifest.from_json(Path(out, "manifest.json").read_text()) == manifest
    assert sorted(os.listdir(out)) == [
        "label_map.csv",
        "manifest.json",
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
        "validation-00000-of-00002.tfrecord",
        "validation-00001-of-00002.tfrecord",
    ]


def _flip_a_byte(out):
    path = Path(out, "train-00000-of-00002.tfrecord")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _add_stray_shard(out):
    data = Path(out, "train-00000-of-00002.tfrecord").read_bytes()
    Path(out, "train-00000-of-00003.tfrecord").write_bytes(data)


def _delete_a_shard(out):
    os.remove(os.path.join(out, "validation-00001-of-00002.tfrecord"))


def _label_out_of_range(out):
    """Rewrite shard 0 of train with one record's label set to 99."""
    records = [r for r in RECORDS["train"] if shard_index(f"{r[0]}/{r[1]}", SALT, 2) == 0]
    source, image_id, _ = records[0]
    write_shard(out, "train", 0, 2, [_keyed(source, image_id, 99)] + [_keyed(*r) for r in records[1:]])


def _tamper_label_map(out):
    path = Path(out, "label_map.csv")
    path.write_text(path.read_text().replace("goldfish", "carp"))


@pytest.mark.parametrize(
    "corrupt, messages",
    [
        (_flip_a_byte, ["train-00000-of-00002.tfrecord: manifest says sha256", "checksum mismatch"]),
        (_add_stray_shard, ["train-00000-of-00003.tfrecord: shard file not listed in the manifest"]),
        (
            _delete_a_shard,
            ["validation-00001-of-00002.tfrecord: listed in the manifest but missing", "validation records per"],
        ),
        (_label_out_of_range, ["labels outside [0, 3)", "=99"]),
        (_tamper_label_map, ["label_map.csv on disk does not match label_map_sha256"]),
    ],
)
def test_validation_catches_corruption(built, corrupt, messages):
    out, manifest = built
    corrupt(out)
    with pytest.raises(ValidationError) as caught:
        validate_output(out, manifest, LABEL_MAP)
    for message in messages:
        assert message in str(caught.value)


def test_validation_lists_every_problem(built):
    out, manifest = built
    _add_stray_shard(out)
    _delete_a_shard(out)
    _tamper_label_map(out)
    with pytest.raises(ValidationError) as caught:
        validate_output(out, manifest, LABEL_MAP)
    text = "\n".join(caught.value.problems)
    assert "not listed in the manifest" in text
    assert "listed in the manifest but missing" in text
    assert "label_map.csv on disk" in text


def test_validation_catches_ids_repeated_across_shards(built):
    out, manifest = built
    # the same image in both validation shards, with the manifest claiming nothing else changed
    records = RECORDS["validation"]
    first = [r for r in records if shard_index(f"{r[0]}/{r[1]}", SALT, 2) == 0]
    write_shard(out, "validation", 1, 2, [_keyed(*r) for r in first])
    with pytest.raises(ValidationError, match="image ids appear more than once"):
        validate_output(out, manifest, LABEL_MAP)


# --- output states and the lock ---------------------------------------------


def test_prepare_output_policy(tmp_path, built):
    out, manifest = built
    empty = str(tmp_path / "empty")
    assert inspect_output(empty) is OutputState.EMPTY
    assert prepare_output(empty, manifest.recipe_digest) == "build"

    partial = str(tmp_path / "partial")
    claim_output(partial)  # what a crashed build of it left: its ownership record too
    (tmp_path / "partial" / "beam-temp").mkdir(parents=True)
    (tmp_path / "partial" / "train-00000-of-00001.tfrecord").write_bytes(b"half")
    (tmp_path / "partial" / "beam-temp" / "x").write_bytes(b"tmp")
    assert inspect_output(partial) is OutputState.PARTIAL
    assert prepare_output(partial, manifest.recipe_digest) == "build"
    assert [p.relative_to(partial).as_posix() for p in Path(partial).rglob("*") if p.is_file()] == [
        "_work/output.json"
    ]

    assert prepare_output(out, manifest.recipe_digest) == "complete"
    with pytest.raises(OutputExistsError) as caught:
        prepare_output(out, "f" * 64)
    assert out in str(caught.value)
    assert manifest.recipe_digest in str(caught.value) and "f" * 64 in str(caught.value)
    assert inspect_output(out) is OutputState.COMPLETE


def test_lock_admits_one_run_at_a_time(tmp_path):
    out = str(tmp_path / "out")
    acquire_lock(out, "run-a")
    with pytest.raises(OutputLockedError, match="run-a"):
        acquire_lock(out, "run-b")
    with pytest.raises(OutputLockedError, match="run-a"):
        release_lock(out, "run-b")
    release_lock(out, "run-a")
    acquire_lock(out, "run-b")
    # the lock is not output: a locked output with nothing else in it is empty
    assert inspect_output(out) is OutputState.EMPTY


def test_prepare_output_keeps_a_partial_output_locked_by_another_run(tmp_path):
    out = str(tmp_path / "out")
    shard = Path(out, "train-00000-of-00001.tfrecord")
    acquire_lock(out, "other-run")
    shard.write_bytes(b"in progress")
    with pytest.raises(OutputLockedError, match="other-run"):
        prepare_output(out, "0" * 64, run_id="my-run")
    assert shard.exists()


def test_prepare_output_cleans_a_partial_output_under_its_own_lock(tmp_path):
    out = str(tmp_path / "out")
    acquire_lock(out, "my-run")
    claim_output(out, "my-run")
    Path(out, "train-00000-of-00001.tfrecord").write_bytes(b"left by a crash")
    assert prepare_output(out, "0" * 64, run_id="my-run") == "build"
    assert sorted(os.listdir(out)) == ["_BUILDING", "_work"]


def test_prepare_output_never_cleans_a_folder_holding_foreign_files(tmp_path):
    claim_output(str(tmp_path))  # even in an output a build of it wrote to
    (tmp_path / "train-00000-of-00002.tfrecord").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("someone's work")
    with pytest.raises(OutputExistsError, match="files that no build writes"):
        prepare_output(str(tmp_path), "0" * 64)
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "train-00000-of-00002.tfrecord").exists()
