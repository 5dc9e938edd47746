"""Reader helpers, the registry, and the ImageNet reader on hand-built layouts."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
from PIL import Image

from unibed.dataplane.sources import imagenet, iter_source, open_index, read_location
from unibed.dataplane.sources.archives import iter_tar_members, unsafe_member_reason
from unibed.dataplane.sources.common import Md5Reader, iter_csv
from unibed.schemas.errors import SourceLayoutError
from unibed.schemas.source_record import LocationKind, Rejection, RejectReason, SourceImage


def jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (shade % 256, 40, 90)).save(out, "JPEG")
    return out.getvalue()


def tar_bytes(members: list[tuple[str, bytes]], extra: list[tarfile.TarInfo] = ()) -> bytes:
    """A tar of regular files, then `extra` header-only members (dirs, links, ...)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return out.getvalue()


def special_member(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def images(items) -> list[SourceImage]:
    return [i for i in items if isinstance(i, SourceImage)]


def rejections(items, reason: RejectReason) -> list[Rejection]:
    return [i for i in items if isinstance(i, Rejection) and i.reason is reason]


# --- common helpers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "unsafe"),
    [
        ("a/b.jpg", False),
        ("./b.jpg", False),
        ("a..b.jpg", False),
        ("../evil.jpg", True),
        ("a/../../evil.jpg", True),
        ("/abs.jpg", True),
        ("..\\evil.jpg", True),
        ("C:/evil.jpg", True),
    ],
)
def test_unsafe_member_reason(name, unsafe):
    assert bool(unsafe_member_reason(name)) is unsafe


def test_iter_csv_line_numbers_and_field_count(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n\n3\n4,5\n")
    rows = list(iter_csv(str(path), ("a", "b"), "products10k"))
    assert [r.where for r in rows] == [f"{path}:2", f"{path}:4", f"{path}:5"]
    assert isinstance(rows[1], Rejection) and rows[1].reason is RejectReason.MALFORMED_ROW
    assert rows[2].values == {"a": "4", "b": "5"}


def test_iter_csv_missing_file_and_column(tmp_path):
    with pytest.raises(SourceLayoutError, match="nope.csv"):
        list(iter_csv(str(tmp_path / "nope.csv"), ("a",), "gldv2"))
    path = tmp_path / "t.csv"
    path.write_text("a,c\n1,2\n")
    with pytest.raises(SourceLayoutError, match=r"t\.csv:1: header 'a,c' lacks .*column\(s\) b"):
        list(iter_csv(str(path), ("a", "b"), "gldv2"))


def test_md5_reader_hashes_what_is_read_and_the_rest():
    data = bytes(range(256)) * 100
    reader = Md5Reader(io.BytesIO(data))
    assert reader.read(1000) == data[:1000]
    assert reader.hexdigest() == hashlib.md5(data).hexdigest()


def test_iter_tar_members_offsets_address_the_outer_file():
    inner = tar_bytes([("x.jpg", b"abc"), ("y.jpg", b"defg")])
    outer = tar_bytes([("pad.bin", b"\0" * 700), ("in.tar", inner)])
    with tarfile.open(fileobj=io.BytesIO(outer)) as tar:
        in_info = tar.getmember("in.tar")
    window = io.BytesIO(outer[in_info.offset_data : in_info.offset_data + in_info.size])
    members = list(iter_tar_members(window, base_offset=in_info.offset_data))
    assert [(m.name, m.data) for m in members] == [("x.jpg", b"abc"), ("y.jpg", b"defg")]
    for m in members:
        assert outer[m.offset : m.offset + m.size] == m.data


def test_unknown_source_and_layout(tmp_path):
    with pytest.raises(ValueError, match="unknown source 'coco'"):
        open_index("coco", str(tmp_path))
    with pytest.raises(SourceLayoutError, match="no layout 'zip'.*official_tar, kaggle_folder"):
        open_index("imagenet", str(tmp_path), layout="zip")


# --- ImageNet official_tar ----------------------------------------------------------

MAPPING = "n00000001 tench, Tinca tinca\nn00000002 goldfish\n"


def write_official(root, inner_tars: dict[str, bytes], extra=(), mapping: str | None = MAPPING):
    root.mkdir(exist_ok=True)
    members = [(f"{wnid}.tar", data) for wnid, data in inner_tars.items()]
    (root / imagenet.TRAIN_TAR).write_bytes(tar_bytes(members, extra))
    if mapping is not None:
        (root / imagenet.SYNSET_MAPPING).write_text(mapping)


def test_official_tar_reads_nested_members(tmp_path):
    a1, a2, b1 = jpeg(1), jpeg(2), jpeg(3)
    write_official(
        tmp_path,
        {
            "n00000001": tar_bytes([("n00000001_1.JPEG", a1), ("n00000001_2.JPEG", a2)]),
            "n00000002": tar_bytes([("n00000002_7.JPEG", b1)]),
        },
    )
    index = open_index("imagenet", str(tmp_path))
    assert index.layout == "official_tar" and index.listed is None
    assert [u.label for u in index.units] == ["n00000001", "n00000002"]
    assert index.classes["n00000001"].name == "tench, Tinca tinca"
    items = list(iter_source(index))
    assert [(i.record.image_id, i.record.label, i.data) for i in items] == [
        ("n00000001_1", "n00000001", a1),
        ("n00000001_2", "n00000001", a2),
        ("n00000002_7", "n00000002", b1),
    ]
    location = items[2].record.location
    assert location.kind is LocationKind.TAR_MEMBER
    assert location.uri == str(tmp_path / imagenet.TRAIN_TAR)
    assert location.members == ("n00000002.tar", "n00000002_7.JPEG")
    for item in items:
        assert read_location(item.record.location) == item.data
        assert item.record.split == "train"


def test_official_tar_rejects_unsafe_and_stray_members(tmp_path):
    inner = tar_bytes(
        [("n00000001_1.JPEG", jpeg(1)), ("../evil.jpg", b"x"), ("/abs.jpg", b"y")],
        extra=[
            special_member("subdir", tarfile.DIRTYPE),
            special_member("link.JPEG", tarfile.SYMTYPE, "/etc/passwd"),
            special_member("hard.JPEG", tarfile.LNKTYPE, "n00000001_1.JPEG"),
            special_member("dev.JPEG", tarfile.CHRTYPE),
        ],
    )
    outer_extra = [special_member("n00000009.tar", tarfile.SYMTYPE, "/tmp/x.tar")]
    write_official(tmp_path, {"n00000001": inner}, extra=outer_extra, mapping=None)
    root = str(tmp_path)
    with tarfile.open(tmp_path / imagenet.TRAIN_TAR, "a") as tar:  # an image outside any synset tar
        info = tarfile.TarInfo("stray_1.JPEG")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    index = open_index("imagenet", root, layout="official_tar")
    assert index.classes["n00000001"].name == "n00000001"  # no mapping: named by wnid
    items = list(iter_source(index))
    assert [i.record.image_id for i in images(items)] == ["n00000001_1"]
    unsafe = rejections(items, RejectReason.UNSAFE_MEMBER_PATH)
    outer = f"{root}/{imagenet.TRAIN_TAR}"
    assert sorted(r.where for r in unsafe) == sorted(
        [f"{outer}!n00000009.tar"]
        + [f"{outer}!n00000001.tar!{m}" for m in ("../evil.jpg", "/abs.jpg", "link.JPEG")]
        + [f"{outer}!n00000001.tar!{m}" for m in ("hard.JPEG", "dev.JPEG")]
    )
    (stray,) = rejections(items, RejectReason.UNLABELLED_IMAGE)
    assert stray.where == f"{outer}!stray_1.JPEG" and stray.image_id == "stray_1"
    assert len(items) == 1 + 6 + 1


# --- ImageNet kaggle_folder ---------------------------------------------------------


def write_kaggle(root, train: dict[str, list[str]], val: list[str], solution: str):
    data = root / imagenet.KAGGLE_DATA
    shade = 0
    for wnid, ids in train.items():
        (data / "train" / wnid).mkdir(parents=True)
        for image_id in ids:
            shade += 1
            (data / "train" / wnid / f"{image_id}.JPEG").write_bytes(jpeg(shade))
    (data / "val").mkdir(parents=True)
    for image_id in val:
        (data / "val" / f"{image_id}.JPEG").write_bytes(jpeg(99))
    (root / imagenet.SYNSET_MAPPING).write_text(MAPPING)
    (root / imagenet.VAL_SOLUTION).write_text(solution)


def test_kaggle_folder_reads_train_and_val(tmp_path):
    write_kaggle(
        tmp_path,
        {"n00000001": ["n00000001_1", "n00000001_2"], "n00000002": ["n00000002_1"]},
        ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"],
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n00000002 1 2 3 4\n"
        "ILSVRC2012_val_00000002,n00000001 1 2 3 4 n00000001 5 6 7 8\n",
    )
    index = open_index("imagenet", str(tmp_path))
    assert index.layout == "kaggle_folder" and index.rejections == []
    assert index.classes["n00000001"].listed_images == 3
    items = list(iter_source(index))
    assert {(i.record.image_id, i.record.label, i.record.split) for i in items} == {
        ("n00000001_1", "n00000001", "train"),
        ("n00000001_2", "n00000001", "train"),
        ("n00000002_1", "n00000002", "train"),
        ("ILSVRC2012_val_00000001", "n00000002", "val"),
        ("ILSVRC2012_val_00000002", "n00000001", "val"),
    }
    for item in items:
        assert item.record.location.kind is LocationKind.FILE
        assert read_location(item.record.location) == item.data


def test_kaggle_folder_bad_metadata(tmp_path):
    solution = tmp_path / imagenet.VAL_SOLUTION
    write_kaggle(
        tmp_path,
        {"n00000001": ["n00000001_1"]},
        ["v1", "v2", "v3", "v_unlisted"],
        "ImageId,PredictionString\n"
        "v1,n00000001 1 2 3 4\n"
        "v2,not_a_wnid 1 2 3 4\n"  # line 3
        "v3,n00000002 1 2 3 4,extra\n"  # line 4
        "v1,n00000002 1 2 3 4\n"  # line 5: duplicate
        "v_absent,n00000002 1 2 3 4\n"
        ",n00000001\n",  # line 7
    )
    (tmp_path / imagenet.KAGGLE_DATA / "train" / "loose.JPEG").write_bytes(jpeg(5))
    items = list(iter_source(imagenet.open_index(str(tmp_path))))
    assert {i.record.image_id for i in images(items)} == {"n00000001_1", "v1"}
    malformed = rejections(items, RejectReason.MALFORMED_ROW)
    assert [r.where for r in malformed] == [f"{solution}:{n}" for n in (3, 4, 7)]
    assert "not_a_wnid" in malformed[0].detail and malformed[0].image_id == "v2"
    (duplicate,) = rejections(items, RejectReason.DUPLICATE_ID)
    assert duplicate.where == f"{solution}:5" and duplicate.image_id == "v1"
    assert f"{solution}:2" in duplicate.detail and "n00000002" in duplicate.detail
    assert [r.image_id for r in rejections(items, RejectReason.MISSING_IMAGE)] == ["v_absent"]
    unlabelled = rejections(items, RejectReason.UNLABELLED_IMAGE)
    # v2 and v3 have no usable row, so their files are unlabelled too
    assert sorted(r.image_id for r in unlabelled) == ["loose", "v2", "v3", "v_unlisted"]


def test_kaggle_folder_missing_csv_or_column(tmp_path):
    write_kaggle(tmp_path, {"n00000001": ["n00000001_1"]}, [], "ImageId,Prediction\n")
    with pytest.raises(SourceLayoutError, match=r"LOC_val_solution\.csv:1: .*PredictionString"):
        imagenet.open_index(str(tmp_path))
    (tmp_path / imagenet.VAL_SOLUTION).unlink()
    with pytest.raises(SourceLayoutError, match=r"LOC_val_solution\.csv: missing file"):
        imagenet.open_index(str(tmp_path))


def test_synset_mapping_bad_lines(tmp_path):
    write_kaggle(tmp_path, {"n00000001": ["n00000001_1"]}, [], "ImageId,PredictionString\n")
    mapping = tmp_path / imagenet.SYNSET_MAPPING
    mapping.write_text("n00000001 tench\nn00000001 again\nbogus line\nn00000003\n")
    index = imagenet.open_index(str(tmp_path))
    assert [r.where for r in index.rejections] == [f"{mapping}:{n}" for n in (2, 3, 4)]
    assert all(r.reason is RejectReason.MALFORMED_ROW for r in index.rejections)
    assert index.classes["n00000001"].name == "tench"


def test_imagenet_no_layout(tmp_path):
    with pytest.raises(SourceLayoutError, match="no imagenet layout.*ILSVRC2012_img_train.tar"):
        imagenet.open_index(str(tmp_path))
