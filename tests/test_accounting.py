"""The accounting table, one rendering per reader (flow artifacts, terminal)."""

from __future__ import annotations

from unibed.dataplane.build.accounting import accounting_markdown, accounting_rows, accounting_text


def test_rows_text_and_markdown_agree(sample_build):
    manifest = sample_build.manifest
    rows = accounting_rows(manifest)
    assert [r["source"] for r in rows] == ["imagenet", "products10k", "gldv2"]  # label-id order
    for row in rows:
        acc = manifest.accounting[row["source"]]
        assert row["inputs"] == row["written"] + row["duplicates"] + row["rejected"] == acc.inputs
        assert row["ids"] == "{}-{}".format(*manifest.label_ranges[row["source"]])
    text = accounting_text(rows).splitlines()
    assert text[0].split() == ["source", "ids", "inputs", "written", "dups", "rejected", "not", "sel."]
    assert [line.split() for line in text[1:]] == [
        [r["source"], r["ids"], *(str(r[c]) for c in ("inputs", "written", "duplicates", "rejected", "not_selected"))]
        for r in rows]
    table = accounting_markdown(rows).splitlines()
    assert table[0] == "| source | ids | inputs | written | duplicates | rejected | not selected |"
    assert len(table) == 2 + len(rows) and all(line.startswith(f"| {r['source']} |") for line, r in zip(table[2:], rows))
