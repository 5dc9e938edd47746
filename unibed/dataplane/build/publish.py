"""Publishing a build: output states, the build lock, validation, the manifest.

`manifest.json` is the completeness marker. It is written last, after every
shard and report and after `validate_output` passed, to `manifest.json.tmp`
and then renamed (local: an atomic rename; GCS: copy + delete of one object,
and each object write is atomic), so a reader sees either no manifest or the
whole one. An output with files but no manifest is PARTIAL: a failed or
interrupted run, never mistaken for a dataset.

A run goes, inside `with build_lock(...)` (acquire_lock ... release_lock):
`prepare_output` ("complete": nothing to do; "build": the output is empty)
-> write shards and reports -> `validate_output` -> `publish_manifest`. The lock
(`_BUILDING`, created only if absent) keeps two builds from writing into one
output; it holds the run id, which names host, pid (+ the process's start
time) and time (`new_run_id`). A run that died holding it leaves it behind: a later run on the same
host breaks it when that process is gone (`stale_lock`); a lock from another
host is broken only when asked (`break_lock`, the flow's `force_unlock`),
since this host cannot see whether that run still lives.

Resume: when the Beam stage has finished, `_work/beam.done.json` records the
recipe digest. `prepare_output` keeps a PARTIAL output with that marker for
the same recipe ("resume": shards and side products stay, only assemble ->
validate -> publish run again); any other PARTIAL output is cleaned.
`publish_manifest` runs before `_work` is deleted, so the marker lives until
the output is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum

from google.protobuf.message import DecodeError

from unibed.dataplane import storage
from unibed.dataplane.records.codec import decode_example
from unibed.dataplane.records.framing import iter_records
from unibed.schemas import features
from unibed.schemas.label_map import LabelMap
from unibed.schemas.manifest import Manifest, ShardInfo

MANIFEST = "manifest.json"
LOCK = "_BUILDING"
BEAM_DONE = "_work/beam.done.json"  # the Beam stage finished for the recipe it names
_EXAMPLES = 5  # offending values quoted per problem
# what a build writes into its output: only such files are cleaned from a PARTIAL one
_BUILD_FILE = re.compile(
    r"^((train|validation)-\d{5}-of-\d{5}\.tfrecord|manifest\.json\.tmp|label_map\.csv"
    r"|duplicates\.csv|rejects\.csv|duplicate_groups\.png|_work/.*|beam-temp[^/]*/.*)$"
)


class OutputState(Enum):
    EMPTY = "empty"
    PARTIAL = "partial"  # files but no manifest.json
    COMPLETE = "complete"  # manifest.json present


class OutputExistsError(RuntimeError):
    """The output holds a complete dataset built from a different recipe."""


class OutputLockedError(RuntimeError):
    """Another run holds the output's build lock."""


class ValidationError(ValueError):
    """A written output does not match its manifest; lists every problem found."""

    def __init__(self, output_dir: str, problems: list[str]):
        super().__init__(
            f"{output_dir}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems)
        )
        self.problems = problems


def inspect_output(output_dir: str) -> OutputState:
    if storage.exists(storage.join(output_dir, MANIFEST)):
        return OutputState.COMPLETE
    return OutputState.PARTIAL if _build_files(output_dir) else OutputState.EMPTY


def prepare_output(output_dir: str, recipe_digest: str, run_id: str | None = None) -> str:
    """Make `output_dir` ready for a build of `recipe_digest`; say what is left to do.

    "build": the output is now empty (a PARTIAL one, left by a failed or
    interrupted run, is deleted). "resume": a PARTIAL output whose Beam stage
    finished for this recipe (BEAM_DONE): only assemble/validate/publish are
    left. "complete": it already holds this recipe's dataset. Raises
    OutputExistsError for another recipe's dataset and OutputLockedError when
    a run other than `run_id` holds the lock.
    """
    holder = _lock_holder(output_dir)
    if holder is not None and holder != run_id:
        raise _locked(output_dir, holder)
    state = inspect_output(output_dir)
    if state is OutputState.COMPLETE:
        existing = Manifest.from_json(storage.read_text(storage.join(output_dir, MANIFEST)))
        if existing.recipe_digest != recipe_digest:
            raise OutputExistsError(
                f"{output_dir} already holds a dataset of recipe {existing.recipe_digest}; "
                f"this build is recipe {recipe_digest}. Choose another output or delete it."
            )
        storage.delete_tree(storage.join(output_dir, "_work"))  # left if killed right after publishing
        return "complete"
    if state is OutputState.PARTIAL:
        files = _build_files(output_dir)
        foreign = [p for p in files if not _BUILD_FILE.match(_relative(output_dir, p))]
        if foreign:
            raise OutputExistsError(
                f"{output_dir} holds files that no build writes (e.g. {foreign[0]}); "
                "refusing to clean it: choose an empty or dedicated output"
            )
        done = beam_done(output_dir)
        if done is not None and done.get("recipe_digest") == recipe_digest:
            return "resume"
        storage.delete(files)
    return "build"


def discard_partial(output_dir: str) -> None:
    """Delete what a build wrote (never the lock): before a Beam attempt that
    starts over, so a retry never mixes two attempts' files."""
    files = [p for p in _build_files(output_dir) if _BUILD_FILE.match(_relative(output_dir, p))]
    storage.delete(files)


def mark_beam_done(output_dir: str, recipe_digest: str, counters: dict[str, int]) -> None:
    """Record that the Beam stage's outputs are complete for this recipe."""
    storage.write_text(storage.join(output_dir, BEAM_DONE), json.dumps(
        {"recipe_digest": recipe_digest, "counters": counters,
         "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, sort_keys=True))


def beam_done(output_dir: str) -> dict | None:
    path = storage.join(output_dir, BEAM_DONE)
    if not storage.exists(path):
        return None
    try:
        return json.loads(storage.read_text(path))
    except ValueError:
        return None  # a torn marker counts as absent: the Beam stage runs again


def new_run_id(label: str = "") -> str:
    """A run id that says where its run lives: `<label>@<host>:pid=<pid>:start=<ticks>:t=<utc>`.
    The lock file holds just this line, so a later run can tell a dead owner."""
    pid = os.getpid()
    return (f"{label or uuid.uuid4().hex}@{socket.gethostname()}:pid={pid}:start={_process_start(pid)}"
            f":t={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")


_RUN_ID = re.compile(r"^(?P<label>.*)@(?P<host>[^:@]+):pid=(?P<pid>\d+):start=(?P<start>\d+|None):t=(?P<t>\S+)$")


def acquire_lock(output_dir: str, run_id: str) -> None:
    if not storage.create_if_absent(storage.join(output_dir, LOCK), run_id.encode("utf-8")):
        raise _locked(output_dir, _lock_holder(output_dir) or "<released meanwhile>")


def release_lock(output_dir: str, run_id: str) -> None:
    holder = _lock_holder(output_dir)
    if holder is None:
        return
    if holder != run_id:
        raise _locked(output_dir, holder)
    storage.delete([storage.join(output_dir, LOCK)])


def stale_lock(output_dir: str) -> str | None:
    """Why the lock is stale (its process on this host is gone), or None when it
    may still be held (or there is none). Other hosts' locks are never judged:
    this host cannot see their processes."""
    holder = _lock_holder(output_dir)
    m = _RUN_ID.match(holder or "")
    if not m or m["host"] != socket.gethostname():
        return None
    pid = int(m["pid"])
    started = _process_start(pid)
    if started is None:
        return f"its process {pid} on {m['host']} has exited"
    if m["start"] != "None" and started != int(m["start"]):
        return f"process {pid} on {m['host']} is another process now (pid reused)"
    return None


def break_lock(output_dir: str, expected_holder: str) -> bool:
    """Remove the lock if it is still `expected_holder`'s; True if removed."""
    if _lock_holder(output_dir) != expected_holder:
        return False
    storage.delete([storage.join(output_dir, LOCK)])
    return True


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), so a reused
    pid is not mistaken for the lock's owner; elsewhere 0 if alive; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else int(fields[19])  # a zombie has exited
    except FileNotFoundError:
        return None
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0


@contextmanager
def build_lock(output_dir: str, run_id: str) -> Iterator[None]:
    """Hold the output's build lock for the duration of a `with` block."""
    acquire_lock(output_dir, run_id)
    try:
        yield
    finally:
        release_lock(output_dir, run_id)


def publish_manifest(output_dir: str, manifest: Manifest) -> None:
    """Write manifest.json last and atomically: it marks the output complete."""
    final = storage.join(output_dir, MANIFEST)
    temporary = final + ".tmp"
    storage.write_text(temporary, manifest.to_json())
    storage.rename(temporary, final)


def validate_output(output_dir: str, manifest: Manifest, label_map: LabelMap) -> None:
    """Re-read everything the manifest claims and raise ValidationError listing every mismatch."""
    problems = _check_label_map(output_dir, manifest, label_map)
    problems += _check_shard_files(output_dir, manifest)
    labels = label_map.lookup()
    id_counts: Counter[bytes] = Counter()
    for split, info in sorted(manifest.splits.items()):
        per_class: Counter[int] = Counter()
        per_source: Counter[str] = Counter()
        for shard in info.shards:
            path = storage.join(output_dir, shard.path)
            if not storage.exists(path):
                continue  # reported by _check_shard_files
            result = _read_shard(path, shard, manifest.num_classes, labels)
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


def _read_shard(path: str, shard: ShardInfo, num_classes: int, labels: dict) -> _ShardResult:
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
                if not 0 <= label < num_classes:
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
            f"{shard.path}: {len(out_of_range)} labels outside [0, {num_classes}): "
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


def _build_files(output_dir: str) -> list[str]:
    """Every file under the output except the lock."""
    lock = storage.join(output_dir, LOCK)
    return [p for p, _ in storage.list_files(storage.join(output_dir, "**")) if p != lock]


def _relative(output_dir: str, path: str) -> str:
    return path[len(output_dir.rstrip("/")) + 1 :]


def _lock_holder(output_dir: str) -> str | None:
    path = storage.join(output_dir, LOCK)
    return storage.read_text(path).strip() if storage.exists(path) else None


def _locked(output_dir: str, holder: str) -> OutputLockedError:
    return OutputLockedError(
        f"{output_dir} is locked by build run {holder!r} ({LOCK}): another build is writing it. "
        f"If no such build is running, rerun with force_unlock=true (flow) or delete "
        f"{storage.join(output_dir, LOCK)}"
    )
