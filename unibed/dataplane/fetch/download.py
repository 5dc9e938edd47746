"""One file from its URL to its staged name, resumable and verified.

Rules:
- A staged file (final name) is accepted as complete only when its record in
  `.fetch/verified/` matches its size and the expected md5, or, without a
  record, when its bytes hash to the expected md5. Anything else there is
  fetched again; the rename then replaces it.
- Bytes arrive in fixed-size parts; a part becomes visible only when complete,
  so a rerun Range-requests only the parts that are missing - provided the
  remote still reports the same size and ETag, else the parts are discarded.
- The md5 runs over all parts in order (parts from an earlier run are read
  back). A mismatch discards every part and fetches the file from scratch, up to
  `corrupt_attempts` times, then fails naming the URL. Without a published md5
  (or one the server states), the size is checked and the computed md5 recorded.
- Only a verified, assembled file of the right size is renamed to the final
  name; the record is written after that rename.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time

from unibed.dataplane import storage
from unibed.dataplane.fetch.errors import CorruptFileError, FetchError
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
    if (not rehash and record.get("size") == size and record.get("md5")
            and expected.md5 in (None, record["md5"])):
        return Outcome(item.name, item.url, size, record["md5"], record.get("md5_source", "?"),
                       "already staged")
    want = expected.md5 or (record.get("md5") if record.get("size") == size else None)
    if want and file_md5(ws.dest) == want:
        source = expected.source if expected.md5 else record.get("md5_source", "?")
        ws.write_record(_record(item, size, want, source))
        return Outcome(item.name, item.url, size, want, source, "already staged")
    return None


def fetch(item: FetchItem, ws: Workspace, remote, info: RemoteInfo, expected: Expected,
          options: FetchOptions, progress: Progress, warn) -> Outcome:
    if expected.md5 is None and info.md5:
        expected = Expected(info.md5, "server")
    elif expected.md5 is None and item.trust_etag and info.etag_md5:
        expected = Expected(info.etag_md5, "etag")
    ws.drop_record()  # from here on, the final name is not vouched for
    ws.drop_incoming()
    count = math.ceil(info.size / options.part_size)
    version = {"url": item.url, "size": info.size, "etag": info.etag, "part_size": options.part_size}
    for attempt in range(1, options.corrupt_attempts + 1):
        md5 = _fetch_parts(item, ws, remote, info.size, count, version, options.part_size, progress)
        if expected.md5 is None or md5 == expected.md5:
            break
        warn(f"{item.url}: md5 {md5} does not match {expected.md5} ({expected.source}), "
             f"attempt {attempt} of {options.corrupt_attempts}; fetching it again from scratch")
        ws.drop_parts()
        progress.rewind(info.size)
    else:
        raise CorruptFileError(
            f"{item.url}: md5 {md5} does not match {expected.md5} ({expected.source}) after "
            f"{options.corrupt_attempts} fetches; nothing was staged as {item.name}")
    ws.assemble(count)
    joined = storage.size(ws.incoming)
    if joined != info.size:
        ws.drop_incoming()
        raise FetchError(f"{item.url}: assembled {joined} bytes, expected {info.size}")
    ws.publish()
    ws.write_record(_record(item, info.size, md5, expected.source))
    ws.drop_parts()
    return Outcome(item.name, item.url, info.size, md5, expected.source, "fetched")


def _fetch_parts(item, ws, remote, size, count, version, part_size, progress) -> str:
    """Every part present (reading back those already there); the md5 over all of them."""
    present = ws.open_parts(version)
    digest = hashlib.md5()
    for index in range(count):
        start = index * part_size
        length = min(part_size, size - start)
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

            remote.copy_range(item.url, start, length, sink)

        ws.write_part(index, length, fill)
    return digest.hexdigest()


def file_md5(path: str) -> str:
    digest = hashlib.md5()
    with storage.open_read(path) as f:
        for chunk in storage.iter_chunks(f, 8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _record(item: FetchItem, size: int, md5: str, source: str) -> dict:
    return {"url": item.url, "size": size, "md5": md5, "md5_source": source,
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
