"""Fetch a list of items into a staging root with a thread pool, reporting progress.

Two phases: first the files others are verified against (md5 lists) together
with everything else that has no such dependency, then the files that need a
staged md5 list. Each phase checks what is already staged and probes the rest
(so the byte total is known for the ETA), checks that a local staging folder
has room for what the probes announce (space.py), then fetches. One file's failure does
not stop the others; the run raises FetchFailed at the end naming every URL
that failed, and a rerun resumes.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import sys
from collections.abc import Callable

from unibed.dataplane import storage
from unibed.dataplane.fetch import download
from unibed.dataplane.fetch.errors import FetchError, FetchFailed
from unibed.dataplane.fetch.options import FetchOptions
from unibed.dataplane.fetch.plan import FetchItem
from unibed.dataplane.fetch.progress import Progress, Snapshot
from unibed.dataplane.fetch.remote import open_remote
from unibed.dataplane.fetch.space import ensure_room
from unibed.dataplane.fetch.workspace import Workspace

log = logging.getLogger("unibed.dataplane.fetch")


def print_line(snapshot: Snapshot) -> None:
    print(snapshot.line(), file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class FetchSummary:
    root: str
    outcomes: list[download.Outcome]
    last: Snapshot

    def as_dict(self) -> dict:
        fetched = [o for o in self.outcomes if o.status == "fetched"]
        return {
            "root": self.root,
            "files": len(self.outcomes),
            "fetched": len(fetched),
            "already_staged": len(self.outcomes) - len(fetched),
            "bytes": sum(o.size for o in self.outcomes),
            "downloaded": self.last.downloaded,
            "seconds": round(self.last.elapsed, 3),
            "mb_per_s": round(self.last.rate / 1e6, 2),
        }


def fetch_items(items: list[FetchItem], root: str, options: FetchOptions | None = None,
                on_progress: Callable[[Snapshot], None] = print_line,
                warn: Callable[[str], None] = log.warning, label: str = "fetch") -> FetchSummary:
    """Stage every item under `root` (local or gs://); see download.py for the rules."""
    options = options or FetchOptions()
    names = [item.name for item in items]
    if len(set(names)) != len(names):
        raise ValueError(f"{label}: two items share a staged name")
    progress = Progress(label, len(items))
    outcomes: list[download.Outcome] = []
    failures: dict[str, str] = {}
    listed = {item.md5_list for item in items if item.md5_list}
    later = [item for item in items if item.md5_list]
    first = [item for item in items if not item.md5_list]
    unknown = listed - {item.name for item in first}
    if unknown:
        raise ValueError(f"{label}: md5 lists not in the plan: {', '.join(sorted(unknown))}")

    with cf.ThreadPoolExecutor(options.workers, thread_name_prefix="fetch") as pool:
        for phase in (first, later):
            failed_lists = {i.name for i in first if i.url in failures}
            ready = []
            for item in phase:
                if item.md5_list in failed_lists:
                    failures[item.url] = f"its md5 list {item.md5_list} could not be fetched"
                    progress.file_failed()
                else:
                    ready.append(item)
            # check what is staged, probe the rest: the byte total is then known
            checked = _run(pool, progress, on_progress, options, failures,
                           {item: (lambda i=item: _check(i, root, options, progress, warn)) for item in ready})
            todo = []
            for item, result in checked.items():
                if isinstance(result, download.Outcome):
                    outcomes.append(result)
                else:
                    todo.append((item, *result))
            ensure_room(root, [(item.name, info.size) for item, _, info, _ in todo], options)
            fetched = _run(pool, progress, on_progress, options, failures, {
                item: (lambda a=(item, remote, info, expected): _fetch(*a, root, options, progress, warn))
                for item, remote, info, expected in todo})
            outcomes.extend(fetched.values())
    last = progress.snapshot()
    on_progress(last)
    if failures:
        raise FetchFailed(failures, {item.url: storage.join(root, item.name) for item in items})
    return FetchSummary(root, sorted(outcomes, key=lambda o: o.name), last)


def _check(item: FetchItem, root: str, options: FetchOptions, progress: Progress, warn):
    ws = Workspace(root, item.name)
    expected = download.published_md5(item, root)
    done = download.staged(item, ws, expected, options.rehash)
    if done is not None:
        progress.add_total(done.size)
        progress.advance(done.size, downloaded=False)
        progress.file_done(skipped=True)
        return done
    remote = open_remote(item.url, options, warn)
    info = remote.probe(item.url)
    progress.add_total(info.size)
    return remote, info, expected


def _fetch(item, remote, info, expected, root, options, progress, warn) -> download.Outcome:
    outcome = download.fetch(item, Workspace(root, item.name), remote, info, expected,
                             options, progress, warn)
    progress.file_done()
    return outcome


def _run(pool, progress, on_progress, options, failures, jobs: dict) -> dict:
    """Run the jobs on the pool, reporting progress while waiting; failures are collected."""
    futures = {pool.submit(job): item for item, job in jobs.items()}
    pending = set(futures)
    while pending:
        _, pending = cf.wait(pending, timeout=options.progress_every)
        if pending:
            on_progress(progress.snapshot())
    results = {}
    for future, item in futures.items():
        err = future.exception()
        if err is None:
            results[item] = future.result()
        elif isinstance(err, (FetchError, OSError, ValueError)):
            failures[item.url] = str(err)
            progress.file_failed()
        else:
            raise err
    return results
