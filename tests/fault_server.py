"""A real HTTP server on 127.0.0.1 (port 0, in a thread) that serves files and injects faults.

Behaves like S3 for what the fetcher uses: HEAD with Content-Length and an
ETag that is the md5, GET with `Range: bytes=a-b` answered 206 + Content-Range.
Faults, per URL path:
- `script(path, [Fault, ...])`: each GET of the path takes the next fault in
  order (None = serve normally), so a test is deterministic;
- `always(path, fault)`: every GET of the path gets it (a permanent fault);
- `cut(path, offset)`: every GET whose range passes `offset` sends the bytes up
  to it and then drops the connection (an interrupted run).
Every request is logged (method, path, range start, bytes sent, status) for assertions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclasses.dataclass(frozen=True)
class Fault:
    kind: str  # "drop" (after `after` bytes), "status" (`status`, `retry_after`), "corrupt"
    after: int = 0
    status: int = 500
    retry_after: int | None = None


def drop(after: int) -> Fault:
    return Fault("drop", after=after)


def status(code: int, retry_after: int | None = None) -> Fault:
    return Fault("status", status=code, retry_after=retry_after)


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
        self.log: list[Served] = []
        self._scripts: dict[str, list[Fault | None]] = {}
        self._always: dict[str, Fault] = {}
        self._cuts: dict[str, int] = {}
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

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._always.clear()
            self._cuts.clear()
            self.log.clear()

    def requests(self, path: str, method: str = "GET") -> list[Served]:
        with self._lock:
            return [s for s in self.log if s.path == path and s.method == method]

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            if path in self._always:
                return self._always[path]
            script = self._scripts.get(path)
            return script.pop(0) if script else None

    def etag(self, path: str) -> str:
        """S3-like: the md5 of the content (computed once per path)."""
        with self._lock:
            if path not in self._etags:
                with open(self.routes[path], "rb") as f:
                    self._etags[path] = f'"{hashlib.file_digest(f, "md5").hexdigest()}"'
            return self._etags[path]

    def _record(self, served: Served) -> None:
        with self._lock:
            self.log.append(served)


def _handler(server: FaultServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the test log says what was served
            pass

        def _size(self) -> int | None:
            local = server.routes.get(self.path)
            if local is None:
                self._reply(404)
                return None
            return os.path.getsize(local)

        def _read(self, start: int, end: int) -> bytes:
            with open(server.routes[self.path], "rb") as f:
                f.seek(start)
                return f.read(end + 1 - start)

        def _reply(self, code: int, headers: dict | None = None, start=None) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            server._record(Served(self.command, self.path, start, 0, code))

        def do_HEAD(self):
            size = self._size()
            if size is None:
                return
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("ETag", server.etag(self.path))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            server._record(Served("HEAD", self.path, None, 0, 200))

        def do_GET(self):
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
            fault = server._next_fault(self.path)
            if fault is not None and fault.kind == "status":
                extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                self._reply(fault.status, extra, start)
                return
            body = self._read(start, end)
            if fault is not None and fault.kind == "corrupt":
                body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]  # same length, wrong bytes
            limit = len(body)
            if fault is not None and fault.kind == "drop":
                limit = min(limit, fault.after)
            cut = server._cuts.get(self.path)
            if cut is not None and end >= cut:
                limit = min(limit, max(0, cut - start))
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", server.etag(self.path))
            if code == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            try:
                self.wfile.write(body[:limit])
                self.wfile.flush()
            except OSError:
                pass
            server._record(Served("GET", self.path, start if header else None, limit, code))
            if limit < len(body):  # hang up mid-body, as a dropped connection does
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    return Handler
