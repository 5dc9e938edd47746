"""A real HTTP server on 127.0.0.1 (port 0, in a thread) that serves files and injects faults.

Behaves like S3 for what the fetcher uses: HEAD with Content-Length and an
ETag that is the md5, GET with `Range: bytes=a-b` answered 206 + Content-Range.
Faults, per URL path:
- `script(path, [Fault, ...])`: each GET of the path takes the next fault in
  order (None = serve normally), so a test is deterministic;
- `always(path, fault)`: every GET of the path gets it (a permanent fault);
- `cut(path, offset)`: every GET whose range passes `offset` sends the bytes up
  to it and then drops the connection (an interrupted run);
- `drip(every, size, for_s)` (a Fault): the body trickles out `size` bytes every
  `every` seconds for `for_s` seconds, then the rest at once (a stalled link);
- `understate(path, size)`: HEAD announces `size` bytes while every 206's
  Content-Range states the true total;
- `replace(path, local, after_gets)`: from GET number `after_gets + 1` on, the
  path serves another file (a new version: new bytes, new ETag). GETs with an
  If-Match that is no longer the ETag get 412, as S3 answers; `if_match`
  = "ignore" serves them anyway, "refuse" answers 412 to every If-Match (a
  broken server);
- `redirect(path, location)`: HEAD and GET answer 302 to `location`;
- `add(path, local, content_type)`: a route served with its own Content-Type
  (an HTML page where an archive should be).
Every request is logged (method, path, range start, bytes sent, status) for assertions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclasses.dataclass(frozen=True)
class Fault:
    kind: str  # "drop" (after `after` bytes), "status" (`status`, `retry_after`), "corrupt", "drip"
    after: int = 0
    status: int = 500
    retry_after: int | None = None
    every: float = 0.0  # drip: seconds between slices of `after` bytes, for `for_s` seconds
    for_s: float = 0.0


def drop(after: int) -> Fault:
    return Fault("drop", after=after)


def status(code: int, retry_after: int | None = None) -> Fault:
    return Fault("status", status=code, retry_after=retry_after)


def drip(every: float, size: int, for_s: float) -> Fault:
    return Fault("drip", after=size, every=every, for_s=for_s)


CORRUPT = Fault("corrupt")


@dataclasses.dataclass(frozen=True)
class Served:
    method: str
    path: str
    start: int | None
    sent: int
    status: int


class FaultServer:
    def __init__(self, routes: dict[str, str]):
        """routes: URL path (e.g. /google-landmark/train/images_000.tar) -> local file."""
        self.routes = dict(routes)
        self.types: dict[str, str] = {}
        self.log: list[Served] = []
        self.if_match = "honour"
        self._scripts: dict[str, list[Fault | None]] = {}
        self._always: dict[str, Fault] = {}
        self._cuts: dict[str, int] = {}
        self._head_sizes: dict[str, int] = {}
        self._replacements: dict[str, tuple[str, int]] = {}
        self._replaced_from: dict[str, str] = {}  # path -> the file it served before
        self._redirects: dict[str, str] = {}
        self._gets: dict[str, int] = {}
        self._lock = threading.Lock()
        self._etags: dict[str, str] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, path: str, faults: list[Fault | None]) -> None:
        with self._lock:
            self._scripts[path] = list(faults)

    def always(self, path: str, fault: Fault) -> None:
        with self._lock:
            self._always[path] = fault

    def cut(self, path: str, offset: int) -> None:
        with self._lock:
            self._cuts[path] = offset

    def add(self, path: str, local: str, content_type: str | None = None) -> None:
        with self._lock:
            self.routes[path] = local
            if content_type:
                self.types[path] = content_type

    def understate(self, path: str, size: int) -> None:
        with self._lock:
            self._head_sizes[path] = size

    def replace(self, path: str, local: str, after_gets: int) -> None:
        with self._lock:
            self._replacements[path] = (local, after_gets)
            self._replaced_from.setdefault(path, self.routes[path])

    def redirect(self, path: str, location: str) -> None:
        with self._lock:
            self._redirects[path] = location

    def clear(self) -> None:
        with self._lock:
            self.routes.update(self._replaced_from)
            self._replaced_from.clear()
            for faults in (self._scripts, self._always, self._cuts, self._head_sizes,
                           self._replacements, self._redirects, self._gets):
                faults.clear()
            self.if_match = "honour"
            self.log.clear()

    def requests(self, path: str, method: str = "GET") -> list[Served]:
        with self._lock:
            return [s for s in self.log if s.path == path and s.method == method]

    def settled(self, path: str, count: int, timeout: float = 5.0, method: str = "GET") -> list[Served]:
        """The requests of `path` once `count` are logged (a request is logged when its
        handler ends, after the client may have its answer), by start."""
        deadline = time.monotonic() + timeout
        while len(self.requests(path, method)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return sorted(self.requests(path, method), key=lambda s: s.start or 0)

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            if path in self._always:
                return self._always[path]
            script = self._scripts.get(path)
            return script.pop(0) if script else None

    def etag(self, path: str) -> str:
        """S3-like: the md5 of the content (computed once per file served)."""
        with self._lock:
            local = self.routes[path]
            if local not in self._etags:
                with open(local, "rb") as f:
                    self._etags[local] = f'"{hashlib.file_digest(f, "md5").hexdigest()}"'
            return self._etags[local]

    def _count_get(self, path: str) -> None:
        """One more GET of `path`; a scheduled replacement takes effect after its count."""
        with self._lock:
            self._gets[path] = self._gets.get(path, 0) + 1
            local, after = self._replacements.get(path, (None, 0))
            if local is not None and self._gets[path] > after:
                self.routes[path] = local

    def _record(self, served: Served) -> None:
        with self._lock:
            self.log.append(served)


class _Handler(BaseHTTPRequestHandler):
    server_state: FaultServer  # set per server by _handler

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the test log says what was served
        pass

    def _size(self) -> int | None:
        location = self.server_state._redirects.get(self.path)
        if location is not None:
            self._reply(302, {"Location": location})
            return None
        local = self.server_state.routes.get(self.path)
        if local is None:
            self._reply(404)
            return None
        return os.path.getsize(local)

    def _read(self, start: int, end: int) -> bytes:
        with open(self.server_state.routes[self.path], "rb") as f:
            f.seek(start)
            return f.read(end + 1 - start)

    def _reply(self, code: int, headers: dict | None = None, start=None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server_state._record(Served(self.command, self.path, start, 0, code))

    def _content_type(self) -> str:
        return self.server_state.types.get(self.path, "application/octet-stream")

    def do_HEAD(self):
        size = self._size()
        if size is None:
            return
        self.send_response(200)
        self.send_header("Content-Length", str(self.server_state._head_sizes.get(self.path, size)))
        self.send_header("ETag", self.server_state.etag(self.path))
        self.send_header("Content-Type", self._content_type())
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.server_state._record(Served("HEAD", self.path, None, 0, 200))

    def do_GET(self):
        if self.path in self.server_state.routes:
            self.server_state._count_get(self.path)
        size = self._size()
        if size is None:
            return
        start, end, code = 0, size - 1, 200
        header = self.headers.get("Range")
        if header:
            match = _RANGE.match(header)
            if not match or int(match.group(1)) >= size:
                self._reply(416, {"Content-Range": f"bytes */{size}"})
                return
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            code = 206
        wanted = self.headers.get("If-Match")
        state = self.server_state
        if wanted and (state.if_match == "refuse"
                       or state.if_match == "honour" and wanted != state.etag(self.path)):
            self._reply(412, {}, start)
            return
        fault = self.server_state._next_fault(self.path)
        if fault is not None and fault.kind == "status":
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self._reply(fault.status, extra, start)
            return
        self._send_body(code, start, end, size, fault, header is not None)

    def _send_body(self, code, start, end, size, fault, ranged) -> None:
        body = self._read(start, end)
        if fault is not None and fault.kind == "corrupt":
            body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]  # same length, wrong bytes
        limit = len(body)
        if fault is not None and fault.kind == "drop":
            limit = min(limit, fault.after)
        cut = self.server_state._cuts.get(self.path)
        if cut is not None and end >= cut:
            limit = min(limit, max(0, cut - start))
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", self.server_state.etag(self.path))
        self.send_header("Content-Type", self._content_type())
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        sent = self._write(body[:limit], fault if fault is not None and fault.kind == "drip" else None)
        self.server_state._record(Served("GET", self.path, start if ranged else None, sent, code))
        if sent < len(body):  # hang up mid-body, as a dropped connection does
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _write(self, data: bytes, drip: Fault | None) -> int:
        """Send `data` (a drip first trickles it); the bytes the client took."""
        sent = 0
        try:
            if drip is not None:
                until = time.monotonic() + drip.for_s
                while sent < len(data) and time.monotonic() < until:
                    self.wfile.write(data[sent:sent + drip.after])
                    self.wfile.flush()
                    sent = min(len(data), sent + drip.after)
                    time.sleep(drip.every)
            self.wfile.write(data[sent:])
            self.wfile.flush()
            return len(data)
        except OSError:
            return sent


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"server_state": server})
