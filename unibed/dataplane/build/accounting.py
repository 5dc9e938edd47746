"""The accounting table of a build: every input is written, a duplicate or
rejected (by reason), per source. One table, rendered for each reader: the
flow's table and markdown artifacts, the command line, the web page."""

from __future__ import annotations

from unibed.schemas.manifest import Manifest

COLUMNS = ("source", "ids", "inputs", "written", "duplicates", "rejected", "not_selected")
_TEXT_HEADINGS = {"duplicates": "dups", "not_selected": "not sel."}


def accounting_rows(manifest: Manifest) -> list[dict]:
    """One row per source, in label-id (= recipe) order."""
    rows = []
    for source in sorted(manifest.accounting, key=lambda s: manifest.label_ranges[s][0]):
        acc, (first, last) = manifest.accounting[source], manifest.label_ranges[source]
        rows.append({"source": source, "ids": f"{first}-{last}", "first_id": first, "last_id": last,
                     "inputs": acc.inputs, "written": acc.written, "duplicates": acc.duplicates,
                     "rejected": acc.rejected, "not_selected": acc.not_selected,
                     "rejected_by_reason": ", ".join(f"{r}={n}" for r, n in acc.rejected_by_reason.items())})
    return rows


def accounting_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def accounting_text(rows: list[dict]) -> str:
    """Aligned columns for a terminal."""
    widths = {c: max(len(_TEXT_HEADINGS.get(c, c)), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    head = "  ".join(_TEXT_HEADINGS.get(c, c).ljust(widths[c]) if c == "source" else
                     _TEXT_HEADINGS.get(c, c).rjust(widths[c]) for c in COLUMNS)
    body = ["  ".join(str(r[c]).ljust(widths[c]) if c == "source" else str(r[c]).rjust(widths[c])
                      for c in COLUMNS) for r in rows]
    return "\n".join([head, *body])
