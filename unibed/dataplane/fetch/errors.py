"""Fetch errors: each names the URL, so a failed run says what to look at."""

from __future__ import annotations

from unibed.schemas.errors import ChecksumError


class FetchError(IOError):
    """A file could not be fetched (after retries where retrying makes sense)."""


class RetryableError(FetchError):
    """A failure worth another try: 5xx, 429, a timeout, a dropped connection, a stalled transfer."""

    def __init__(self, message: str, retry_after: float | None = None, progressed: bool = False):
        super().__init__(message)
        self.retry_after, self.progressed = retry_after, progressed


class RemoteChanged(FetchError):
    """The server's answer disagrees with the version being fetched (another size or
    ETag, a failed If-Match): the parts so far may belong to another file, so the
    fetch starts over - as `info` (a RemoteInfo) when the answer stated the size,
    else as a new probe says."""

    def __init__(self, message: str, info=None):
        super().__init__(message)
        self.info = info


class WrongContentError(FetchError):
    """What arrived cannot be the file named (an HTML page for a zip): refused, not retried."""


class NotEnoughSpace(FetchError):
    """The staging folder cannot hold what the server announces."""


class CorruptFileError(FetchError, ChecksumError):
    """The fetched bytes never matched the expected md5; nothing was staged."""


class FetchFailed(FetchError):
    """Some files of a run failed; the others were staged (a rerun resumes).

    failures: {url: cause}; staged_as: {url: the path it was to be staged at}."""

    def __init__(self, failures: dict[str, str], staged_as: dict[str, str] | None = None):
        self.failures, self.staged_as = failures, dict(staged_as or {})
        lines = "\n".join(f"  {line}" for line in self.lines())
        super().__init__(f"{len(failures)} file(s) could not be fetched:\n{lines}")

    def __reduce__(self):  # the default would rebuild it from its message alone
        return FetchFailed, (self.failures, self.staged_as)

    def lines(self) -> list[str]:
        """One '<staged path>: <cause>' per failed file, the cause naming the URL."""
        out = []
        for url, why in sorted(self.failures.items()):
            path, cause = self.staged_as.get(url, url), why if url in why else f"{url}: {why}"
            out.append(cause if cause.startswith(path) else f"{path}: {cause}")
        return out
