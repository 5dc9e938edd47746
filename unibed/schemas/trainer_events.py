"""The trainer's event lines: how `python -m unibed.trainer` tells the process that
started it (the `train` flow, tests) what happened, one JSON object per line
on stdout, marked so they stand out from TensorFlow's own output."""

from __future__ import annotations

import json

PREFIX = "UNIBED_METRIC "


def format_event(event: dict) -> str:
    return PREFIX + json.dumps(event, sort_keys=True)


def parse_event(line: str) -> dict | None:
    """The event on this line, or None for any other output."""
    return json.loads(line[len(PREFIX):]) if line.startswith(PREFIX) else None


def parse_events(text: str) -> list[dict]:
    return [e for e in map(parse_event, text.splitlines()) if e is not None]
