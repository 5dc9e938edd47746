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
Content-Length and again while streaming, 413) and by pixels (checked from
the header before decoding, 400), and every bad upload is answered with the
search page carrying the reason; the server keeps serving.
"""

from __future__ import annotations

import base64
import functools
import os
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import UploadFile

from unibed.retrieval import dataset_pages
from unibed.retrieval.images import thumbnail_jpeg
from unibed.retrieval.search import Searcher

PICKS = 24
_TEMPLATES = Environment(loader=FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
                         autoescape=select_autoescape(["html"]))


class _TooLarge(Exception):
    pass


class UploadLimit:
    """ASGI middleware: POST bodies above `max_bytes` get `page(413)` and never reach the app.
    The body is drained (up to a bound) before answering, so the browser reads the page
    instead of a connection reset."""

    def __init__(self, app, max_bytes: int, page):
        self.app, self.max_bytes, self.page = app, max_bytes, page

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._drain(receive)
            return await self._reject(scope, send, int(length))
        seen, started = 0, False

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._drain(receive)
                await self._reject(scope, send, seen)

    async def _drain(self, receive) -> None:
        drained = 0
        while drained < 20 * self.max_bytes:
            message = await receive()
            drained += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                return

    async def _reject(self, scope, send, size: int) -> None:
        async def no_body():
            return {"type": "http.disconnect"}

        await self.page(size)(scope, no_body, send)


def create_app(searcher: Searcher, *, top_k: int = 10, max_upload_bytes: int = 20 << 20,
               source_thumbnails: bool = True) -> FastAPI:
    app = FastAPI(title="unibed retrieval", docs_url=None, redoc_url=None, openapi_url=None)
    gallery, items = searcher.gallery, searcher.items
    manifest = getattr(gallery, "manifest", None)
    label_names = [e.name for e in gallery.label_map.entries] if manifest else []
    step = max(1, len(items) // PICKS)
    picks = items[::step][:PICKS]
    context = {"gallery_name": getattr(gallery, "root", ""), "gallery_size": len(items),
               "max_upload_mb": f"{max_upload_bytes / (1 << 20):g}", "max_pixels": f"{searcher.spec.max_pixels:,}"}

    groups = dataset_pages.duplicate_groups(gallery.root, manifest) if manifest else []
    shown = groups[:dataset_pages.MAX_GROUPS]
    wanted = {d["key"] for g in shown for d in g.dropped} | {g.kept for g in shown if g.kept not in searcher.by_id}
    sources = dataset_pages.SourceThumbnails(manifest, wanted if source_thumbnails else set())
    if manifest and source_thumbnails and wanted:
        sources.start()
    else:
        sources.done.set()

    def page(name: str, status: int = 200, **values) -> HTMLResponse:
        return HTMLResponse(_TEMPLATES.get_template(name).render(**context, **values), status_code=status)

    def search_page(status: int = 200, **values) -> HTMLResponse:
        return page("search.html", status, title="Search", picks=picks, **values)

    def too_large(size: int) -> HTMLResponse:
        return search_page(413, error=f"The upload is too large: {size / (1 << 20):.1f} MB or more; "
                                      f"the limit is {context['max_upload_mb']} MB.")

    app.add_middleware(UploadLimit, max_bytes=max_upload_bytes, page=too_large)

    @functools.lru_cache(maxsize=4096)
    def gallery_thumb(image_id: str) -> bytes:
        return thumbnail_jpeg(searcher.read_image(image_id))

    def results_page(result, query_src: str, query_label: str = "") -> HTMLResponse:
        if result.error:
            return search_page(400, error=f"Cannot search with {result.name!r}: {result.error}")
        return search_page(query={"name": result.name, "src": query_src, "label": query_label},
                           matches=result.matches)

    @app.get("/", response_class=HTMLResponse)
    def home():
        return search_page()

    @app.post("/search", response_class=HTMLResponse)
    async def search_upload(request: Request):
        form = await request.form()
        upload = form.get("image")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return search_page(400, error="No file chosen: pick an image file to upload.")
        data = await upload.read()
        name = os.path.basename(upload.filename)
        result = await run_in_threadpool(searcher.search_bytes, data, name, top_k)
        src = ""
        if result.image is not None:
            src = "data:image/jpeg;base64," + base64.b64encode(thumbnail_jpeg(result.image)).decode("ascii")
        return results_page(result, src)

    @app.get("/search", response_class=HTMLResponse)
    def search_pick(id: str = ""):
        if id not in searcher.by_id:
            return search_page(404, error=f"No gallery image with id {id!r}.")
        result = searcher.search_ids([id], top_k)[0]
        item = items[searcher.by_id[id]]
        return results_page(result, f"/thumb/{id}", f"{item.label_name} ({item.label})")

    @app.get("/thumb/{image_id:path}")
    def thumb(image_id: str):
        if image_id in searcher.by_id:
            return Response(gallery_thumb(image_id), media_type="image/jpeg",
                            headers={"Cache-Control": "max-age=3600"})
        if image_id in sources.wanted:
            sources.done.wait(timeout=60)
            data, _ = sources.status(image_id)
            if data is not None:
                return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
        return Response("no such image", status_code=404, media_type="text/plain")

    def tile(key: str) -> dict:
        if key in searcher.by_id:
            return {"key": key, "src": f"/thumb/{key}"}
        data, reason = sources.status(key)
        return {"key": key, "src": f"/thumb/{key}" if data else "", "reason": reason}

    def label_name(label: str) -> str:
        return f"{label_names[int(label)]} ({label})" if label.isdigit() and int(label) < len(label_names) else label

    @app.get("/duplicates", response_class=HTMLResponse)
    def duplicates():
        if not manifest:
            return page("duplicates.html", title="Duplicates", groups=[],
                        note="A folder gallery has no dedup report; serve a build to see its duplicates.")
        sources.done.wait(timeout=30)  # usually done long before anyone opens the page
        view = [{"kept": g.kept, "kept_label_name": label_name(g.kept_label), "kept_tile": tile(g.kept),
                 "dropped": [{**d, "label_name": label_name(d["label"]), "tile": tile(d["key"])} for d in g.dropped]}
                for g in shown]
        return page("duplicates.html", title="Duplicates", groups=view, total=len(groups),
                    dropped=sum(len(g.dropped) for g in groups), pending=not sources.done.is_set())

    @app.get("/rejects", response_class=HTMLResponse)
    def rejects():
        if not manifest:
            return page("rejects.html", title="Rejects", rows=[], note="A folder gallery has no rejects report; "
                        f"{len(getattr(gallery, 'skipped', []))} files were skipped when indexing it.")
        return page("rejects.html", title="Rejects", rows=dataset_pages.rejects(gallery.root, manifest))

    @app.get("/summary", response_class=HTMLResponse)
    def summary():
        if manifest:
            s = {**dataset_pages.summary(manifest, label_names), "manifest": True, "columns": list(manifest.splits)}
        else:
            counts = Counter((i.label, i.label_name) for i in items)
            s = {"manifest": False, "num_classes": len({c[0] for c in counts if c[0] >= 0}), "count": len(items),
                 "columns": ["images"],
                 "per_class": [{"id": c[0], "name": c[1] or "(top level)", "images": n}
                               for c, n in sorted(counts.items())]}
        return page("summary.html", title="Summary", s=s)

    return app
