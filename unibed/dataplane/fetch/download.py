"""One file from its URL to its staged name, resumable and verified.

Rules:
- A staged file (final name) is accepted as complete only when its record in
  `.fetch/verified/` is for the same URL and matches its size and the expected
  md5, or, without such a record, when its bytes hash to the expected md5.
  Anything else there is fetched again; the rename then replaces it.
- Bytes arrive in fixed-size parts; a part becomes visible only when complete,
  so a rerun Range-requests only the parts that are missing - provided the
  remote still reports the same size and ETag, else the parts are discarded.
- Every response must be for the probed version: each Range GET carries
  If-Match (a strong ETag), and its ETag and Content-Range total are compared
  with the probe's. Any difference (a file replaced between parts, a HEAD that
  understates the size) discards the parts and starts over as the server now
  describes the file, up to `corrupt_attempts` times - never a file stitched
  from two versions or cut at a wrong size.
- The md5 runs over all parts in order (parts from an earlier run are read
  back). A mismatch discards every part and fetches the file from scratch, up to
  `corrupt_attempts` times, then fails naming the URL. Without a published md5
  (or one the server states), the size is checked and the computed md5 recorded.
- What cannot be the named file is refused, naming the URL, what was expected
  and what came: an archive served as text/html, first bytes that are not the
  archive's magic, an HTML page for a CSV (content.py).
- Only a verified, assembled file of the right size is renamed to the final
  name; the record (URL, size, ETag, md5) is written after that rename.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time

from unibed.dataplane import storage
from unibed.dataplane.fetch.content import HEAD_BYTES, check_content_type, check_head
from unibed.dataplane.fetch.errors import (
    CorruptFileError,
    FetchError,
    RemoteChanged,
    WrongContentError,
)
from unibed.dataplane.fetch.options import FetchOptions
from unibed.dataplane.fetch.plan import FetchItem
from unibed.dataplane.fetch.progress import Progress
from unibed.dataplane.fetch.remote import RemoteInfo
from unibed.dataplane.fetch.workspace import Workspace


@dataclasses.dataclass(frozen=True)
class Expected:
    md5: str | None
    source: str  # where the md5 comes from: "given", "md5 list <name>", "server", "etag", "computed"


@dataclasses.dataclass(frozen=True)
class Outcome:
    name: str
    url: str
    size: int
    md5: str
    md5_source: str
    status: str  # "fetched" | "already staged"


def published_md5(item: FetchItem, root: str) -> Expected:
    """The md5 known before contacting the server: given, or from a staged md5 list."""
    if item.md5:
        return Expected(item.md5, "given")
    if not item.md5_list:
        return Expected(None, "computed")
    path = storage.join(root, item.md5_list)
    if not storage.exists(path):
        raise FetchError(f"{item.url}: its md5 list {item.md5_list} is not staged")
    for line in storage.read_text(path).splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("*") == storage.basename(item.name):
            return Expected(fields[0].lower(), f"md5 list {item.md5_list}")
    raise FetchError(f"{path}: no '<md5>  {storage.basename(item.name)}' line")


def staged(item: FetchItem, ws: Workspace, expected: Expected, rehash: bool) -> Outcome | None:
    """The staged file's outcome if it is there and verified, else None."""
    size = storage.size(ws.dest)
    if size < 0:
        return None
    record = ws.read_record() or {}
    if record.get("url") != item.url:
        record = {}  # a record vouches for the bytes of its own URL only
    if (not rehash and record.get("size") == size and record.get("md5")
            and expected.md5 in (None, record["md5"])):
        return Outcome(item.name, item.url, size, record["md5"], record.get("md5_source", "?"),
                       "already staged")
    want = expected.md5 or (record.get("md5") if record.get("size") == size else None)
    if want and file_md5(ws.dest) == want:
        source = expected.source if expected.md5 else record.get("md5_source", "?")
        ws.write_record(_record(item, size, record.get("etag"), want, source))
        return Outcome(item.name, item.url, size, want, source, "already staged")
    return None


def fetch(item: FetchItem, ws: Workspace, remote, info: RemoteInfo, published: Expected,
          options: FetchOptions, progress: Progress, warn) -> Outcome:
    """Fetch, check and stage one file; `published` is the md5 known before probing."""
    check_content_type(item.url, item.name, info.content_type)
    ws.drop_record()  # from here on, the final name is not vouched for
    ws.drop_incoming()
    attempts, why = options.corrupt_attempts, ""
    for attempt in range(1, attempts + 1):
        expected, tally = _expected(item, published, info), _Tally(progress)
        try:
            md5 = _fetch_parts(item, ws, remote, info, options.part_size, tally)
        except RemoteChanged as changed:
            why = str(changed)
            info = _restart(item, ws, remote, info, changed, tally, warn, f"attempt {attempt} of {attempts}")
            continue
        _check_head(item, ws, info, _count(info.size, options.part_size))
        if expected.md5 is None or md5 == expected.md5:
            return _publish(item, ws, info, md5, expected.source, _count(info.size, options.part_size))
        why = f"md5 {md5} does not match {expected.md5} ({expected.source})"
        warn(f"{item.url}: {why}, attempt {attempt} of {attempts}; fetching it again from scratch")
        ws.drop_parts()
        tally.rewind()
    if why.startswith("md5 "):
        raise CorruptFileError(f"{item.url}: {why} after {attempts} fetches; nothing was staged as {item.name}")
    raise FetchError(f"{item.url}: the file kept changing during {attempts} fetches ({why}); "
                     f"nothing was staged as {item.name}")


def _expected(item: FetchItem, published: Expected, info: RemoteInfo) -> Expected:
    """The md5 to verify against: the published one, else what this version's server states."""
    if published.md5 is None and info.md5:
        return Expected(info.md5, "server")
    if published.md5 is None and item.trust_etag and info.etag_md5:
        return Expected(info.etag_md5, "etag")
    return published


def _restart(item, ws, remote, info, changed: RemoteChanged, tally, warn, attempt: str) -> RemoteInfo:
    """Parts of another version are worthless: drop them and fetch the version the
    server now describes (a lying HEAD is corrected by the Content-Range total)."""
    new = changed.info or remote.probe(item.url)
    if changed.info is None and new.etag == info.etag:
        # a 412 for the very ETag its HEAD still states: this server cannot judge
        # If-Match, so stop asking (the Content-Range totals and the md5 still guard)
        new = dataclasses.replace(new, etag=None)
    warn(f"{changed}; {attempt}: fetching {item.url} again from scratch "
         f"as {new.size} bytes (was {info.size})")
    ws.drop_parts()
    tally.rewind()
    tally.progress.add_total(new.size - info.size)
    check_content_type(item.url, item.name, new.content_type)
    return new


def _check_head(item: FetchItem, ws: Workspace, info: RemoteInfo, count: int) -> None:
    try:
        check_head(item.url, item.name, ws.read_head(count, HEAD_BYTES), info.content_type)
    except WrongContentError:
        ws.drop_parts()  # what the server sends instead of the file is not worth resuming
        raise


def _publish(item: FetchItem, ws: Workspace, info: RemoteInfo, md5: str, source: str, count: int) -> Outcome:
    ws.assemble(count)
    joined = storage.size(ws.incoming)
    if joined != info.size:
        ws.drop_incoming()
        raise FetchError(f"{item.url}: assembled {joined} bytes, expected {info.size}")
    ws.publish()
    ws.write_record(_record(item, info.size, info.etag, md5, source))
    ws.drop_parts()
    return Outcome(item.name, item.url, info.size, md5, source, "fetched")


def _count(size: int, part_size: int) -> int:
    return math.ceil(size / part_size)


class _Tally:
    """Progress of one fetch attempt, so that bytes thrown away can be taken back."""

    def __init__(self, progress: Progress):
        self.progress, self.count = progress, 0

    def advance(self, size: int, downloaded: bool = True) -> None:
        self.count += size
        self.progress.advance(size, downloaded)

    def rewind(self) -> None:
        self.progress.rewind(self.count)
        self.count = 0


def _fetch_parts(item, ws, remote, info: RemoteInfo, part_size: int, progress: _Tally) -> str:
    """Every part present (reading back those already there); the md5 over all of them."""
    version = {"url": item.url, "size": info.size, "etag": info.etag, "part_size": part_size}
    present = ws.open_parts(version)
    digest = hashlib.md5()
    for index in range(_count(info.size, part_size)):
        start = index * part_size
        length = min(part_size, info.size - start)
        if present.get(index) == length:
            with storage.open_read(ws.part_path(index)) as f:
                for chunk in storage.iter_chunks(f):
                    digest.update(chunk)
            progress.advance(length, downloaded=False)
            continue

        def fill(writer, start=start, length=length):
            def sink(data: bytes) -> None:
                writer.write(data)
                digest.update(data)
                progress.advance(len(data))

            remote.copy_range(item.url, start, length, sink, info)

        ws.write_part(index, length, fill)
    return digest.hexdigest()


def file_md5(path: str) -> str:
    digest = hashlib.md5()
    with storage.open_read(path) as f:
        for chunk in storage.iter_chunks(f, 8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _record(item: FetchItem, size: int, etag: str | None, md5: str, source: str) -> dict:
    return {"url": item.url, "size": size, "etag": etag, "md5": md5, "md5_source": source,
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
