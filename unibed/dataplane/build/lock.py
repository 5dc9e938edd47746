"""The output's build lock: one build writes an output at a time.

The lock (`_BUILDING`, created only if absent) holds the run id, which names
host, pid (+ the process's start time) and time (`new_run_id`). A run that
died holding it leaves it behind: a later run on the same host breaks it when
that process is gone (`stale_lock`); a lock from another host is broken only
when the orchestrator can tell its run is over (a callback) or when asked
(`force`), since this host cannot see whether that run still lives.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable

from unibed.dataplane import storage

_LOG = logging.getLogger(__name__)
LOCK = "_BUILDING"
# how a caller breaks a lock it knows is stale: the flow's parameter by default;
# the CLI names its own flag (unibed/cli/build.py)
FLOW_FORCE_OPTION = "force_unlock=true (flow parameter)"


class OutputLockedError(RuntimeError):
    """Another run holds the output's build lock."""


def new_run_id(label: str = "") -> str:
    """A run id that says where its run lives: `<label>@<host>:pid=<pid>:start=<ticks>:t=<utc>`.
    The lock file holds just this line, so a later run can tell a dead owner."""
    pid = os.getpid()
    return (f"{label or uuid.uuid4().hex}@{socket.gethostname()}:pid={pid}:start={_process_start(pid)}"
            f":t={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")


_RUN_ID = re.compile(r"^(?P<label>.*)@(?P<host>[^:@]+):pid=(?P<pid>\d+):start=(?P<start>\d+|None):t=(?P<t>\S+)$")


def acquire_lock(output_dir: str, run_id: str) -> None:
    if not storage.create_if_absent(storage.join(output_dir, LOCK), run_id.encode("utf-8")):
        raise locked_error(output_dir, lock_holder(output_dir) or "<released meanwhile>")


def release_lock(output_dir: str, run_id: str) -> None:
    holder = lock_holder(output_dir)
    if holder is None:
        return
    if holder != run_id:
        raise locked_error(output_dir, holder)
    storage.delete([storage.join(output_dir, LOCK)])


def stale_lock(output_dir: str) -> str | None:
    """Why the lock is stale (its process on this host is gone), or None when it
    may still be held (or there is none). Other hosts' locks are never judged:
    this host cannot see their processes."""
    holder = lock_holder(output_dir)
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
    if lock_holder(output_dir) != expected_holder:
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


def lock_holder(output_dir: str) -> str | None:
    path = storage.join(output_dir, LOCK)
    return storage.read_text(path).strip() if storage.exists(path) else None


def locked_error(output_dir: str, holder: str, force_option: str = FLOW_FORCE_OPTION) -> OutputLockedError:
    """The refusal, naming `force_option`: how the caller's user breaks a stale lock."""
    error = OutputLockedError(
        f"{output_dir} is locked by build run {holder!r} ({LOCK}): another build is writing it. "
        f"If no such build is running, rerun with {force_option} or delete "
        f"{storage.join(output_dir, LOCK)}"
    )
    error.output_dir, error.holder = output_dir, holder
    return error


def acquire(output_dir: str, run_id: str, holder_gone: Callable[[str], str | None] = lambda holder: None,
            force: bool = False, warn: Callable[[str], None] = _LOG.warning) -> None:
    """Take the output's lock, breaking it only when its owner is provably gone
    (its process on this host exited, or `holder_gone` says why) or `force`."""
    try:
        acquire_lock(output_dir, run_id)
        return
    except OutputLockedError:
        holder = lock_holder(output_dir)
        if holder is None:
            raise
        why = stale_lock(output_dir) or holder_gone(holder)
        if why is None and not force:
            raise
        warn(f"breaking the lock of {output_dir} held by {holder!r}: {why or 'force_unlock=true'}")
        break_lock(output_dir, holder)
    acquire_lock(output_dir, run_id)
