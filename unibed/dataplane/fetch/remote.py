"""Reading a published file: its size (and md5, where the server states it) and byte ranges.

Two kinds behind one interface: `HttpRemote` (requests, streamed Range GETs
with retries) and `StorageRemote` (gs:// or a local folder, through
unibed/dataplane/storage.py). `copy_range` hands every byte of [start, start+length) to
`sink` exactly once, in order: after a dropped connection it asks for the rest
of the range only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import threading
from collections.abc import Callable

import requests
import urllib3

from unibed.dataplane import storage
from unibed.dataplane.fetch.errors import FetchError, RetryableError
from unibed.dataplane.fetch.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after

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


def open_remote(url: str, policy: RetryPolicy, timeouts: tuple[float, float]):
    if url.startswith(("http://", "https://")):
        return HttpRemote(policy, timeouts)
    return StorageRemote()


class HttpRemote:
    def __init__(self, policy: RetryPolicy, timeouts: tuple[float, float] = (10.0, 60.0)):
        self.policy, self.timeouts = policy, timeouts
        self._local = threading.local()  # requests.Session is not thread-safe: one per thread

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
        if response.status_code in RETRY_STATUSES or response.status_code >= 500:
            response.close()
            raise RetryableError(f"{method} {url}: HTTP {response.status_code}",
                                 parse_retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 400:
            response.close()
            raise FetchError(f"{method} {url}: HTTP {response.status_code} {response.reason}")
        return response

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

    def copy_range(self, url: str, start: int, length: int, sink: Sink) -> None:
        done = [0]

        def attempt() -> None:
            first, last = start + done[0], start + length - 1
            headers = {"Range": f"bytes={first}-{last}", "Accept-Encoding": "identity"}
            with self._get(url, "GET", headers) as response:
                _check_range(url, response, first)
                before = done[0]
                try:
                    # read1 hands over what has arrived, so a dropped connection loses no
                    # received byte; raw bytes, as the md5 was taken over them
                    while done[0] < length:
                        chunk = response.raw.read1(min(_CHUNK, length - done[0]), decode_content=False)
                        if not chunk:
                            break
                        sink(chunk)
                        done[0] += len(chunk)
                    if done[0] >= length:
                        return
                except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
                    raise RetryableError(f"GET {url} bytes {first}-{last}: {err}",
                                         progressed=done[0] > before) from err
            raise RetryableError(f"GET {url} bytes {first}-{last}: connection closed early",
                                 progressed=done[0] > before)

        if length > 0:
            self._with_retries(url, attempt)


def _check_range(url: str, response: requests.Response, first: int) -> None:
    if response.status_code == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != first:
            raise FetchError(f"GET {url}: asked for bytes from {first}, got Content-Range "
                             f"{response.headers.get('Content-Range')!r}")
    elif not (response.status_code == 200 and first == 0):
        # a 200 to a ranged request from the middle would restart the file: refuse, clearly
        raise FetchError(f"GET {url}: the server ignored the Range request (HTTP {response.status_code})")


def _info(size: int, headers) -> RemoteInfo:
    etag = headers.get("ETag")
    bare = etag.removeprefix("W/").strip('"').lower() if etag else None
    md5 = _b64_md5(headers.get("Content-MD5"))
    for part in headers.get("x-goog-hash", "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "md5":
            md5 = _b64_md5(value)
    return RemoteInfo(size, etag, md5, bare if bare and _HEX_MD5.fullmatch(bare) else None)


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

    def copy_range(self, path: str, start: int, length: int, sink: Sink) -> None:
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
