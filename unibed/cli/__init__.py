"""The `unibed` command: main.py parses, one module per command group runs."""

from unibed.cli.deferred_imports import defer_unused_clients

defer_unused_clients()  # before anything imports Beam (deferred_imports.py says why)

from unibed.cli.main import main

__all__ = ["main"]
