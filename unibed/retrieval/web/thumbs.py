"""The thumbnail route of the web app: a gallery image, or a duplicate read from the sources.

Only ids listed at start are served (gallery items, wanted duplicate keys):
any other id is a 404, so no request reaches a path of its own making."""

from __future__ import annotations

import functools

from fastapi import FastAPI
from fastapi.responses import Response

from unibed.retrieval.images import thumbnail_jpeg
from unibed.retrieval.web.site import Site

_CACHED = {"Cache-Control": "max-age=3600"}


def add_thumbnail_route(app: FastAPI, site: Site) -> None:
    searcher, sources = site.searcher, site.sources

    @functools.lru_cache(maxsize=4096)
    def gallery_thumb(image_id: str) -> bytes:
        return thumbnail_jpeg(searcher.read_image(image_id))

    @app.get("/thumb/{image_id:path}")
    def thumb(image_id: str):
        if image_id in searcher.by_id:
            return Response(gallery_thumb(image_id), media_type="image/jpeg", headers=_CACHED)
        if image_id in sources.wanted:
            sources.done.wait(timeout=60)
            data, _ = sources.status(image_id)
            if data is not None:
                return Response(data, media_type="image/jpeg", headers=_CACHED)
        return Response("no such image", status_code=404, media_type="text/plain")
