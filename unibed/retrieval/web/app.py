"""The web page of `unibed serve` (FastAPI, served by uvicorn on loopback by default).

    GET  /                    upload form + gallery images to pick
    POST /search              multipart upload `image` -> its top-k matches
    GET  /search?id=ID        a gallery image as the query (itself left out)
    GET  /thumb/{ID}          thumbnail of a gallery image, or of a duplicate read from the sources
    GET  /duplicates          duplicate groups of the build (kept + dropped, distance)
    GET  /rejects             rejected inputs with reasons
    GET  /summary             label space, counts per source / split / class

Requests name images by id only. An id is looked up in the listing made at
start (gallery items, duplicate keys), so no request reaches a path of its
own making: anything else is a 404. Uploads are bounded by size (checked on
Content-Length and again while streaming, 413), by pixels (checked from the
header before decoding, 400) and by decoding work (a JPEG's scans counted from
its markers before decoding, 400), and every bad upload is answered with the
search page carrying the reason; the server keeps serving.

This module only puts the app together: the routes live in one module per
group (search, thumbs, dataset), what they share in site,
the size guard in upload_limit.
"""

from __future__ import annotations

from fastapi import FastAPI

from unibed.retrieval.search import Searcher
from unibed.retrieval.web.dataset import add_dataset_routes
from unibed.retrieval.web.search import add_search_routes
from unibed.retrieval.web.site import Site
from unibed.retrieval.web.thumbs import add_thumbnail_route
from unibed.retrieval.web.upload_limit import UploadLimit


def create_app(searcher: Searcher, *, top_k: int = 10, max_upload_bytes: int = 20 << 20,
               source_thumbnails: bool = True) -> FastAPI:
    app = FastAPI(title="unibed retrieval", docs_url=None, redoc_url=None, openapi_url=None)
    site = Site(searcher, max_upload_bytes=max_upload_bytes, source_thumbnails=source_thumbnails)
    app.add_middleware(UploadLimit, max_bytes=max_upload_bytes, page=site.too_large)
    add_search_routes(app, site, top_k)
    add_thumbnail_route(app, site)
    add_dataset_routes(app, site)
    return app
