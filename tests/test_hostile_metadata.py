"""Hostile metadata rows and hostile output folders (issue 12).

Readers: ids of thousands of digits, fields of megabytes and quotes never
closed, in the published CSV layouts; each is one MALFORMED_ROW at the
row's path:line and reading goes on. Output: a build deletes only what a
unibed build of that output wrote, and refuses outputs that hold or lie
inside a location it reads.
"""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image
from test_readers import tar_bytes
from test_readers_gldv2 import CATEGORY_CSV, CLEAN_CSV, A, B, C, member_path, write_tar

from unibed.cli.build import for_cli
from unibed.cli.main import build_parser
from unibed.dataplane.build.launcher import build_dataset
from unibed.dataplane.build.lock import OutputLockedError, locked_error
from unibed.dataplane.build.output import (
    OutputExistsError,
    check_apart,
    claim_output,
    discard_partial,
    prepare_output,
)
from unibed.dataplane.sources import imagenet, iter_source, open_index
from unibed.dataplane.sources.common import MAX_RECORD_CHARS, MAX_RECORD_LINES, QUOTE_CHARS
from unibed.flows.build_dataset import check_parameters
from unibed.flows.stages import ParameterError, StageFailed
from unibed.schemas.errors import SchemaError
from unibed.schemas.recipe import parse_recipe
from unibed.schemas.source_record import Rejection, RejectReason, SourceImage

HUGE_ID = "7" * 5000  # int() refuses over 4,300 digits
DETAIL_BOUND = 2 * QUOTE_CHARS + 300  # a detail quotes a bounded prefix, whatever the row holds


def jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (shade % 256, 40, 90)).save(out, "JPEG")
    return out.getvalue()


def malformed(index) -> dict[str, str]:
    """where -> detail of the index's MALFORMED_ROW rejections."""
    return {r.where: r.detail for r in index.rejections if r.reason is RejectReason.MALFORMED_ROW}


def products10k_folder(root: Path, csv_text: str, names: list[str]) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text(csv_text)
    (root / "train").mkdir()
    for n, name in enumerate(names):
        (root / "train" / name).write_bytes(jpeg(n))
    return str(root)


# --- metadata rows ---------------------------------------------------------------


def test_products10k_huge_id_huge_field_and_a_runaway_quote_are_rows_at_their_lines(tmp_path):
    after = [f"{n}.jpg" for n in range(10, 10 + 2 * MAX_RECORD_LINES)]  # rows a runaway quote swallowed
    csv_text = (
        "name,class,group\n"
        "0.jpg,5,1\n"
        f"1.jpg,{HUGE_ID},1\n"  # line 3
        f"2.jpg,5,{'9' * (MAX_RECORD_CHARS + 10)}\n"  # line 4: one field over the record limit
        '3.jpg,"5,1\n'  # line 5: a quote never closed
        + "".join(f"{name},7,2\n" for name in after)
    )
    names = ["0.jpg", "1.jpg", "2.jpg", "3.jpg", *after]
    index = open_index("products10k", products10k_folder(tmp_path, csv_text, names), "folder")
    path = f"{tmp_path}/train.csv"
    bad = malformed(index)
    assert set(bad) == {f"{path}:3", f"{path}:4", f"{path}:5"}, bad
    assert "at most 18 digits" in bad[f"{path}:3"]
    assert f"{MAX_RECORD_CHARS + 18} characters long" in bad[f"{path}:4"]
    assert "quote opened here is still open" in bad[f"{path}:5"]
    assert all(len(detail) < DETAIL_BOUND for detail in bad.values())
    # reading resumed on the line after the quote: every later row is listed and read
    assert set(index.listed) == {"0.jpg", *after}
    items = list(iter_source(index))
    read = {i.record.image_id for i in items if isinstance(i, SourceImage)}
    assert read == {"0.jpg", *after}
    unlabelled = {i.image_id for i in items if isinstance(i, Rejection) and i.reason is RejectReason.UNLABELLED_IMAGE}
    assert unlabelled == {"1.jpg", "2.jpg", "3.jpg"}


def test_a_field_of_tens_of_megabytes_is_never_held_whole(tmp_path):
    field = 40 << 20
    with open(tmp_path / "train.csv", "w") as f:
        f.write(f"name,class,group\n0.jpg,5,1\n1.jpg,5,{'8' * field}\n2.jpg,7,2\n")
    (tmp_path / "train").mkdir()
    for name in ("0.jpg", "2.jpg"):
        (tmp_path / "train" / name).write_bytes(jpeg(1))
    tracemalloc.start()
    try:
        index = open_index("products10k", str(tmp_path), "folder")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert set(index.listed) == {"0.jpg", "2.jpg"}
    (rejection,) = index.rejections
    assert rejection.where == f"{tmp_path}/train.csv:3" and len(rejection.detail) < DETAIL_BOUND
    assert peak < field // 2, f"peak {peak / 1e6:.0f} MB for a {field / 1e6:.0f} MB field"


def test_a_quoted_field_over_the_field_limit_is_a_row_at_its_first_line(tmp_path):
    half = "a" * (MAX_RECORD_CHARS * 3 // 4)  # two lines, each under the record limit
    csv_text = f'name,class,group\n0.jpg,5,1\n1.jpg,"{half}\n{half}",1\n2.jpg,7,2\n'
    index = open_index("products10k", products10k_folder(tmp_path, csv_text, ["0.jpg", "2.jpg"]))
    bad = malformed(index)
    assert "field larger than field limit" in bad[f"{tmp_path}/train.csv:3"]  # the csv module's cap
    assert all(len(detail) < DETAIL_BOUND for detail in bad.values())
    assert set(index.listed) == {"0.jpg", "2.jpg"}


def test_an_imagenet_mapping_line_of_megabytes_is_a_row_not_a_class_name(tmp_path):
    (tmp_path / imagenet.TRAIN_TAR).write_bytes(tar_bytes([("n00000001.tar", tar_bytes([]))]))
    mapping = tmp_path / imagenet.SYNSET_MAPPING
    mapping.write_text(f"n00000001 tench\nn00000002 {'goldfish ' * (MAX_RECORD_CHARS // 8)}\nn00000003 eel\n")
    index = open_index("imagenet", str(tmp_path), "official_tar")
    bad = malformed(index)
    assert list(bad) == [f"{mapping}:2"] and "characters long" in bad[f"{mapping}:2"]
    assert len(bad[f"{mapping}:2"]) < DETAIL_BOUND
    assert [c.name for c in index.classes.values()] == ["tench", "eel"]


def test_gldv2_huge_landmark_ids_and_a_quote_open_to_the_end(tmp_path):
    e, f = "eee0000000000005", "eef0000000000006"
    train = (
        f"id,url,landmark_id\n{A},http://x/a.jpg,10\n"
        f"{B},http://x/b.jpg,{HUGE_ID}\n"  # line 3
        f'{C},"http://x/c.jpg,20\n'  # line 4: the quote runs to the end of the file
        f"{e},http://x/e.jpg,20\n{f},http://x/f.jpg,30\n"
    )
    (tmp_path / "train.csv").write_text(train)
    (tmp_path / "train_clean.csv").write_text(CLEAN_CSV + f"{HUGE_ID},{C}\n")  # line 3
    (tmp_path / "train_label_to_category.csv").write_text(CATEGORY_CSV + f"{HUGE_ID},http://x\n")  # line 4
    members = [(member_path(i), jpeg(n)) for n, i in enumerate((A, B, C, e, f))]
    write_tar(tmp_path / "images_000.tar", members)
    index = open_index("gldv2", str(tmp_path))
    bad = malformed(index)
    assert set(bad) == {
        f"{tmp_path}/train.csv:3",
        f"{tmp_path}/train.csv:4",
        f"{tmp_path}/train_clean.csv:3",
        f"{tmp_path}/train_label_to_category.csv:4",
    }, bad
    assert "never closed" in bad[f"{tmp_path}/train.csv:4"]
    assert all(len(detail) < DETAIL_BOUND for detail in bad.values())
    assert index.listed == {A: "10", e: "20", f: "30"}
    read = {i.record.image_id for i in iter_source(index) if isinstance(i, SourceImage)}
    assert read == {A, e, f}


# --- the output folder -----------------------------------------------------------


def tiny_recipe(source: str, output: str):
    return parse_recipe({
        "name": "hostile",
        "sources": [{"name": "products10k", "location": source, "classes": {"mode": "all"}}],
        "output": output,
    })


def tiny_source(root: Path) -> str:
    return products10k_folder(root, "name,class,group\n0.jpg,5,1\n1.jpg,7,2\n", ["0.jpg", "1.jpg"])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_another_tools_files_in_the_output_survive_and_the_build_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train-00000-of-00002.tfrecord").write_bytes(b"another tool's shard")
    (out / "label_map.csv").write_text("another tool's labels\n")
    before = snapshot(out)
    with pytest.raises(OutputExistsError) as caught:
        build_dataset(tiny_recipe(tiny_source(tmp_path / "src"), str(out)))
    message = str(caught.value)
    assert str(out) in message and "no unibed build of it wrote" in message
    assert "train-00000-of-00002.tfrecord" in message and "label_map.csv" in message
    assert snapshot(out) == before  # nothing deleted, overwritten or left behind (not even the lock)
    with pytest.raises(OutputExistsError):
        discard_partial(str(out))
    assert snapshot(out) == before
    (out / "manifest.json").write_text('{"format": "another tool\'s"}')
    with pytest.raises(OutputExistsError, match="not a unibed manifest"):
        prepare_output(str(out), "0" * 64)


def test_a_source_inside_the_output_is_refused_before_anything_is_deleted(tmp_path):
    out = tmp_path / "out"
    claim_output(str(out))  # an output a crashed build of it left: cleaning it is allowed
    (out / "train-00000-of-00001.tfrecord").write_bytes(b"left by a crash")
    source = tiny_source(out / "_work" / "products10k")
    before = snapshot(out)
    recipe = tiny_recipe(source, str(out))
    with pytest.raises(SchemaError, match="lies inside the output"):
        build_dataset(recipe)
    with pytest.raises(ParameterError, match="sources/output.*lies inside the output"):
        check_parameters(recipe, None, None, "local", None)
    assert snapshot(out) == before


def test_an_output_inside_a_source_is_refused(tmp_path):
    source = tiny_source(tmp_path / "products10k")
    with pytest.raises(SchemaError, match="lies inside source products10k"):
        build_dataset(tiny_recipe(source, f"{source}/built"))
    assert not (tmp_path / "products10k" / "built").exists()
    # the same rule for gs:// prefixes and for local paths reached through a symlink
    with pytest.raises(SchemaError, match="lies inside source x"):
        check_apart("gs://bucket/data/./out/", {"source x": "gs://bucket/data"})
    check_apart("gs://bucket/data2/out", {"source x": "gs://bucket/data"})  # a sibling, not inside
    os.symlink(tmp_path / "products10k", tmp_path / "alias")
    with pytest.raises(SchemaError, match="lies inside the output"):
        check_apart(str(tmp_path / "alias"), {"source products10k": source})


def test_a_claimed_output_is_cleaned_and_its_record_kept(tmp_path):
    out = tmp_path / "out"
    assert prepare_output(str(out), "0" * 64) == "build"
    (out / "train-00000-of-00001.tfrecord").write_bytes(b"left by a crash")
    (out / "_work" / "side.jsonl").write_text("{}\n")
    discard_partial(str(out))
    assert sorted(snapshot(out)) == ["_work/output.json"]


# --- the lock's refusal ----------------------------------------------------------


def test_unibed_build_has_force_unlock_and_its_refusal_names_it(tmp_path):
    args = build_parser().parse_args(["build", "--force-unlock"])
    assert args.force_unlock is True
    refused = locked_error(str(tmp_path), "elsewhere@other-host:pid=1:start=1:t=x")
    assert "force_unlock=true" in str(refused)  # the flow's parameter, for flow runs
    failure = StageFailed("build-dataset", "lock", {"output": str(tmp_path)}, refused)
    message = str(for_cli(failure))
    assert "--force-unlock" in message and "force_unlock=true" not in message
    assert "stage lock failed" in message and "elsewhere@other-host" in message
    assert isinstance(for_cli(failure).cause, OutputLockedError)
