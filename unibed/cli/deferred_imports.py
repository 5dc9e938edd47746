"""Google Cloud client libraries that Apache Beam imports at start-up and a
unibed command never uses, loaded on first use instead (importlib's LazyLoader).

`import apache_beam` imports every connector of its `io` package and the
Dataflow runner, and with them the BigQuery, BigQuery Storage, Pub/Sub and
Dataflow client libraries: ~0.6 s of CPU of the ~3.7 s the import takes,
paid by every command. Beam binds each as a module (`from google.cloud import
bigquery as gcp_bigquery`) and touches it only inside the functions that use
it, so a lazy module changes nothing but when its code runs: a Dataflow
submission loads google.cloud.dataflow when it first uses it, and no unibed
step reads BigQuery or Pub/Sub.

Installed by the `unibed` command's package (unibed/cli/__init__.py) before
anything imports Beam; never by library code, so Beam's worker processes
import as Beam intends. If a Beam upgrade reads one of these at import time,
that module simply loads then (the saving is lost, nothing breaks);
tests/test_cli.py checks that they stay unloaded through the CLI's import and
load on first use. MongoDB's client (~0.3 s) cannot be deferred this way:
Beam's mongodbio takes names out of it (`from pymongo import MongoClient`) as
it is imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

DEFERRED = ("google.cloud.bigquery", "google.cloud.bigquery_storage_v1", "google.cloud.pubsub",
            "google.cloud.dataflow")


class _DeferredFinder(importlib.abc.MetaPathFinder):
    """Finds the DEFERRED modules as the other finders do, with a lazy loader."""

    def find_spec(self, name, path, target=None):
        if name not in DEFERRED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def defer_unused_clients() -> None:
    """Install the lazy finder once (a no-op for modules already imported)."""
    if not any(isinstance(finder, _DeferredFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferredFinder())
