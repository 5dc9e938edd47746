"""The dataset routes of the web app: a build's duplicates, rejects and summary.

A folder gallery has no build reports: its pages say so, and its summary is
counted from the folder's items."""

from __future__ import annotations

from collections import Counter

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from unibed.retrieval import dataset_pages
from unibed.retrieval.web.site import Site


def add_dataset_routes(app: FastAPI, site: Site) -> None:
    manifest, gallery = site.manifest, site.gallery

    @app.get("/duplicates", response_class=HTMLResponse)
    def duplicates():
        if not manifest:
            return site.page("duplicates.html", title="Duplicates", groups=[],
                             note="A folder gallery has no dedup report; serve a build to see its duplicates.")
        site.sources.done.wait(timeout=30)  # usually done long before anyone opens the page
        return site.page("duplicates.html", title="Duplicates", groups=_duplicate_view(site),
                         total=len(site.groups), dropped=sum(len(g.dropped) for g in site.groups),
                         pending=not site.sources.done.is_set())

    @app.get("/rejects", response_class=HTMLResponse)
    def rejects():
        if not manifest:
            return site.page("rejects.html", title="Rejects", rows=[], note="A folder gallery has no rejects report; "
                             f"{len(getattr(gallery, 'skipped', []))} files were skipped when indexing it.")
        return site.page("rejects.html", title="Rejects", rows=dataset_pages.rejects(gallery.root, manifest))

    @app.get("/summary", response_class=HTMLResponse)
    def summary():
        if manifest:
            s = {**dataset_pages.summary(manifest, site.label_names), "manifest": True,
                 "columns": list(manifest.splits)}
        else:
            s = _folder_summary(site.items)
        return site.page("summary.html", title="Summary", s=s)


def _duplicate_view(site: Site) -> list[dict]:
    """The shown groups with label names and a picture (or the reason there is none) per image."""
    def label_name(label: str) -> str:
        names = site.label_names
        return f"{names[int(label)]} ({label})" if label.isdigit() and int(label) < len(names) else label

    def tile(key: str) -> dict:
        if key in site.searcher.by_id:
            return {"key": key, "src": f"/thumb/{key}"}
        data, reason = site.sources.status(key)
        return {"key": key, "src": f"/thumb/{key}" if data else "", "reason": reason}

    return [{"kept": g.kept, "kept_label_name": label_name(g.kept_label), "kept_tile": tile(g.kept),
             "dropped": [{**d, "label_name": label_name(d["label"]), "tile": tile(d["key"])} for d in g.dropped]}
            for g in site.shown]


def _folder_summary(items: list) -> dict:
    counts = Counter((i.label, i.label_name) for i in items)
    return {"manifest": False, "num_classes": len({c[0] for c in counts if c[0] >= 0}), "count": len(items),
            "columns": ["images"],
            "per_class": [{"id": c[0], "name": c[1] or "(top level)", "images": n}
                          for c, n in sorted(counts.items())]}
