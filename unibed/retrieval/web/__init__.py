"""The web page of `unibed serve`: app.py puts it together (see there)."""

from unibed.retrieval.web.app import create_app

__all__ = ["create_app"]
