"""Run progress: bytes and files done of the total, transfer rate, ETA; one plain line.

Thread-safe counters that the download workers update; the runner reads a
snapshot every few seconds and hands it to its reporters (terminal, Prefect).
"""

from __future__ import annotations

import dataclasses
import threading
import time


@dataclasses.dataclass(frozen=True)
class Snapshot:
    label: str
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    files_skipped: int
    files_failed: int
    downloaded: int  # bytes over the network in this run (refetches included)
    elapsed: float

    @property
    def rate(self) -> float:
        return self.downloaded / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def fraction(self) -> float:
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total)
        return self.files_done / self.files_total if self.files_total else 1.0

    def eta(self) -> float | None:
        left = self.bytes_total - self.bytes_done
        if left <= 0:
            return 0.0
        return left / self.rate if self.rate > 0 else None

    def line(self) -> str:
        eta = self.eta()
        return (f"{self.label}: {_mb(self.bytes_done)}/{_mb(self.bytes_total)} MB, "
                f"files {self.files_done}/{self.files_total} "
                f"({self.files_skipped} already staged, {self.files_failed} failed), "
                f"{self.rate / 1e6:.1f} MB/s, ETA {_clock(eta)}")


class Progress:
    def __init__(self, label: str, files_total: int):
        self._lock = threading.Lock()
        self._label, self._files_total, self._started = label, files_total, time.monotonic()
        self._bytes_done = self._bytes_total = self._downloaded = 0
        self._files_done = self._skipped = self._failed = 0

    def add_total(self, size: int) -> None:
        with self._lock:
            self._bytes_total += size

    def advance(self, size: int, downloaded: bool = True) -> None:
        with self._lock:
            self._bytes_done += size
            if downloaded:
                self._downloaded += size

    def rewind(self, size: int) -> None:
        """Bytes thrown away (a corrupt file fetched again) are not done."""
        with self._lock:
            self._bytes_done -= size

    def file_done(self, skipped: bool = False) -> None:
        with self._lock:
            self._files_done += 1
            self._skipped += skipped

    def file_failed(self) -> None:
        with self._lock:
            self._failed += 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self._label, self._bytes_done, self._bytes_total, self._files_done,
                            self._files_total, self._skipped, self._failed, self._downloaded,
                            time.monotonic() - self._started)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f}"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
