"""Pictures and tables the flows attach to their runs (drawn with Pillow only).

- `curve_png`: training loss and accuracy per logged step.
- `png_data_uri`: Prefect's image artifact takes a URL; a data: URI carries
  the picture inside the artifact, so it shows without any file server.
"""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


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
