"""Pictures and tables the flows attach to their runs (drawn with Pillow only).

- `duplicate_sheet`: a contact sheet of a few duplicate groups from
  duplicates.csv, the kept image first, then what was dropped with its pHash
  distance; the images are read back from the sources through the readers.
- `curve_png`: training loss and accuracy per logged step.
- `png_data_uri`: Prefect's image artifact takes a URL; a data: URI carries
  the picture inside the artifact, so it shows without any file server.
"""

from __future__ import annotations

import base64
import io
import time

from PIL import Image, ImageDraw, ImageOps

from unibed.dataplane import sources
from unibed.dataplane.build.reports import read_duplicates_report

THUMB = 112
LABEL_H = 26
PAD = 6
MAX_GROUPS = 8
MAX_DROPPED = 5  # per group shown


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def duplicate_groups(duplicates_csv: str, max_groups: int = MAX_GROUPS) -> list[tuple[str, list[tuple[str, int, str]]]]:
    """Up to `max_groups` groups (kept key, [(dropped key, distance, kind)]), near
    duplicates first (they are the interesting ones), then by kept key."""
    groups = {kept: [(r.dropped, r.distance, r.kind) for r in rows]
              for kept, rows in read_duplicates_report(duplicates_csv).items()}
    ordered = sorted(groups.items(), key=lambda g: (-max(d for _, d, _ in g[1]), g[0]))
    return [(kept, sorted(drops)[:MAX_DROPPED]) for kept, drops in ordered[:max_groups]]


def find_images(plan, keys: set[str], budget_seconds: float = 60.0) -> dict[str, bytes]:
    """The source bytes of `keys` ('source/image_id') through the plan's readers,
    until all are found or the time budget is spent (the sheet shows what was found)."""
    deadline = time.monotonic() + budget_seconds
    found: dict[str, bytes] = {}
    for source, index in plan.indexes.items():
        wanted = {k for k in keys if k.split("/", 1)[0] == source}
        if wanted and time.monotonic() <= deadline:
            found.update((item.record.key, item.data) for item in sources.find_images(index, wanted, deadline))
    return found


def _thumb(data: bytes | None) -> Image.Image:
    if data is None:
        return Image.new("RGB", (THUMB, THUMB), (200, 200, 200))
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (THUMB, THUMB))  # JPEG: decode at reduced size
            im = ImageOps.exif_transpose(im).convert("RGB")
            return ImageOps.pad(im, (THUMB, THUMB), color=(255, 255, 255))
    except Exception:  # noqa: BLE001 - an undecodable image shows as a grey square
        return Image.new("RGB", (THUMB, THUMB), (160, 160, 160))


def duplicate_sheet(groups, images: dict[str, bytes]) -> bytes:
    """PNG: one row per group, kept image (green frame) then dropped ones (red)."""
    cols = 1 + max((len(d) for _, d in groups), default=0)
    cell_w, cell_h = THUMB + 2 * PAD, THUMB + LABEL_H + 2 * PAD
    sheet = Image.new("RGB", (max(cols, 1) * cell_w, max(len(groups), 1) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (kept, drops) in enumerate(groups):
        cells = [(kept, f"kept {kept.split('/')[0]}", (30, 150, 30))] + [
            (key, f"{kind} d={dist} {key.split('/')[0]}", (200, 40, 40)) for key, dist, kind in drops]
        for c, (key, caption, colour) in enumerate(cells):
            x, y = c * cell_w + PAD, r * cell_h + PAD
            sheet.paste(_thumb(images.get(key)), (x, y))
            draw.rectangle([x - 2, y - 2, x + THUMB + 1, y + THUMB + 1], outline=colour, width=2)
            draw.text((x, y + THUMB + 2), caption, fill=colour)
            draw.text((x, y + THUMB + 13), key.split("/", 1)[-1][-16:], fill=(60, 60, 60))
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=True)
    return out.getvalue()


def curve_png(points: list[dict], width: int = 640, height: int = 320) -> bytes:
    """PNG line plot of loss (blue, left scale) and accuracy (orange, 0..1) by global step."""
    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    left, right, top, bottom = 50, width - 40, 20, height - 30
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    if points:
        steps = [p["global_step"] for p in points]
        losses = [p["loss"] for p in points]
        s0, s1 = min(steps), max(max(steps), min(steps) + 1)
        lmax = max(max(losses), 1e-9)

        def xy(step, value, vmax):
            return (left + (right - left) * (step - s0) / (s1 - s0),
                    bottom - (bottom - top) * min(max(value / vmax, 0.0), 1.0))

        for key, vmax, colour in (("loss", lmax, (31, 119, 180)), ("accuracy", 1.0, (255, 127, 14))):
            line = [xy(p["global_step"], p[key], vmax) for p in points if key in p]
            if len(line) > 1:
                draw.line(line, fill=colour, width=2)
            for x, y in line:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((4, top), f"{lmax:.2f}", fill=(31, 119, 180))
        draw.text((right + 4, top), "1.0", fill=(255, 127, 14))
        draw.text((left, bottom + 6), f"step {s0}", fill=(0, 0, 0))
        draw.text((right - 60, bottom + 6), f"step {s1}", fill=(0, 0, 0))
    draw.text((left + 6, top + 4), "loss", fill=(31, 119, 180))
    draw.text((left + 46, top + 4), "accuracy", fill=(255, 127, 14))
    out = io.BytesIO()
    im.save(out, format="PNG", optimize=True)
    return out.getvalue()
