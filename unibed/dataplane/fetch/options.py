"""Knobs of a fetch run; the defaults suit the real datasets (1 GB tars over the internet)."""

from __future__ import annotations

import dataclasses

from unibed.dataplane.fetch.retry import RetryPolicy


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    workers: int = 8                # files fetched at once
    part_size: int = 64 << 20       # resume granularity: each complete part is its own object
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0      # seconds without a byte before the connection counts as dropped
    # a server dripping a byte every few seconds never trips the read timeout: a
    # transfer slower than min_rate bytes/s over a rate_window is dropped and retried
    min_rate: float = 10 << 10
    rate_window: float = 60.0
    corrupt_attempts: int = 3       # whole-file fetches whose md5 may mismatch (or whose remote changed)
    free_space_margin: int = 256 << 20  # bytes a local staging folder must keep free beyond the download
    progress_every: float = 5.0     # seconds between progress lines
    rehash: bool = False            # re-read staged files with a record instead of trusting it

    def __post_init__(self):
        if self.workers < 1 or self.part_size < 1 or self.corrupt_attempts < 1:
            raise ValueError(f"workers, part_size and corrupt_attempts must be >= 1: {self}")
        if self.min_rate < 0 or self.rate_window <= 0 or self.free_space_margin < 0:
            raise ValueError(f"min_rate and free_space_margin must be >= 0, rate_window > 0: {self}")
