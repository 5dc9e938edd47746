"""Fetch errors: each names the URL, so a failed run says what to look at."""

from __future__ import annotations

from unibed.schemas.errors import ChecksumError


class FetchError(IOError):
    """A file could not be fetched (after retries where retrying makes sense)."""


class RetryableError(FetchError):
    """A failure worth another try: 5xx, 429, a timeout, a dropped connection."""

    def __init__(self, message: str, retry_after: float | None = None, progressed: bool = False):
        super().__init__(message)
        self.retry_after, self.progressed = retry_after, progressed


class CorruptFileError(FetchError, ChecksumError):
    """The fetched bytes never matched the expected md5; nothing was staged."""


class FetchFailed(FetchError):
    """Some files of a run failed; the others were staged (a rerun resumes)."""

    def __init__(self, failures: dict[str, str]):
        self.failures = failures
        lines = "\n".join(f"  {url}: {why}" for url, why in sorted(failures.items()))
        super().__init__(f"{len(failures)} file(s) could not be fetched:\n{lines}")
