"""The Products-10K reader on hand-built `folder` and `zip` layouts."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from unibed.dataplane.sources import iter_source, open_index, products10k, read_location
from unibed.schemas.errors import SourceLayoutError
from unibed.schemas.source_record import LocationKind, Rejection, RejectReason, SourceImage

GOOD_CSV = "name,class,group\n0.jpg,5,1\n1.jpg,5,1\n2.jpg,7,2\n"


def jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (shade % 256, 40, 90)).save(out, "JPEG")
    return out.getvalue()


def write_layout(root, layout: str, csv_text: str, files: dict[str, bytes]) -> str:
    """train.csv plus `files` (names under train/) as a folder or as train.zip."""
    (root / "train.csv").write_text(csv_text)
    if layout == "folder":
        (root / "train").mkdir()
        for name, data in files.items():
            (root / "train" / name).write_bytes(data)
    else:
        with zipfile.ZipFile(root / "train.zip", "w") as archive:
            archive.mkdir("train")
            for name, data in files.items():
                archive.writestr(f"train/{name}", data)
    return str(root)


def by_reason(items, reason):
    return [i for i in items if isinstance(i, Rejection) and i.reason is reason]


@pytest.mark.parametrize("layout", products10k.LAYOUTS)
def test_reads_labelled_images(tmp_path, layout, monkeypatch):
    monkeypatch.setattr(products10k, "FILES_PER_UNIT", 2)
    files = {f"{n}.jpg": jpeg(n) for n in range(3)}
    root = write_layout(tmp_path, layout, GOOD_CSV, files)
    index = open_index("products10k", root)
    assert index.layout == layout and index.rejections == []
    assert [len(u.items) for u in index.units] == [2, 1]
    assert index.listed == {"0.jpg": "5", "1.jpg": "5", "2.jpg": "7"}
    assert index.classes["5"].name == "sku 5 (group 1)" and index.classes["5"].listed_images == 2
    items = list(iter_source(index))
    assert [(i.record.image_id, i.record.label, i.data) for i in items] == [
        (name, index.listed[name], data) for name, data in files.items()
    ]
    kind = LocationKind.FILE if layout == "folder" else LocationKind.ZIP_MEMBER
    for item in items:
        assert item.record.location.kind is kind
        assert read_location(item.record.location) == item.data


@pytest.mark.parametrize("layout", products10k.LAYOUTS)
def test_bad_metadata(tmp_path, layout):
    csv_text = (
        "name,class,group\n"
        "0.jpg,5,1\n"
        "1.jpg,five,1\n"  # line 3: non-integer class
        "2.jpg,5\n"  # line 4: wrong field count
        ",5,1\n"  # line 5: empty name
        "0.jpg,7,2\n"  # line 6: duplicate
        "absent.jpg,7,2\n"
        "sub/x.jpg,7,2\n"  # line 8: a path, not a name
    )
    files = {"0.jpg": jpeg(0), "1.jpg": jpeg(1), "2.jpg": jpeg(2), "extra.jpg": jpeg(3)}
    root = write_layout(tmp_path, layout, csv_text, files)
    items = list(iter_source(products10k.open_index(root, layout)))
    (image,) = [i for i in items if isinstance(i, SourceImage)]
    assert (image.record.image_id, image.record.label) == ("0.jpg", "5")  # the first row won
    csv_path = f"{root}/train.csv"
    malformed = by_reason(items, RejectReason.MALFORMED_ROW)
    assert [r.where for r in malformed] == [f"{csv_path}:{n}" for n in (3, 4, 5, 8)]
    assert "five" in malformed[0].detail
    (duplicate,) = by_reason(items, RejectReason.DUPLICATE_ID)
    assert duplicate.where == f"{csv_path}:6" and f"{csv_path}:2" in duplicate.detail
    assert "'5'" in duplicate.detail and "'7'" in duplicate.detail
    assert [r.image_id for r in by_reason(items, RejectReason.MISSING_IMAGE)] == ["absent.jpg"]
    unlabelled = by_reason(items, RejectReason.UNLABELLED_IMAGE)
    assert sorted(r.image_id for r in unlabelled) == ["1.jpg", "2.jpg", "extra.jpg"]
    inside = f"{root}/train/" if layout == "folder" else f"{root}/train.zip!train/"
    assert f"{inside}1.jpg" in {r.where for r in unlabelled}


def test_zip_unsafe_members_and_top_level_names(tmp_path):
    (tmp_path / "train.csv").write_text(GOOD_CSV)
    with zipfile.ZipFile(tmp_path / "train.zip", "w") as archive:
        archive.writestr("0.jpg", jpeg(0))  # top level is accepted
        archive.writestr("train/1.jpg", jpeg(1))
        archive.writestr("1.jpg", jpeg(9))  # the same image name again
        archive.writestr("../evil.jpg", b"x")
        archive.writestr("/abs.jpg", b"y")
    zip_path = f"{tmp_path}/train.zip"
    items = list(iter_source(products10k.open_index(str(tmp_path))))
    read = {
        i.record.image_id: i.record.location.members for i in items if isinstance(i, SourceImage)
    }
    assert read == {"0.jpg": ("0.jpg",), "1.jpg": ("train/1.jpg",)}
    unsafe = by_reason(items, RejectReason.UNSAFE_MEMBER_PATH)
    assert [r.where for r in unsafe] == [f"{zip_path}!../evil.jpg", f"{zip_path}!/abs.jpg"]
    (duplicate,) = by_reason(items, RejectReason.DUPLICATE_ID)
    assert duplicate.where == f"{zip_path}!1.jpg" and "train/1.jpg" in duplicate.detail
    assert [r.image_id for r in by_reason(items, RejectReason.MISSING_IMAGE)] == ["2.jpg"]


def test_layout_detection(tmp_path):
    with pytest.raises(SourceLayoutError, match=r"no products10k layout.*train/.*train\.zip"):
        products10k.open_index(str(tmp_path))
    write_layout(tmp_path, "zip", GOOD_CSV, {"0.jpg": jpeg(0)})
    assert products10k.open_index(str(tmp_path)).layout == "zip"
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "0.jpg").write_bytes(jpeg(0))
    assert products10k.open_index(str(tmp_path)).layout == "folder"  # preferred
    assert products10k.open_index(str(tmp_path), "zip").layout == "zip"


@pytest.mark.parametrize("layout", products10k.LAYOUTS)
def test_missing_csv_or_column(tmp_path, layout):
    root = write_layout(tmp_path, layout, "name,klass,group\n0.jpg,1,1\n", {"0.jpg": jpeg(0)})
    with pytest.raises(SourceLayoutError, match=r"train\.csv:1: header 'name,klass,group'.* class"):
        products10k.open_index(root, layout)
    (tmp_path / "train.csv").unlink()
    with pytest.raises(SourceLayoutError, match=r"train\.csv: missing file"):
        products10k.open_index(root, layout)
