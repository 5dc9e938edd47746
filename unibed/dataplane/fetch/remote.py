"""Reading a published file: its size (and md5, where the server states it) and byte ranges.

Two kinds behind one interface: `HttpRemote` (requests, streamed Range GETs
with retries) and `StorageRemote` (gs:// or a local folder, through
unibed/dataplane/storage.py). `copy_range` hands every byte of [start, start+length) to
`sink` exactly once, in order: after a dropped connection or a stalled transfer
(under a rate floor, `Pace`) it asks for the rest of the range only. Each answer
must be for the probed version (If-Match; ETag and Content-Range total
compared), else RemoteChanged. A redirect to another host is logged.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable

import requests
import urllib3

from unibed.dataplane import storage
from unibed.dataplane.fetch.errors import FetchError, RemoteChanged, RetryableError
from unibed.dataplane.fetch.options import FetchOptions
from unibed.dataplane.fetch.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after

log = logging.getLogger("unibed.dataplane.fetch")

Sink = Callable[[bytes], None]
_CHUNK = 1 << 20
_HEX_MD5 = re.compile(r"[0-9a-f]{32}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclasses.dataclass(frozen=True)
class RemoteInfo:
    size: int
    etag: str | None = None  # identifies this version of the file (resume only on the same one)
    md5: str | None = None   # stated by the server itself (Content-MD5, x-goog-hash, GCS metadata)
    etag_md5: str | None = None  # the ETag, when it has the form of an md5 (S3 single-part)
    content_type: str | None = None


def open_remote(url: str, options: FetchOptions, warn: Callable[[str], None] = log.warning):
    if url.startswith(("http://", "https://")):
        return HttpRemote(options.retry, (options.connect_timeout, options.read_timeout),
                          (options.min_rate, options.rate_window), warn)
    return StorageRemote()


class HttpRemote:
    def __init__(self, policy: RetryPolicy, timeouts: tuple[float, float] = (10.0, 60.0),
                 pace: tuple[float, float] = (0.0, 60.0), warn: Callable[[str], None] = log.warning):
        self.policy, self.timeouts, self.pace, self.warn = policy, timeouts, pace, warn
        self._local = threading.local()  # requests.Session is not thread-safe: one per thread
        self._redirects_told: set[tuple[str, str]] = set()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _get(self, url: str, method: str, headers: dict) -> requests.Response:
        """One request; retryable failures raise RetryableError, others FetchError."""
        try:
            response = self._session().request(method, url, headers=headers, stream=True,
                                               timeout=self.timeouts, allow_redirects=True)
        except (requests.ConnectionError, requests.Timeout) as err:
            raise RetryableError(f"{method} {url}: {type(err).__name__}: {err}") from err
        self._tell_redirect(url, response.url)
        if response.status_code in RETRY_STATUSES or response.status_code >= 500:
            response.close()
            raise RetryableError(f"{method} {url}: HTTP {response.status_code}",
                                 parse_retry_after(response.headers.get("Retry-After")))
        if response.status_code == 412:  # If-Match failed: the file is no longer the probed version
            response.close()
            raise RemoteChanged(f"{method} {url}: HTTP 412, the file changed since it was probed "
                                f"(ETag no longer {headers.get('If-Match')})")
        if response.status_code >= 400:
            response.close()
            raise FetchError(f"{method} {url}: HTTP {response.status_code} {response.reason}")
        return response

    def _tell_redirect(self, url: str, final: str) -> None:
        """A redirect to another host is worth a line: the bytes come from somewhere else."""
        asked, served = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(final).hostname
        if asked != served and (url, final) not in self._redirects_told:
            self._redirects_told.add((url, final))
            self.warn(f"{url}: redirected from host {asked} to host {served} ({final})")

    def _with_retries(self, url: str, attempt: Callable[[], None]) -> None:
        """Run `attempt` until it returns; RetryableError means try again after a
        backoff. An attempt that made progress resets the count."""
        failures = 0
        while True:
            try:
                attempt()
                return
            except RetryableError as err:
                failures = 0 if getattr(err, "progressed", False) else failures + 1
                if failures > self.policy.retries:
                    raise FetchError(f"{url}: gave up after {self.policy.retries} retries: {err}") from err
                self.policy.sleep(max(failures, 1), getattr(err, "retry_after", None))

    def probe(self, url: str) -> RemoteInfo:
        result: list[RemoteInfo] = []

        def attempt() -> None:
            with self._get(url, "HEAD", {"Accept-Encoding": "identity"}) as response:
                length = response.headers.get("Content-Length")
                if length is None:
                    raise FetchError(f"HEAD {url}: no Content-Length, so the file cannot be verified")
                result.append(_info(int(length), response.headers))

        self._with_retries(url, attempt)
        return result[0]

    def copy_range(self, url: str, start: int, length: int, sink: Sink, version: RemoteInfo) -> None:
        """Bytes [start, start+length) of `version`; RemoteChanged when the server
        answers for another size or ETag."""
        done = [0]

        def attempt() -> None:
            first, last = start + done[0], start + length - 1
            headers = {"Range": f"bytes={first}-{last}", "Accept-Encoding": "identity"}
            if version.etag and not version.etag.startswith("W/"):  # a weak ETag never matches
                headers["If-Match"] = version.etag
            with self._get(url, "GET", headers) as response:
                _check_range(url, response, first, version)
                before = done[0]
                pace = Pace(*self.pace)
                try:
                    # read1 hands over what has arrived, so a dropped connection loses no
                    # received byte; raw bytes, as the md5 was taken over them
                    while done[0] < length:
                        chunk = response.raw.read1(min(_CHUNK, length - done[0]), decode_content=False)
                        if not chunk:
                            break
                        sink(chunk)
                        done[0] += len(chunk)
                        pace.check(len(chunk), f"GET {url} bytes {first}-{last}")
                    if done[0] >= length:
                        return
                except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
                    raise RetryableError(f"GET {url} bytes {first}-{last}: {err}",
                                         progressed=done[0] > before) from err
            raise RetryableError(f"GET {url} bytes {first}-{last}: connection closed early",
                                 progressed=done[0] > before)

        if length > 0:
            self._with_retries(url, attempt)


class Pace:
    """Drops a transfer whose rate over a window stays under a floor (0 = no floor):
    a server that drips a byte every few seconds never trips the read timeout. The
    bytes received are kept; the retry that follows counts as one without progress."""

    def __init__(self, floor: float, window: float):
        self.floor, self.window = floor, window
        self.since, self.count = time.monotonic(), 0

    def check(self, received: int, what: str) -> None:
        self.count += received
        elapsed = time.monotonic() - self.since
        if self.floor <= 0 or elapsed < self.window:
            return
        rate = self.count / elapsed
        if rate < self.floor:
            raise RetryableError(f"{what}: {rate:.0f} B/s over {elapsed:.1f} s, under the floor of "
                                 f"{self.floor:.0f} B/s (a stalled transfer)")
        self.since, self.count = time.monotonic(), 0


def _check_range(url: str, response: requests.Response, first: int, version: RemoteInfo) -> None:
    """The answer must be the asked-for bytes of the probed version: a Content-Range
    total or an ETag other than the probe's means another file (or a lying HEAD)."""
    total = None
    if response.status_code == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != first:
            raise FetchError(f"GET {url}: asked for bytes from {first}, got Content-Range "
                             f"{response.headers.get('Content-Range')!r}")
        total = None if match.group(3) == "*" else int(match.group(3))
    elif response.status_code == 200 and first == 0:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    else:
        # a 200 to a ranged request from the middle would restart the file: refuse, clearly
        raise FetchError(f"GET {url}: the server ignored the Range request (HTTP {response.status_code})")
    etag = response.headers.get("ETag")
    changed = []
    if total is not None and total != version.size:
        changed.append(f"size {version.size} -> {total} bytes")
    if etag and version.etag and etag != version.etag:
        changed.append(f"ETag {version.etag} -> {etag}")
    if changed:  # a range's Content-MD5 is the range's, not the file's: drop it
        info = dataclasses.replace(_info(total, response.headers), md5=None) if total is not None else None
        raise RemoteChanged(f"GET {url}: the server's answer is for another version of the file "
                            f"({', '.join(changed)})", info)


def _info(size: int, headers) -> RemoteInfo:
    etag = headers.get("ETag")
    bare = etag.removeprefix("W/").strip('"').lower() if etag else None
    md5 = _b64_md5(headers.get("Content-MD5"))
    for part in headers.get("x-goog-hash", "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "md5":
            md5 = _b64_md5(value)
    return RemoteInfo(size, etag, md5, bare if bare and _HEX_MD5.fullmatch(bare) else None,
                      headers.get("Content-Type"))


def _b64_md5(value: str | None) -> str | None:
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


class StorageRemote:
    """A bucket or folder the user supplies (e.g. a copy of Products-10K in gs://)."""

    def probe(self, path: str) -> RemoteInfo:
        size = storage.size(path)
        if size < 0:
            raise FetchError(f"{path}: no such file")
        return RemoteInfo(size, md5=_gcs_md5(path) if path.startswith("gs://") else None)

    def copy_range(self, path: str, start: int, length: int, sink: Sink, version: RemoteInfo) -> None:
        with storage.open_read(path) as f:
            f.seek(start)
            left = length
            while left > 0:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    raise FetchError(f"{path}: ended {left} bytes before offset {start + length}")
                sink(chunk)
                left -= len(chunk)


def _gcs_md5(path: str) -> str | None:
    """GCS keeps an md5 for every non-composite object: verify against it for free."""
    from google.cloud import storage as gcs

    bucket, _, name = path.removeprefix("gs://").partition("/")
    blob = gcs.Client().bucket(bucket).get_blob(name)
    return _b64_md5(blob.md5_hash) if blob is not None else None
