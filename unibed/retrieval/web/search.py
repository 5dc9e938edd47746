"""The search routes of the web app: the home page, an uploaded query, a picked one."""

from __future__ import annotations

import base64
import os

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile

from unibed.retrieval.images import thumbnail_jpeg
from unibed.retrieval.search import QueryResult
from unibed.retrieval.web.site import Site


def add_search_routes(app: FastAPI, site: Site, top_k: int) -> None:
    searcher = site.searcher

    @app.get("/", response_class=HTMLResponse)
    def home():
        return site.search_page()

    @app.post("/search", response_class=HTMLResponse)
    async def search_upload(request: Request):
        form = await request.form()
        upload = form.get("image")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return site.search_page(400, error="No file chosen: pick an image file to upload.")
        data = await upload.read()
        name = os.path.basename(upload.filename)
        result = await run_in_threadpool(searcher.search_bytes, data, name, top_k)
        return _results_page(site, result, _inline_thumbnail(result))

    @app.get("/search", response_class=HTMLResponse)
    def search_pick(id: str = ""):
        if id not in searcher.by_id:
            return site.search_page(404, error=f"No gallery image with id {id!r}.")
        result = searcher.search_ids([id], top_k)[0]
        item = site.items[searcher.by_id[id]]
        return _results_page(site, result, f"/thumb/{id}", f"{item.label_name} ({item.label})", item.label)


def _inline_thumbnail(result: QueryResult) -> str:
    """The upload's thumbnail as a data: URI (it has no URL of its own); "" if it did not decode."""
    if result.image is None:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(thumbnail_jpeg(result.image)).decode("ascii")


def _results_page(site: Site, result: QueryResult, query_src: str, query_label: str = "",
                  label_id: int = -1) -> HTMLResponse:
    """`label_id` >= 0 (a picked gallery image): each hit is marked relevant (same class) or not."""
    if result.error:
        return site.search_page(400, error=f"Cannot search with {result.name!r}: {result.error}")
    return site.search_page(query={"name": result.name, "src": query_src, "label": query_label,
                                   "label_id": label_id}, matches=result.matches)
