"""The GLDv2 reader on a hand-built `tars` layout."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
from PIL import Image
from test_readers import tar_bytes  # tests/ is on sys.path under pytest

from unibed.dataplane.sources import gldv2, iter_source, open_index, read_location
from unibed.schemas.errors import ChecksumError, SourceLayoutError
from unibed.schemas.source_record import LocationKind, Rejection, RejectReason, SourceImage

A, B, C, D = "abc0000000000001", "abd0000000000002", "0120000000000003", "fff0000000000004"
TRAIN_CSV = (
    f"id,url,landmark_id\n{A},http://x/a.jpg,10\n{B},http://x/b.jpg,10\n{C},http://x/c.jpg,20\n"
)
CLEAN_CSV = f"landmark_id,images\n10,{A} {B}\n"
CATEGORY_CSV = (
    "landmark_id,category\n"
    "10,http://commons.wikimedia.org/wiki/Category:Caf%C3%A9_de_Flore\n"
    "20,http://commons.wikimedia.org/wiki/Category:Big_Ben\n"
)


def jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (shade % 256, 40, 90)).save(out, "JPEG")
    return out.getvalue()


def member_path(image_id: str) -> str:
    return f"{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg"


def write_tar(path, members: list[tuple[str, bytes]], extra=()) -> bytes:
    data = tar_bytes(members, extra)
    path.write_bytes(data)
    return data


def write_md5(root, tar_name: str, data: bytes) -> str:
    digest = hashlib.md5(data).hexdigest()
    (root / f"md5.{tar_name.removesuffix('.tar')}.txt").write_text(f"{digest}  {tar_name}\n")
    return digest


def write_layout(root, train=TRAIN_CSV, clean=CLEAN_CSV, category=CATEGORY_CSV) -> str:
    """Three CSVs and two tars (A, B in the first, C in the second), md5 files for both."""
    (root / "train.csv").write_text(train)
    (root / "train_clean.csv").write_text(clean)
    (root / "train_label_to_category.csv").write_text(category)
    first = write_tar(
        root / "images_000.tar", [(member_path(A), jpeg(1)), (member_path(B), jpeg(2))]
    )
    second = write_tar(root / "images_001.tar", [(member_path(C), jpeg(3))])
    write_md5(root, "images_000.tar", first)
    write_md5(root, "images_001.tar", second)
    return str(root)


def by_reason(items, reason):
    return [i for i in items if isinstance(i, Rejection) and i.reason is reason]


def test_reads_tars_with_verified_md5(tmp_path):
    root = write_layout(tmp_path)
    index = open_index("gldv2", root)
    assert index.layout == "tars" and index.rejections == []
    assert [u.uri for u in index.units] == [f"{root}/images_000.tar", f"{root}/images_001.tar"]
    assert all(len(u.checksum) == 32 for u in index.units)
    assert index.subsets == {"clean": frozenset({A, B})}
    assert index.classes["10"].name == "Café de Flore" and index.classes["10"].listed_images == 2
    assert index.classes["20"].name == "Big Ben"
    items = list(iter_source(index))
    assert [(i.record.image_id, i.record.label) for i in items] == [(A, "10"), (B, "10"), (C, "20")]
    for item in items:
        location = item.record.location
        assert location.kind is LocationKind.TAR_MEMBER
        assert location.members == (member_path(item.record.image_id),)
        assert read_location(location) == item.data


def test_md5_mismatch_raises_at_the_end_of_the_unit(tmp_path):
    root = write_layout(tmp_path)
    (tmp_path / "md5.images_000.txt").write_text(f"{'0' * 32}  images_000.tar\n")
    index = gldv2.open_index(root)
    reading = gldv2.read_unit(index.units[0], index)
    assert [next(reading).record.image_id, next(reading).record.image_id] == [A, B]
    actual = hashlib.md5((tmp_path / "images_000.tar").read_bytes()).hexdigest()
    with pytest.raises(ChecksumError, match=f"images_000.tar: md5 is {actual} but .* {'0' * 32}"):
        next(reading)
    assert len(list(gldv2.read_unit(index.units[1], index))) == 1  # the other tar is fine


def test_corrupt_tar_reports_the_checksum(tmp_path):
    root = write_layout(tmp_path)
    tar_path = tmp_path / "images_001.tar"
    tar_path.write_bytes(b"not a tar at all" * 64)
    index = gldv2.open_index(root)
    with pytest.raises(ChecksumError, match="images_001.tar"):
        list(gldv2.read_unit(index.units[1], index))


def test_without_md5_files_nothing_is_verified(tmp_path):
    root = write_layout(tmp_path)
    for md5_file in tmp_path.glob("md5.*"):
        md5_file.unlink()
    index = gldv2.open_index(root)
    assert [u.checksum for u in index.units] == ["", ""]
    assert len(list(iter_source(index))) == 3


def test_md5_file_without_the_tar_line(tmp_path):
    root = write_layout(tmp_path)
    (tmp_path / "md5.images_001.txt").write_text(f"{'0' * 32}  images_999.tar\n")
    with pytest.raises(SourceLayoutError, match=r"md5\.images_001\.txt: no .*images_001\.tar"):
        gldv2.open_index(root)


def test_bad_metadata(tmp_path):
    train = TRAIN_CSV + (
        "ABC0000000000009,http://x,10\n"  # line 5: not lowercase hex
        f"{D},http://x,ten\n"  # line 6: non-integer landmark
        f"{A},http://x\n"  # line 7: wrong field count
        f"{A},http://x,20\n"  # line 8: duplicate of line 2
        "eee0000000000005,http://x,20\n"  # line 9: listed, in no tar
    )
    clean = CLEAN_CSV + "x,abc\n20,nothex\n"  # lines 3 and 4
    category = CATEGORY_CSV + "thirty,http://x\n"  # line 4
    root = write_layout(tmp_path, train, clean, category)
    write_tar(
        tmp_path / "images_002.tar",
        [
            (member_path(D), jpeg(4)),  # unlabelled: its row is malformed
            (member_path("9990000000000006"), jpeg(5)),  # unlabelled: not listed
            (f"a/b/d/{A}.jpg", jpeg(6)),  # directories do not match the id
            (f"{A}.jpg", jpeg(7)),
            ("a/b/c/short.jpg", jpeg(8)),
            ("../evil.jpg", b"x"),
            ("/abs.jpg", b"y"),
        ],
        extra=[
            tarfile.TarInfo("a/b/c"),  # a regular empty file named like a dir: malformed
            _special("dir", tarfile.DIRTYPE),
            _special(member_path(C), tarfile.SYMTYPE, "/etc/passwd"),
        ],
    )
    index = gldv2.open_index(root)
    items = list(iter_source(index))
    assert [(i.record.image_id, i.record.label) for i in items if isinstance(i, SourceImage)] == [
        (A, "10"),  # the first row wins
        (B, "10"),
        (C, "20"),
    ]
    malformed = by_reason(items, RejectReason.MALFORMED_ROW)
    where = [r.where.removeprefix(f"{root}/") for r in malformed]
    assert where == [
        "train.csv:5",
        "train.csv:6",
        "train.csv:7",
        "train_clean.csv:3",
        "train_clean.csv:4",
        "train_label_to_category.csv:4",
    ]
    assert "ABC0000000000009" in malformed[0].detail and malformed[1].image_id == D
    (duplicate,) = by_reason(items, RejectReason.DUPLICATE_ID)
    assert duplicate.where == f"{root}/train.csv:8" and f"{root}/train.csv:2" in duplicate.detail
    missing = by_reason(items, RejectReason.MISSING_IMAGE)
    assert [r.image_id for r in missing] == ["eee0000000000005"]
    tar2 = f"{root}/images_002.tar"
    unlabelled = by_reason(items, RejectReason.UNLABELLED_IMAGE)
    assert [r.image_id for r in unlabelled] == [D, "9990000000000006"]
    assert unlabelled[0].where == f"{tar2}!{member_path(D)}"
    names = by_reason(items, RejectReason.MALFORMED_NAME)
    assert [(r.image_id, r.where) for r in names] == [
        (A, f"{tar2}!a/b/d/{A}.jpg"),
        (A, f"{tar2}!{A}.jpg"),
        ("", f"{tar2}!a/b/c/short.jpg"),
        ("", f"{tar2}!a/b/c"),
    ]
    unsafe = by_reason(items, RejectReason.UNSAFE_MEMBER_PATH)
    assert [r.where for r in unsafe] == [
        f"{tar2}!../evil.jpg",
        f"{tar2}!/abs.jpg",
        f"{tar2}!{member_path(C)}",
    ]
    assert len(items) == 3 + 6 + 1 + 1 + 2 + 4 + 3


def _special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    ("file", "header"),
    [
        ("train.csv", "id,landmark_id"),
        ("train_clean.csv", "landmark,images"),
        ("train_label_to_category.csv", "landmark_id,url"),
    ],
)
def test_missing_csv_or_column(tmp_path, file, header):
    root = write_layout(tmp_path)
    (tmp_path / file).write_text(header + "\n")
    with pytest.raises(SourceLayoutError, match=rf"{file}:1: header '{header}' lacks"):
        gldv2.open_index(root)
    (tmp_path / file).unlink()
    with pytest.raises(SourceLayoutError, match=rf"{file}: missing file"):
        gldv2.open_index(root)


def test_no_tars(tmp_path):
    with pytest.raises(SourceLayoutError, match=r"no gldv2 layout .*images_\*\.tar"):
        gldv2.open_index(str(tmp_path))
