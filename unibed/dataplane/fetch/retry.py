"""When to try again and how long to wait: exponential backoff with full jitter,
and the server's Retry-After when it sends one (capped, so a hostile value
cannot stall a run)."""

from __future__ import annotations

import dataclasses
import email.utils
import random
import time

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5            # further tries after a failure that made no progress
    backoff: float = 1.0        # first delay ceiling, seconds; doubles per failure
    backoff_cap: float = 60.0
    retry_after_cap: float = 300.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        # full jitter: spreads the retries of many workers hitting one server
        return random.uniform(0, min(self.backoff_cap, self.backoff * 2 ** (failures - 1)))

    def sleep(self, failures: int, retry_after: float | None = None) -> None:
        time.sleep(self.delay(failures, retry_after))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
