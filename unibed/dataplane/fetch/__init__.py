"""Fetching the published archives into a staging root (local folder or gs://).

    items = plan_gldv2(tars=500)                       # or plan_from_base("products10k", url)
    summary = fetch_items(items, "gs://bucket/staging/gldv2", FetchOptions(workers=8))

Parallel (a thread pool over files), resumable (fixed-size parts, HTTP Range for
the missing ones), verified (md5 where published, else size, with the md5
recorded; every part from the same remote version; first bytes that fit the
name), retried with backoff on 5xx, 429 (honouring Retry-After), dropped
connections and stalled transfers, checked for room before the first byte,
idempotent (a rerun skips files verified from the same URL and never accepts a
partial or corrupt one). The rules are in download.py; the work files' layout
in workspace.py; the Prefect flow is unibed/flows/fetch_sources.py.
"""

from unibed.dataplane.fetch.errors import (
    CorruptFileError,
    FetchError,
    FetchFailed,
    NotEnoughSpace,
    WrongContentError,
)
from unibed.dataplane.fetch.options import FetchOptions
from unibed.dataplane.fetch.plan import (
    GLDV2_URL,
    FetchItem,
    plan_from_base,
    plan_gldv2,
    plan_sources,
)
from unibed.dataplane.fetch.progress import Snapshot
from unibed.dataplane.fetch.retry import RetryPolicy
from unibed.dataplane.fetch.runner import FetchSummary, fetch_items

__all__ = [
    "GLDV2_URL", "CorruptFileError", "FetchError", "FetchFailed", "FetchItem", "FetchOptions",
    "FetchSummary", "NotEnoughSpace", "RetryPolicy", "Snapshot", "WrongContentError", "fetch_items",
    "plan_from_base", "plan_gldv2", "plan_sources",
]
