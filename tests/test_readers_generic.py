"""The generic readers (imagefolder, listing, webdataset, parquet) on small
layouts written here as their publishers write them, each with bad rows,
unsafe paths and missing or unlabelled images: every image is an input, and
each problem is one rejection with its reason and where."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unibed.dataplane.sources import iter_source, open_index, read_location
from unibed.schemas.reader_specs import ListingSpec, ParquetSpec, WebDatasetSpec
from unibed.schemas.recipe import parse_recipe
from unibed.schemas.source_record import Rejection, SourceImage

JPEG = b"\xff\xd8\xff\xe0 not decoded by readers \xff\xd9"


def _write(root, rel: str, data: bytes = JPEG) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _split(items):
    images = {i.record.image_id: i for i in items if isinstance(i, SourceImage)}
    rejected = [i for i in items if isinstance(i, Rejection)]
    return images, rejected


def _reasons(rejected) -> Counter:
    return Counter(r.reason.value for r in rejected)


def _tar(path, members) -> None:
    """members: (name, bytes) or (name, TarInfo-type) for links."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, bytes):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)


def test_imagefolder_flat_and_split(tmp_path):
    flat = str(tmp_path / "flat")
    for rel in ("cat/1.jpg", "cat/2.JPG", "dog/1.png", "stray.jpg", "dog/deep/3.jpg"):
        _write(flat, rel)
    _write(flat, "README.txt", b"not an image, not an input")
    _write(flat, "cat/.DS_Store", b"x")
    os.makedirs(os.path.join(flat, "cat"), exist_ok=True)
    with open(os.path.join(os.fsencode(flat), b"dog", b"caf\xe9.jpg"), "wb") as f:
        f.write(JPEG)
    index = open_index("pets", flat, reader="imagefolder")
    assert (index.layout, index.reader, sorted(index.classes)) == ("flat", "imagefolder", ["cat", "dog"])
    images, rejected = _split(list(iter_source(index)))
    assert {i: im.record.label for i, im in images.items()} == {"cat/1.jpg": "cat", "cat/2.JPG": "cat",
                                                                  "dog/1.png": "dog"}
    assert _reasons(rejected) == {"unlabelled_image": 2, "malformed_name": 1}
    assert {r.image_id for r in rejected if r.reason.value == "unlabelled_image"} == {"stray.jpg", "dog/deep/3.jpg"}
    assert read_location(images["dog/1.png"].record.location) == JPEG

    split = str(tmp_path / "split")
    for rel in ("train/cat/1.jpg", "train/dog/2.jpg", "val/cat/3.jpg"):
        _write(split, rel)
    index = open_index("pets", split, reader="imagefolder")
    images, rejected = _split(list(iter_source(index)))
    assert index.layout == "split" and not rejected
    assert {i: im.record.split for i, im in images.items()} == {
        "train/cat/1.jpg": "train", "train/dog/2.jpg": "train", "val/cat/3.jpg": "val"}


def test_listing_tsv_files_with_every_bad_row(tmp_path):
    root = str(tmp_path)
    lines = ["file\tsku\tname", "a.jpg\t7\tKettle", "b.jpg\t7\tKettle again", "c.jpg\t9\tFan",
             "d.jpg\t9", "e.jpg\t\tnone", "../../etc/passwd\t9\tx", "a.jpg\t8\trepeat",
             "gone.jpg\t9\tFan"]
    _write(root, "labels.tsv", ("\n".join(lines) + "\n").encode())
    for name in ("a.jpg", "b.jpg", "c.jpg", "stray.jpg"):
        _write(root, f"images/{name}")
    spec = ListingSpec(files={"train": "labels.tsv"}, separator="\t", path_column="file",
                       label_column="sku", name_column="name", path_prefix="images/")
    index = open_index("mine", root, reader="listing", options=spec)
    assert index.classes["7"].name == "Kettle" and index.classes["9"].listed_images == 2
    images, rejected = _split(list(iter_source(index)))
    assert sorted(images) == ["images/a.jpg", "images/b.jpg", "images/c.jpg"]
    by_reason = {r.reason.value: r for r in rejected}
    assert _reasons(rejected) == {"malformed_row": 2, "unsafe_member_path": 1, "duplicate_id": 1,
                                  "missing_image": 1, "unlabelled_image": 1}
    assert by_reason["unsafe_member_path"].where.endswith("labels.tsv:7")
    assert by_reason["duplicate_id"].where.endswith("labels.tsv:8")
    assert by_reason["missing_image"].image_id == "images/gone.jpg"
    assert by_reason["unlabelled_image"].image_id == "images/stray.jpg"
    assert sorted(r.where.rsplit(":", 1)[1] for r in rejected if r.reason.value == "malformed_row") == ["5", "6"]


def test_listing_images_in_a_zip_and_a_tar(tmp_path):
    root = str(tmp_path)
    _write(root, "list.csv", b"path,label\nx/1.jpg,a\nx/2.jpg,b\nx/3.jpg,b\n")
    with zipfile.ZipFile(os.path.join(root, "images.zip"), "w") as z:
        z.writestr("x/1.jpg", JPEG)
        z.writestr("x/2.jpg", JPEG + b"2")
        z.writestr("../evil.jpg", JPEG)
        z.writestr("x/unlisted.jpg", JPEG)
    _tar(os.path.join(root, "images.tar"),
         [("x/1.jpg", JPEG), ("x/2.jpg", JPEG + b"2"), ("x/3.jpg", "link"), ("x/1.jpg", JPEG)])
    for archive, expected in (("images.zip", {"unsafe_member_path": 1, "unlabelled_image": 1, "missing_image": 1}),
                              ("images.tar", {"unsafe_member_path": 1, "duplicate_id": 1})):
        spec = ListingSpec(files={"train": "list.csv"}, path_column="path", label_column="label", archive=archive)
        index = open_index("mine", root, reader="listing", options=spec)
        images, rejected = _split(list(iter_source(index)))
        assert index.layout == archive.rsplit(".", 1)[1]
        assert sorted(images) == ["x/1.jpg", "x/2.jpg"], archive
        assert _reasons(rejected) == expected, archive
        assert read_location(images["x/2.jpg"].record.location) == JPEG + b"2"


def _webdataset(root: str) -> None:
    _tar(os.path.join(root, "shard-00000.tar"), [
        ("000/k1.jpg", JPEG), ("000/k1.cls", b"3\n"), ("000/k1.json", b'{"label": "tea"}'),
        ("000/k2.webp", JPEG), ("000/k2.cls", b"5"), ("000/k2.txt", b"a caption"),
        ("000/k3.jpg", JPEG),  # no label
        ("000/k4.cls", b"5"),  # no image
        ("000/k5.jpg", JPEG), ("000/k5.cls", b""),  # an empty label
        ("000/k6.jpg", JPEG), ("000/k6.png", JPEG), ("000/k6.cls", b"3"),  # two images for one key
        ("../k7.jpg", JPEG), ("000/k8.jpg", "link"),
    ])
    _tar(os.path.join(root, "shard-00001.tar"), [("001/k9.png", JPEG), ("001/k9.cls", b"3"),
                                                 ("001/k9.json", b'{"label": 12}')])


def test_webdataset_cls_labels_and_bad_samples(tmp_path):
    root = str(tmp_path)
    _webdataset(root)
    index = open_index("web", root, reader="webdataset")
    assert sorted(index.classes) == ["3", "5"] and len(index.units) == 2
    images, rejected = _split(list(iter_source(index)))
    assert {i: im.record.label for i, im in images.items()} == {"000/k1": "3", "000/k2": "5",
                                                                  "000/k6": "3", "001/k9": "3"}
    assert _reasons(rejected) == {"unlabelled_image": 2, "missing_image": 1, "malformed_row": 1,
                                  "duplicate_id": 1, "unsafe_member_path": 2}
    malformed = next(r for r in rejected if r.reason.value == "malformed_row")
    assert malformed.where.endswith("shard-00000.tar!000/k5.cls") and malformed.image_id == "000/k5"
    location = images["001/k9"].record.location
    assert read_location(location) == JPEG and location.members == ("001/k9.png",)

    index = open_index("web", root, reader="webdataset", options=WebDatasetSpec(label_field="label"))
    images, _ = _split(list(iter_source(index)))
    assert {i: im.record.label for i, im in images.items()} == {"000/k1": "tea", "001/k9": "12"}


def _parquet(root: str) -> None:
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("label", pa.int64()), ("id", pa.string())],
                       metadata={"huggingface": json.dumps({"info": {"features": {
                           "label": {"_type": "ClassLabel", "names": ["cat", "dog"]}}}})})
    rows = [({"bytes": JPEG, "path": None}, 0, "a"), ({"bytes": JPEG + b"b", "path": None}, 1, "b"),
            ({"bytes": JPEG, "path": None}, None, "c"), (None, 1, "d"), ({"bytes": JPEG, "path": None}, 1, "a"),
            ({"bytes": JPEG, "path": None}, 0, "")]
    table = pa.table({name: [r[i] for r in rows] for i, name in enumerate(("image", "label", "id"))},
                     schema=schema)
    os.makedirs(root, exist_ok=True)
    pq.write_table(table, os.path.join(root, "train-0.parquet"), row_group_size=2)
    floats = pa.table({"image": [{"bytes": JPEG, "path": None}], "label": [1.5], "id": ["f"]})
    pq.write_table(floats, os.path.join(root, "train-1.parquet"))


def test_parquet_row_groups_names_and_bad_rows(tmp_path):
    root = str(tmp_path)
    _parquet(root)
    spec = ParquetSpec(id_column="id")
    index = open_index("hf", root, reader="parquet", options=spec)
    assert len(index.units) == 4  # 3 row groups + 1
    assert {c.source_label: c.name for c in index.classes.values()} == {"0": "cat", "1": "dog"}
    images, rejected = _split(list(iter_source(index)))
    assert {i: im.record.label for i, im in images.items()} == {"a": "0", "b": "1"}
    assert _reasons(rejected) == {"unlabelled_image": 1, "missing_image": 1, "duplicate_id": 1,
                                  "malformed_row": 2}
    assert read_location(images["b"].record.location, index) == JPEG + b"b"
    # without an id column the id is <file>:<row>
    index = open_index("hf", root, reader="parquet", options=ParquetSpec(files="train-0.parquet"))
    images, _ = _split(list(iter_source(index)))
    assert sorted(images) == ["train-0.parquet:0", "train-0.parquet:1", "train-0.parquet:4",
                              "train-0.parquet:5"]


def test_a_recipe_names_a_generic_reader_and_its_block():
    base = {"name": "mine", "output": "out/x"}
    recipe = parse_recipe({**base, "sources": [{"name": "my_shop", "reader": "listing", "location": "gs://my-bucket/shop",
                                                "listing": {"files": {"train": "l.csv"}, "path_column": "f",
                                                            "label_column": "l"}}]})
    assert recipe.sources[0].reader_options().path_column == "f"
    for bad, message in (({"reader": "listing"}, "needs a `listing:` block"),
                         ({"reader": "parquet", "webdataset": {}}, "is for reader webdataset"),
                         ({"reader": "imagenet"}, "serves the source named imagenet"),
                         ({"reader": "listing", "listing": {"files": {"train": "../l.csv"}, "path_column": 0,
                                                            "header": False}}, "inside the source")):
        with pytest.raises(Exception, match=message):
            parse_recipe({**base, "sources": [{"name": "my_shop", "location": "x", **bad}]})


def test_generic_readers_read_gs_urls(gcs_emulator, tmp_path):
    """The same layouts from gs:// (a real local GCS server): every read goes through storage.py."""
    from gcs_emulator import upload_tree

    local = tmp_path / "generic"
    os.makedirs(local / "web")
    _webdataset(str(local / "web"))
    _parquet(str(local / "hf"))
    for rel in ("cat/1.jpg", "dog/2.jpg"):
        _write(str(local / "folder"), rel)
    gcs_emulator.create_bucket("unibed-generic")
    remote = upload_tree(str(local), "gs://unibed-generic/generic")
    for source, reader, options, expected in (
        ("web", "webdataset", None, {"000/k1", "000/k2", "000/k6", "001/k9"}),
        ("hf", "parquet", ParquetSpec(id_column="id"), {"a", "b"}),
        ("folder", "imagefolder", None, {"cat/1.jpg", "dog/2.jpg"}),
    ):
        index = open_index(source, f"{remote}/{source}", reader=reader, options=options)
        images, _ = _split(list(iter_source(index)))
        assert set(images) == expected, source
        image = next(iter(images.values()))
        assert image.record.location.uri.startswith("gs://unibed-generic/")
        assert read_location(image.record.location, index) == image.data
