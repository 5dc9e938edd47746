"""Validation: re-read everything a manifest claims before it is published."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from unibed.dataplane import storage
from unibed.dataplane.records.codec import decode_example
from unibed.dataplane.records.framing import iter_records
from unibed.schemas import features
from unibed.schemas.heldout import RETRIEVAL_SPLITS, HeldOutMap
from unibed.schemas.label_map import LabelMap
from unibed.schemas.manifest import Manifest, ShardInfo

_EXAMPLES = 5  # offending values quoted per problem


class ValidationError(ValueError):
    """A written output does not match its manifest; lists every problem found."""

    def __init__(self, output_dir: str, problems: list[str]):
        super().__init__(
            f"{output_dir}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems)
        )
        self.problems = problems


def validate_output(output_dir: str, manifest: Manifest, label_map: LabelMap,
                    heldout: HeldOutMap | None = None) -> None:
    """Re-read everything the manifest claims and raise ValidationError listing every mismatch.
    Retrieval splits' labels must be held-out ids (`heldout`), the others training ids."""
    problems = _check_label_map(output_dir, manifest, label_map)
    problems += _check_heldout_map(output_dir, manifest, heldout)
    problems += _check_shard_files(output_dir, manifest)
    training = (range(manifest.num_classes), label_map.lookup())
    held = (heldout.id_range(), heldout.lookup()) if heldout else (range(0), {})
    id_counts: Counter[bytes] = Counter()
    for split, info in sorted(manifest.splits.items()):
        id_range, labels = held if split in RETRIEVAL_SPLITS else training
        per_class: Counter[int] = Counter()
        per_source: Counter[str] = Counter()
        for shard in info.shards:
            path = storage.join(output_dir, shard.path)
            if not storage.exists(path):
                continue  # reported by _check_shard_files
            result = _read_shard(path, shard, id_range, labels)
            problems += result.problems
            per_class.update(result.per_class)
            per_source.update(result.per_source)
            id_counts.update(result.image_ids)
        problems += _compare_counts(
            f"{split} records per class", manifest.records_per_class.get(split, {}), per_class
        )
        problems += _compare_counts(
            f"{split} records per source", manifest.records_per_source.get(split, {}), per_source
        )
    repeated = sorted(_text(i) for i, n in id_counts.items() if n > 1)
    if repeated:
        problems.append(f"{len(repeated)} image ids appear more than once: {repeated[:_EXAMPLES]}")
    if problems:
        raise ValidationError(output_dir, problems)


@dataclass
class _ShardResult:
    problems: list[str] = field(default_factory=list)
    per_class: Counter[int] = field(default_factory=Counter)
    per_source: Counter[str] = field(default_factory=Counter)
    image_ids: list[bytes] = field(default_factory=list)


class _HashingReader:
    """Counts and hashes every byte read through it, so a shard is read once."""

    def __init__(self, raw):
        self._raw, self.sha256, self.num_bytes = raw, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        self.num_bytes += len(data)
        return data


def _read_shard(path: str, shard: ShardInfo, id_range: range, labels: dict) -> _ShardResult:
    result = _ShardResult()
    out_of_range, mislabelled, undecodable = [], [], 0
    num_records = 0
    with storage.open_read(path) as raw:
        reader = _HashingReader(raw)
        try:
            for data in iter_records(reader, where=shard.path):
                num_records += 1
                values = _provenance(data)
                if values is None:
                    undecodable += 1
                    continue
                image_id, label, source, source_label = values
                result.image_ids.append(image_id)
                result.per_class[label] += 1
                result.per_source[source] += 1
                if label not in id_range:
                    out_of_range.append(f"{_text(image_id)}={label}")
                elif labels.get((source, source_label)) != label:
                    mislabelled.append(_text(image_id))
        except OSError as e:  # a broken frame or checksum: the rest of the shard is unreadable
            result.problems.append(f"{shard.path}: unreadable: {e}")
            while reader.read(1 << 20):  # finish the hash over the whole file
                pass
    if undecodable:
        result.problems.append(
            f"{shard.path}: {undecodable} records are not Examples with the spec's features"
        )
    if out_of_range:
        result.problems.append(
            f"{shard.path}: {len(out_of_range)} labels outside [{id_range.start}, {id_range.stop}): "
            f"{out_of_range[:_EXAMPLES]}"
        )
    if mislabelled:
        result.problems.append(
            f"{shard.path}: {len(mislabelled)} labels disagree with the label map's "
            f"(source, source_label): {mislabelled[:_EXAMPLES]}"
        )
    expected = (shard.num_records, shard.num_bytes, shard.sha256)
    actual = (num_records, reader.num_bytes, reader.sha256.hexdigest())
    for what, want, have in zip(("records", "bytes", "sha256"), expected, actual):
        if want != have:
            result.problems.append(f"{shard.path}: manifest says {what} {want}, file has {have}")
    return result


def _provenance(data: bytes) -> tuple[bytes, int, str, str] | None:
    """(image id, label, source, source label) of one record; None if it is not a valid Example."""
    try:
        values = decode_example(data)
        found = tuple(
            values[k]
            for k in (features.IMAGE_ID, features.LABEL, features.SOURCE, features.SOURCE_LABEL)
        )
    except (DecodeError, KeyError):
        return None
    image_id, label, source, source_label = found
    if not isinstance(label, int) or not all(
        isinstance(v, bytes) for v in (image_id, source, source_label)
    ):
        return None
    return image_id, label, _text(source), _text(source_label)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _check_label_map(output_dir: str, manifest: Manifest, label_map: LabelMap) -> list[str]:
    problems = []
    if label_map.digest() != manifest.label_map_sha256:
        problems.append("the label map given does not match the manifest's label_map_sha256")
    if label_map.num_classes != manifest.num_classes:
        problems.append(
            f"label map has {label_map.num_classes} classes, manifest says {manifest.num_classes}"
        )
    if dict(manifest.label_ranges) != label_map.ranges():
        problems.append(
            f"manifest label_ranges {manifest.label_ranges} != label map's {label_map.ranges()}"
        )
    path = storage.join(output_dir, manifest.label_map)
    if not storage.exists(path):
        problems.append(f"{manifest.label_map} is missing")
    elif hashlib.sha256(storage.read_bytes(path)).hexdigest() != manifest.label_map_sha256:
        problems.append(f"{manifest.label_map} on disk does not match label_map_sha256")
    return problems


def _check_heldout_map(output_dir: str, manifest: Manifest, heldout: HeldOutMap | None) -> list[str]:
    info = manifest.evaluation
    if (info is None) != (heldout is None):
        return ["the manifest's evaluation section and the plan's held-out classes disagree"]
    if info is None:
        return []
    path = storage.join(output_dir, info.label_map)
    if heldout.digest() != info.label_map_sha256 or not storage.exists(path):
        return [f"{info.label_map} is missing or does not match the manifest's label_map_sha256"]
    if hashlib.sha256(storage.read_bytes(path)).hexdigest() != info.label_map_sha256:
        return [f"{info.label_map} on disk does not match label_map_sha256"]
    return []


def _check_shard_files(output_dir: str, manifest: Manifest) -> list[str]:
    listed = {s.path for info in manifest.splits.values() for s in info.shards}
    prefix = storage.join(output_dir, "")
    shard_files = storage.list_files(storage.join(output_dir, "**.tfrecord"))
    on_disk = {path.removeprefix(prefix) for path, _ in shard_files}
    problems = [f"{p}: listed in the manifest but missing" for p in sorted(listed - on_disk)]
    problems += [f"{p}: shard file not listed in the manifest" for p in sorted(on_disk - listed)]
    return problems


def _compare_counts(what: str, expected: dict, found: Counter) -> list[str]:
    expected = {k: n for k, n in expected.items() if n}
    found = {k: n for k, n in found.items() if n}
    if expected == found:
        return []
    differ = sorted(
        (k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k)), key=str
    )
    details = [
        f"{k}: manifest {expected.get(k, 0)}, shards {found.get(k, 0)}" for k in differ[:_EXAMPLES]
    ]
    return [f"{what} differ for {len(differ)} keys: {'; '.join(details)}"]
