"""The state of a build's output folder, and the manifest that completes it.

`manifest.json` is the completeness marker. It is written last, after every
shard and report and after validation passed, to a temporary name and then
renamed (`storage.write_atomic`: local, an atomic rename; GCS, copy + delete
of one object, and each object write is atomic), so a reader sees either no manifest or the whole
one. An output with files but no manifest is PARTIAL: a failed or
interrupted run, never mistaken for a dataset.

Resume: when the Beam stage has finished, `_work/beam.done.json` records the
recipe digest. `prepare_output` keeps a PARTIAL output with that marker for
the same recipe ("resume": shards and side products stay, only assemble ->
validate -> publish run again); any other PARTIAL output is cleaned.
`publish_manifest` runs before `_work` is deleted, so the marker lives until
the output is complete.

Ownership: a build deletes only what a unibed build of this output wrote.
`prepare_output` claims an EMPTY output by writing `_work/output.json`
(OWNED) before anything else; a PARTIAL output without that record, or one
holding files no build writes (_BUILD_FILE), is refused, never cleaned - it
holds someone else's files. Once published, manifest.json is the record.
`check_apart` refuses an output that holds a location the build reads
(cleaning it would delete that input) or lies inside one (the next build of
that source would read the dataset back as unlabelled images).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import time
from enum import Enum

from unibed.dataplane import storage
from unibed.dataplane.build.lock import LOCK, lock_holder, locked_error
from unibed.schemas.errors import SchemaError
from unibed.schemas.manifest import Manifest

MANIFEST = "manifest.json"
WORK = "_work"  # the Beam stage's side products and the resume marker
BEAM_DONE = f"{WORK}/beam.done.json"  # the Beam stage finished for the recipe it names
OWNED = f"{WORK}/output.json"  # a unibed build claimed this output when it was empty
# what a build writes into its output: only such files are cleaned from a PARTIAL one
_BUILD_FILE = re.compile(
    r"^((train|validation|retrieval-query|retrieval-index)-\d{5}-of-\d{5}\.tfrecord"
    r"|manifest\.json\.tmp-[0-9a-f]+|label_map\.csv|heldout_label_map\.csv"
    r"|duplicates\.csv|rejects\.csv|duplicate_groups\.png|_work/.*|beam-temp[^/]*/.*)$"
)


class OutputState(Enum):
    EMPTY = "empty"
    PARTIAL = "partial"  # files but no manifest.json
    COMPLETE = "complete"  # manifest.json present


class OutputExistsError(RuntimeError):
    """The output holds a dataset of a different recipe, or files no unibed build of it wrote."""


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
    holder = lock_holder(output_dir)
    if holder is not None and holder != run_id:
        raise locked_error(output_dir, holder)
    state = inspect_output(output_dir)
    if state is OutputState.COMPLETE:
        existing = _existing_manifest(output_dir)
        if existing.recipe_digest != recipe_digest:
            raise OutputExistsError(
                f"{output_dir} already holds a dataset of recipe {existing.recipe_digest}; "
                f"this build is recipe {recipe_digest}. Choose another output or delete it."
            )
        storage.delete_tree(storage.join(output_dir, WORK))  # left if killed right after publishing
        return "complete"
    if state is OutputState.PARTIAL:
        files = _own_files(output_dir)
        done = beam_done(output_dir)
        if done is not None and done.get("recipe_digest") == recipe_digest:
            return "resume"
        storage.delete(files)
    claim_output(output_dir, run_id)
    return "build"


def claim_output(output_dir: str, run_id: str | None = None) -> None:
    """Record that a unibed build writes this output (kept until it is published)."""
    owned = storage.join(output_dir, OWNED)
    if not storage.exists(owned):
        storage.write_text(owned, json.dumps({"written_by": "unibed build", "run_id": run_id}))


def discard_partial(output_dir: str) -> None:
    """Delete what a build wrote (never the lock, nor the ownership record):
    before a Beam attempt that starts over, so a retry never mixes two attempts' files."""
    storage.delete(_own_files(output_dir))


def _own_files(output_dir: str) -> list[str]:
    """The files a unibed build wrote into a PARTIAL output, but for its OWNED
    record; OutputExistsError when the output holds anything else."""
    files = _build_files(output_dir)
    owned = storage.join(output_dir, OWNED)
    if owned not in files:
        raise OutputExistsError(
            f"{output_dir} holds files no unibed build of it wrote (it has no {OWNED}): "
            f"{_first_few(files)}; refusing to build into it or clean it: choose an empty or "
            "dedicated output"
        )
    foreign = [p for p in files if not _BUILD_FILE.match(_relative(output_dir, p))]
    if foreign:
        raise OutputExistsError(
            f"{output_dir} holds files that no build writes: {_first_few(foreign)}; "
            "refusing to clean it: choose an empty or dedicated output"
        )
    return [p for p in files if p != owned]


def _first_few(paths: list[str], shown: int = 5) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def _existing_manifest(output_dir: str) -> Manifest:
    try:
        return read_manifest(output_dir)
    except (SchemaError, ValueError) as e:
        raise OutputExistsError(
            f"{output_dir} holds a {MANIFEST} that is not a unibed manifest ({e}); "
            "refusing to build into it: choose an empty or dedicated output"
        ) from None


def check_apart(output_dir: str, inputs: dict[str, str]) -> None:
    """SchemaError when the output holds one of `inputs` ({what: location}) or
    lies inside one (local paths with symlinks resolved, gs:// URLs by prefix)."""
    out = _normalised(output_dir)
    for what, location in sorted(inputs.items()):
        where = _normalised(location)
        if _inside(where, out):
            raise SchemaError(
                f"{what} {location} lies inside the output {output_dir}: a build cleans its "
                "output, which would delete it; choose an output outside every source"
            )
        if _inside(out, where):
            raise SchemaError(
                f"the output {output_dir} lies inside {what} {location}: the next build of "
                "it would read the dataset back as unlabelled images; choose an output outside it"
            )


def _normalised(location: str) -> str:
    if storage.is_remote(location):
        scheme, _, path = location.partition("://")
        return f"{scheme}://{posixpath.normpath('/' + path).lstrip('/')}"
    return os.path.realpath(os.path.expanduser(location))


def _inside(path: str, folder: str) -> bool:
    """`path` is `folder` or below it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


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


def read_manifest(output_dir: str) -> Manifest:
    return Manifest.from_json(storage.read_text(storage.join(output_dir, MANIFEST)))


def publish_manifest(output_dir: str, manifest: Manifest) -> None:
    """Write manifest.json last and atomically: it marks the output complete."""
    storage.write_atomic(storage.join(output_dir, MANIFEST), manifest.to_json().encode("utf-8"))


def _build_files(output_dir: str) -> list[str]:
    """Every file under the output except the lock."""
    lock = storage.join(output_dir, LOCK)
    return [p for p, _ in storage.list_files(storage.join(output_dir, "**")) if p != lock]


def _relative(output_dir: str, path: str) -> str:
    return path[len(output_dir.rstrip("/")) + 1 :]
