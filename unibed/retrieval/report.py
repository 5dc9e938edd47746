"""What `unibed search` leaves for a person to look at.

- report.html: one self-contained page (thumbnails inlined as data: URIs, so
  it can be mailed or archived alone): each query, then its top-k matches with
  rank, distance, label, source and id.
- contact_sheet.png: one row per query - the query, then its top-5 matches,
  each captioned with label and distance (a same-label match is framed green,
  another red, when the query's label is known).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFont

from unibed.dataplane import storage
from unibed.retrieval.images import thumbnail_jpeg
from unibed.retrieval.search import QueryResult

SHEET_MATCHES = 5
_TILE, _CAPTION, _PAD = 128, 30, 6


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def write_html_report(path: str, results: list[QueryResult], thumbnail: Callable[[str], bytes],
                      title: str = "unibed search") -> None:
    """`thumbnail(image_id)` gives a match's JPEG thumbnail."""
    e = html.escape
    head = (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
             "body{font-family:sans-serif;margin:1em} .row{display:flex;gap:8px;flex-wrap:wrap;"
             "margin-bottom:1.5em} figure{margin:0;width:170px;font-size:12px} img{max-width:160px;"
             "max-height:160px;display:block} .query{border-right:3px solid #333;padding-right:8px}"
             ".same{color:#060} .other{color:#a00} .error{color:#a00;font-weight:bold}</style></head>"
            f"<body><h1>{e(title)}</h1>")
    parts = [head]
    for r in results:
        parts.append(f"<h2>{e(r.name)}</h2>")
        if r.error:
            parts.append(f"<p class='error'>{e(r.error)}</p>")
            continue
        parts.append("<div class='row'><figure class='query'>")
        if r.image is not None:
            parts.append(f"<img src='{_data_uri(thumbnail_jpeg(r.image))}' alt='query'>")
        parts.append("<figcaption>query" + (f" (label {r.label})" if r.label >= 0 else "")
                     + "</figcaption></figure>")
        for m in r.matches:
            same = "" if r.label < 0 else (" class='same'" if m.item.label == r.label else " class='other'")
            parts.append(
                f"<figure><img src='{_data_uri(thumbnail(m.item.image_id))}' alt='{e(m.item.image_id)}'>"
                f"<figcaption{same}>#{m.rank} d={m.distance:.4f}<br>{e(m.item.label_name)} "
                f"({m.item.label})<br>{e(m.item.source)}: {e(m.item.image_id)}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</body></html>")
    storage.write_atomic(path, "".join(parts).encode("utf-8"))


def write_contact_sheet(path: str, results: list[QueryResult], image: Callable[[str], Image.Image]) -> None:
    """`image(image_id)` gives a match's picture. Queries that failed get a row with the error."""
    font = ImageFont.load_default()
    cols = 1 + SHEET_MATCHES
    cell_w, cell_h = _TILE + _PAD, _TILE + _CAPTION + _PAD
    sheet = Image.new("RGB", (cols * cell_w + _PAD, max(1, len(results)) * cell_h + _PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for row, r in enumerate(results):
        y = _PAD + row * cell_h
        if r.image is not None:
            _paste(sheet, r.image, _PAD, y)
        draw.text((_PAD, y + _TILE + 2), _fit(f"Q {r.name}", 22), fill="black", font=font)
        if r.error:
            draw.text((_PAD + cell_w, y + _TILE // 2), _fit(r.error, 100), fill=(170, 0, 0), font=font)
            continue
        for col, m in enumerate(r.matches[:SHEET_MATCHES], start=1):
            x = _PAD + col * cell_w
            _paste(sheet, image(m.item.image_id), x, y)
            if r.label >= 0:
                colour = (0, 150, 0) if m.item.label == r.label else (200, 0, 0)
                draw.rectangle((x - 2, y - 2, x + _TILE + 1, y + _TILE + 1), outline=colour, width=2)
            draw.text((x, y + _TILE + 2), _fit(m.item.label_name or "-", 22), fill="black", font=font)
            draw.text((x, y + _TILE + 15), f"#{m.rank} d={m.distance:.3f}", fill=(60, 60, 60), font=font)
    storage.write_atomic(path, _png(sheet))


def _paste(sheet: Image.Image, picture: Image.Image, x: int, y: int) -> None:
    tile = picture.copy()
    tile.thumbnail((_TILE, _TILE), Image.Resampling.BICUBIC)
    sheet.paste(tile, (x + (_TILE - tile.width) // 2, y + (_TILE - tile.height) // 2))


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "~"


def _png(image: Image.Image) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
