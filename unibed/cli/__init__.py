"""The `unibed` command: main.py parses, one module per command group runs."""

from unibed.cli.main import main

__all__ = ["main"]
