"""What every page of the web app shares, worked out once at start: the gallery's
facts, the images offered to pick, the templates, and the duplicates' pictures
read back from the sources (started here, in the background)."""

from __future__ import annotations

import os

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from unibed.retrieval import dataset_pages
from unibed.retrieval.search import Searcher

PICKS = 24
_TEMPLATES = Environment(loader=FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
                         autoescape=select_autoescape(["html"]))


class Site:
    def __init__(self, searcher: Searcher, *, max_upload_bytes: int, source_thumbnails: bool):
        self.searcher, self.gallery, self.items = searcher, searcher.gallery, searcher.items
        self.manifest = getattr(self.gallery, "manifest", None)
        self.label_names = [e.name for e in self.gallery.label_map.entries] if self.manifest else []
        step = max(1, len(self.items) // PICKS)
        self.picks = self.items[::step][:PICKS]
        self.context = {"gallery_name": getattr(self.gallery, "root", ""), "gallery_size": len(self.items),
                        "max_upload_mb": f"{max_upload_bytes / (1 << 20):g}",
                        "max_pixels": f"{searcher.spec.max_pixels:,}"}
        self.groups = dataset_pages.duplicate_groups(self.gallery.root, self.manifest) if self.manifest else []
        self.shown = self.groups[:dataset_pages.MAX_GROUPS]
        self.sources = self._start_source_thumbnails(source_thumbnails)

    def _start_source_thumbnails(self, enabled: bool) -> dataset_pages.SourceThumbnails:
        """Dropped duplicates (and kept ones outside the gallery) are only in the sources."""
        wanted = ({d["key"] for g in self.shown for d in g.dropped}
                  | {g.kept for g in self.shown if g.kept not in self.searcher.by_id})
        sources = dataset_pages.SourceThumbnails(self.manifest, wanted if enabled else set())
        if self.manifest and enabled and wanted:
            sources.start()
        else:
            sources.done.set()
        return sources

    def page(self, name: str, status: int = 200, **values) -> HTMLResponse:
        return HTMLResponse(_TEMPLATES.get_template(name).render(**self.context, **values), status_code=status)

    def search_page(self, status: int = 200, **values) -> HTMLResponse:
        return self.page("search.html", status, title="Search", picks=self.picks, **values)

    def too_large(self, size: int) -> HTMLResponse:
        """The page UploadLimit answers with (413)."""
        return self.search_page(413, error=f"The upload is too large: {size / (1 << 20):.1f} MB or more; "
                                           f"the limit is {self.context['max_upload_mb']} MB.")
