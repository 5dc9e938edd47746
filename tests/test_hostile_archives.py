"""Hostile archives and names in the published layouts: a damaged tar, names
that are not UTF-8, members too large to hold. Every image ends as a record
or a counted rejection naming the archive and the byte offset; one small
build carries them all end to end."""

from __future__ import annotations

import csv
import io
import os
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from unibed.dataplane.sources import imagenet, iter_source, open_index, read_location
from unibed.schemas.errors import SchemaError
from unibed.schemas.recipe import parse_recipe
from unibed.schemas.source_record import Rejection, RejectReason, SourceImage

BLOCK = 512
A, B, C, D = "abc0000000000001", "abd0000000000002", "0120000000000003", "fff0000000000004"


def noise_jpeg(seed: int, side: int = 48) -> bytes:
    """A distinct photo-like JPEG (no two seeds are near duplicates)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def tar_with_offsets(members: list[tuple[bytes, bytes]]) -> tuple[bytes, list[int]]:
    """A GNU tar of regular files named by raw bytes, and each header's offset."""
    out, offsets = io.BytesIO(), []
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            offsets.append(out.tell())
            info = tarfile.TarInfo(os.fsdecode(name))  # surrogateescape: the bytes go in as they are
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue(), offsets


def corrupt_header(tar: bytes, header_offset: int) -> bytes:
    """The tar with one header's checksum wrong (its mtime changed, its name legible)."""
    damaged = bytearray(tar)
    damaged[header_offset + 136] ^= 0x01
    return bytes(damaged)


def images(items) -> list[SourceImage]:
    return [i for i in items if isinstance(i, SourceImage)]


def by_reason(items, reason: RejectReason) -> list[Rejection]:
    return [i for i in items if isinstance(i, Rejection) and i.reason is reason]


def assert_all_text_encodes(items) -> None:
    """Nothing downstream may meet a surrogate (writing a report would fail)."""
    for item in items:
        fields = (item.image_id, item.detail, item.where) if isinstance(item, Rejection) else (
            item.record.image_id, str(item.record.location))
        for text in fields:
            text.encode("utf-8")


def test_forward_only_stream_recovers_past_a_bad_header_and_reports_a_partial_block():
    """GLDv2 tars with an md5 file stream through a hasher that cannot seek."""
    from unibed.dataplane.sources.archives import iter_tar_members
    from unibed.dataplane.sources.common import Md5Reader

    data = [os.urandom(700) for _ in range(3)]
    tar, heads = tar_with_offsets([(f"{i}.jpg".encode(), d) for i, d in enumerate(data)])
    end_of_data = heads[2] + BLOCK + 1024
    damaged = corrupt_header(tar, heads[1])[:end_of_data] + b"x" * 100
    members = list(iter_tar_members(Md5Reader(io.BytesIO(damaged)), base_offset=10_000))
    assert [(m.name, m.data) for m in members if m.rejected is None] == [("0.jpg", data[0]), ("2.jpg", data[2])]
    bad_header, partial = [m for m in members if m.rejected is RejectReason.DAMAGED_ARCHIVE]
    assert bad_header.name == "1.jpg" and f"at offset {10_000 + heads[1]} " in bad_header.detail
    assert f"partial block at offset {10_000 + end_of_data}" in partial.detail


# --- ImageNet official tar -------------------------------------------------------------


def write_imagenet(root, synset_tars: list[tuple[bytes, bytes]]) -> tuple[str, list[int]]:
    root.mkdir(exist_ok=True)
    outer, offsets = tar_with_offsets(synset_tars)
    (root / imagenet.TRAIN_TAR).write_bytes(outer)
    (root / imagenet.SYNSET_MAPPING).write_text("n00000001 tench\nn00000002 goldfish\n")
    return str(root / imagenet.TRAIN_TAR), offsets


def test_imagenet_bad_header_mid_synset_tar_is_reported_and_later_members_recovered(tmp_path):
    data = [noise_jpeg(i) for i in range(5)]
    inner, inner_heads = tar_with_offsets([(f"n00000001_{i}.JPEG".encode(), d) for i, d in enumerate(data)])
    outer, outer_heads = write_imagenet(tmp_path, [(b"n00000001.tar", corrupt_header(inner, inner_heads[2]))])
    items = list(iter_source(open_index("imagenet", str(tmp_path))))
    assert [i.record.image_id for i in images(items)] == ["n00000001_0", "n00000001_1", "n00000001_3", "n00000001_4"]
    for item in images(items):
        assert read_location(item.record.location) == item.data
    (damage,) = by_reason(items, RejectReason.DAMAGED_ARCHIVE)
    assert damage.image_id == "n00000001_2"
    assert damage.where == f"{outer}!n00000001.tar!n00000001_2.JPEG"
    inner_start = outer_heads[0] + BLOCK
    assert f"at offset {inner_start + inner_heads[2]} are not a valid tar header" in damage.detail
    assert f"next valid header at offset {inner_start + inner_heads[3]}" in damage.detail
    assert len(items) == 5  # every image: a record or a counted rejection


def test_imagenet_bad_header_in_the_outer_tar_loses_only_that_synset_tar(tmp_path):
    synsets = [(f"n0000000{n}.tar".encode(), _synset(n)) for n in (1, 2, 3)]
    outer, heads = tar_with_offsets(synsets)
    write_imagenet(tmp_path, [])
    tar_path = tmp_path / imagenet.TRAIN_TAR
    tar_path.write_bytes(corrupt_header(outer, heads[1]))
    index = open_index("imagenet", str(tmp_path))
    assert [u.label for u in index.units] == ["n00000001", "n00000003"]
    damage, *lost = index.rejections
    assert damage.reason is RejectReason.DAMAGED_ARCHIVE
    assert damage.where == f"{tar_path}!n00000002.tar" and f"at offset {heads[1]} " in damage.detail
    # scanning on block by block finds the lost synset tar's own headers, as GNU
    # tar would: each of its images is counted (without a label) rather than lost
    assert [(r.reason, r.image_id) for r in lost] == [
        (RejectReason.UNLABELLED_IMAGE, "n00000002_0"), (RejectReason.UNLABELLED_IMAGE, "n00000002_1")]
    items = list(iter_source(index))
    assert [i.record.image_id for i in images(items)] == [
        "n00000001_0", "n00000001_1", "n00000003_0", "n00000003_1"]


def test_imagenet_kaggle_file_named_in_latin1(tmp_path):
    from test_readers import write_kaggle  # tests/ is on sys.path under pytest

    write_kaggle(tmp_path, {"n00000001": ["n00000001_1"]}, [], "ImageId,PredictionString\n")
    train = os.fsencode(tmp_path / imagenet.KAGGLE_DATA / "train" / "n00000001")
    with open(train + b"/n00000001_caf\xe9.JPEG", "wb") as f:
        f.write(noise_jpeg(1))
    items = list(iter_source(open_index("imagenet", str(tmp_path))))
    assert_all_text_encodes(items)
    assert [i.record.image_id for i in images(items)] == ["n00000001_1"]
    (bad,) = by_reason(items, RejectReason.MALFORMED_NAME)
    assert bad.image_id == "n00000001_caf\\xe9" and bad.where.endswith("/n00000001_caf\\xe9.JPEG")


def _truncate_outer(inner_two: bytes) -> bytes:
    """The outer tar cut in the middle of the second synset tar's bytes."""
    outer, heads = tar_with_offsets([(b"n00000001.tar", _synset(1)), (b"n00000002.tar", inner_two)])
    return outer[: heads[1] + BLOCK + len(inner_two) // 2]


def _claims_8_gib(inner_two: bytes) -> bytes:
    """A second synset tar whose (valid) header claims 8 GiB, in a file of a few KB."""
    outer, heads = tar_with_offsets([(b"n00000001.tar", _synset(1)), (b"n00000002.tar", inner_two)])
    info = tarfile.TarInfo("n00000002.tar")
    info.size = 8 << 30
    return outer[: heads[1]] + info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape") + inner_two


def _synset(wnid_number: int) -> bytes:
    wnid = f"n{wnid_number:08d}"
    return tar_with_offsets([(f"{wnid}_{i}.JPEG".encode(), noise_jpeg(10 * wnid_number + i)) for i in range(2)])[0]


@pytest.mark.parametrize("damage", [_truncate_outer, _claims_8_gib])
def test_imagenet_outer_tar_ending_inside_a_synset_tar_names_it(tmp_path, damage):
    tar_path = tmp_path / imagenet.TRAIN_TAR
    write_imagenet(tmp_path, [])
    inner_two = _synset(2)
    tar_path.write_bytes(damage(inner_two))
    index = open_index("imagenet", str(tmp_path))  # the old reader raised ReadError here
    (rejection,) = index.rejections
    assert rejection.reason is RejectReason.DAMAGED_ARCHIVE
    assert rejection.where == f"{tar_path}!n00000002.tar"
    claimed = (8 << 30) if damage is _claims_8_gib else len(inner_two)
    assert f"claims {claimed} bytes" in rejection.detail and "header at offset" in rejection.detail
    items = list(iter_source(index))
    assert [i.record.image_id for i in images(items)] == ["n00000001_0", "n00000001_1"]


# --- GLDv2 tars without md5 files --------------------------------------------------------


def member_path(image_id: str) -> bytes:
    return f"{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg".encode()


def write_gldv2(root, tar: bytes, ids=(A, B, C, D)) -> str:
    rows = "".join(f"{image_id},http://x/{n}.jpg,{10 + n % 2}\n" for n, image_id in enumerate(ids))
    (root / "train.csv").write_text("id,url,landmark_id\n" + rows)
    (root / "train_clean.csv").write_text(f"landmark_id,images\n10,{' '.join(ids)}\n")
    (root / "train_label_to_category.csv").write_text("landmark_id,category\n10,x\n11,y\n")
    (root / "images_000.tar").write_bytes(tar)
    return str(root / "images_000.tar")


def gldv2_tar(ids=(A, B, C, D)) -> tuple[bytes, list[int], list[bytes]]:
    data = [noise_jpeg(n) for n in range(len(ids))]
    tar, heads = tar_with_offsets([(member_path(i), d) for i, d in zip(ids, data)])
    return tar, heads, data


def test_gldv2_bad_header_mid_tar(tmp_path):
    tar, heads, _ = gldv2_tar()
    tar_path = write_gldv2(tmp_path, corrupt_header(tar, heads[1]))
    items = list(iter_source(open_index("gldv2", str(tmp_path))))
    assert [i.record.image_id for i in images(items)] == [A, C, D]
    (damage,) = by_reason(items, RejectReason.DAMAGED_ARCHIVE)
    assert damage.image_id == B and damage.where == f"{tar_path}!{member_path(B).decode()}"
    assert f"at offset {heads[1]} are not a valid tar header" in damage.detail
    assert by_reason(items, RejectReason.MISSING_IMAGE) == []  # B is accounted for by the damage


def test_gldv2_tar_truncated_at_a_member_boundary(tmp_path):
    tar, heads, _ = gldv2_tar()
    tar_path = write_gldv2(tmp_path, tar[: heads[2]])  # A and B whole, then nothing
    items = list(iter_source(open_index("gldv2", str(tmp_path))))
    assert [i.record.image_id for i in images(items)] == [A, B]
    (damage,) = by_reason(items, RejectReason.DAMAGED_ARCHIVE)
    assert damage.where == tar_path
    assert f"ends at offset {heads[2]} without the end-of-archive marker" in damage.detail
    assert sorted(r.image_id for r in by_reason(items, RejectReason.MISSING_IMAGE)) == [C, D]


def test_gldv2_tar_truncated_inside_a_member(tmp_path):
    tar, heads, data = gldv2_tar()
    tar_path = write_gldv2(tmp_path, tar[: heads[2] + BLOCK + 100])
    items = list(iter_source(open_index("gldv2", str(tmp_path))))
    assert [i.record.image_id for i in images(items)] == [A, B]
    (damage,) = by_reason(items, RejectReason.DAMAGED_ARCHIVE)
    assert damage.image_id == C and damage.where == f"{tar_path}!{member_path(C).decode()}"
    assert f"header at offset {heads[2]} claims {len(data[2])} bytes of which 100" in damage.detail
    assert [r.image_id for r in by_reason(items, RejectReason.MISSING_IMAGE)] == [D]


def test_gldv2_member_over_the_size_limit_is_skipped_unread(tmp_path):
    big = os.urandom(5000)
    small = noise_jpeg(1, side=16)
    tar, heads = tar_with_offsets([(member_path(A), big), (member_path(B), small)])
    write_gldv2(tmp_path, tar, ids=(A, B))
    items = list(iter_source(open_index("gldv2", str(tmp_path)), max_input_bytes=len(small)))
    assert [(i.record.image_id, i.data) for i in images(items)] == [(B, small)]
    (large,) = by_reason(items, RejectReason.TOO_LARGE)
    assert large.image_id == A
    assert f"at offset {heads[0] + BLOCK} is 5000 bytes, more than max_input_bytes ({len(small)})" in large.detail


def test_gldv2_member_named_with_bytes_that_are_not_utf8(tmp_path):
    tar, _ = tar_with_offsets([(member_path(A), noise_jpeg(1)), (b"f/e/e/feed\xff.jpg", noise_jpeg(2))])
    tar_path = write_gldv2(tmp_path, tar, ids=(A,))
    items = list(iter_source(open_index("gldv2", str(tmp_path))))
    assert_all_text_encodes(items)
    (bad,) = by_reason(items, RejectReason.MALFORMED_NAME)
    assert bad.where == f"{tar_path}!f/e/e/feed\\xff.jpg" and "'f/e/e/feed\\xff.jpg'" in bad.detail
    assert [i.record.image_id for i in images(items)] == [A]


# --- Products-10K folder and zip -------------------------------------------------------------


def write_products(root, layout: str, files: dict[bytes, bytes], listed: list[str]) -> str:
    rows = "".join(f"{name},{n},1\n" for n, name in enumerate(listed))
    (root / "train.csv").write_text("name,class,group\n" + rows)
    if layout == "folder":
        (root / "train").mkdir()
        for name, data in files.items():
            with open(os.fsencode(root / "train") + b"/" + name, "wb") as f:
                f.write(data)
    else:
        with zipfile.ZipFile(root / "train.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(f"train/{name.decode()}", data)
    return str(root)


def test_products10k_folder_bad_name_and_too_large_file(tmp_path):
    small, big = noise_jpeg(1), noise_jpeg(2, side=200)
    files = {b"1.jpg": small, b"caf\xe9.jpg": noise_jpeg(3), b"big.jpg": big}
    root = write_products(tmp_path, "folder", files, ["1.jpg", "big.jpg"])
    items = list(iter_source(open_index("products10k", root), max_input_bytes=len(small)))
    assert_all_text_encodes(items)
    assert [i.record.image_id for i in images(items)] == ["1.jpg"]
    (bad,) = by_reason(items, RejectReason.MALFORMED_NAME)
    assert bad.image_id == "caf\\xe9.jpg" and bad.where == f"{root}/train/caf\\xe9.jpg"
    (large,) = by_reason(items, RejectReason.TOO_LARGE)
    assert large.image_id == "big.jpg" and f"is {len(big)} bytes" in large.detail


def lie_about_size(zip_bytes: bytes, name: bytes, size: int) -> bytes:
    """The zip with `name`'s uncompressed size (local header and central directory) set to `size`."""
    data = bytearray(zip_bytes)
    for signature, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
        at = data.find(signature)
        while at != -1:
            if data[at + name_at : at + name_at + len(name)] == name:
                data[at + size_at : at + size_at + 4] = size.to_bytes(4, "little")
            at = data.find(signature, at + 4)
    return bytes(data)


def test_products10k_zip_hostile_members(tmp_path):
    """A member that inflates past the limit, one whose header lies about its
    size, and one whose name is flagged UTF-8 but is not: each one rejection,
    the rest of the zip read."""
    small = noise_jpeg(1)
    files = {b"1.jpg": small, b"bomb.jpg": bytes(200_000), b"liar.jpg": bytes(200_000),
             "caf\u00e9.jpg".encode(): noise_jpeg(2)}
    root = write_products(tmp_path, "zip", files, ["1.jpg", "bomb.jpg", "liar.jpg"])
    zip_path = tmp_path / "train.zip"
    raw = lie_about_size(zip_path.read_bytes(), b"train/liar.jpg", 1000)
    zip_path.write_bytes(raw.replace(b"caf\xc3\xa9", b"caf\xe9\xff"))  # still flagged UTF-8
    index = open_index("products10k", root)  # the old reader failed here (UnicodeDecodeError)
    items = list(iter_source(index, max_input_bytes=10_000))
    assert_all_text_encodes(items)
    assert [(i.record.image_id, i.data) for i in images(items)] == [("1.jpg", small)]
    assert read_location(images(items)[0].record.location) == small
    (bad,) = by_reason(items, RejectReason.MALFORMED_NAME)
    assert bad.where == f"{zip_path}!train/caf\\xe9\\xff.jpg" and "flagged UTF-8" in bad.detail
    (bomb,) = by_reason(items, RejectReason.TOO_LARGE)
    assert bomb.image_id == "bomb.jpg" and "200000 bytes" in bomb.detail
    (liar,) = by_reason(items, RejectReason.DAMAGED_ARCHIVE)
    assert liar.image_id == "liar.jpg" and liar.where == f"{zip_path}!train/liar.jpg"


def test_max_input_bytes_is_a_strict_positive_int():
    base = {"name": "r", "sources": [{"name": "gldv2", "location": "/x"}], "output": "/o"}
    assert parse_recipe({**base, "image": {"max_input_bytes": 1000}}).image.max_input_bytes == 1000
    for bad in (0, "1000", 1.5):
        with pytest.raises(SchemaError, match="max_input_bytes"):
            parse_recipe({**base, "image": {"max_input_bytes": bad}})


# --- one build carries them all ------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_build(tmp_path_factory):
    """ImageNet: a synset tar with a bad 3rd header, one with a member named in
    Latin-1; Products-10K: a file named in Latin-1 and one over the size limit."""
    from unibed.dataplane.build.launcher import build_dataset

    root = tmp_path_factory.mktemp("hostile")
    inner, heads = tar_with_offsets([(f"n00000001_{i}.JPEG".encode(), noise_jpeg(i)) for i in range(5)])
    second, _ = tar_with_offsets([(b"n00000002_1.JPEG", noise_jpeg(5)), (b"n00000002_caf\xe9.JPEG", noise_jpeg(6))])
    write_imagenet(root / "imagenet", [(b"n00000001.tar", corrupt_header(inner, heads[2])),
                                       (b"n00000002.tar", second)])
    (root / "products10k").mkdir()
    products = {b"1.jpg": noise_jpeg(7), b"2.jpg": noise_jpeg(8), b"caf\xe9.jpg": noise_jpeg(9),
                b"big.jpg": noise_jpeg(10, side=300)}
    write_products(root / "products10k", "folder", products, ["1.jpg", "2.jpg", "big.jpg"])
    recipe = parse_recipe({
        "name": "hostile",
        "sources": [{"name": "imagenet", "location": str(root / "imagenet")},
                    {"name": "products10k", "location": str(root / "products10k")}],
        "image": {"max_input_bytes": 20_000},
        "shards": {"target_bytes": 1 << 20, "count_multiple": 1},
        "output": str(root / "out"),
    })
    return build_dataset(recipe)


def test_build_with_hostile_inputs_completes_and_counts_every_input(hostile_build):
    with open(os.path.join(hostile_build.output, "rejects.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    reasons = sorted((r["source"], r["reason"]) for r in rows)
    assert reasons == [("imagenet", "damaged_archive"), ("imagenet", "malformed_name"),
                       ("products10k", "malformed_name"), ("products10k", "too_large")]
    wheres = {r["where"] for r in rows if r["reason"] == "malformed_name"}
    assert any(w.endswith("!n00000002.tar!n00000002_caf\\xe9.JPEG") for w in wheres)
    assert any(w.endswith("/train/caf\\xe9.jpg") for w in wheres)
    accounting = hostile_build.manifest.accounting
    assert (accounting["imagenet"].inputs, accounting["imagenet"].written) == (7, 5)
    assert (accounting["products10k"].inputs, accounting["products10k"].written) == (4, 2)
    for counts in accounting.values():
        assert counts.inputs == counts.written + counts.duplicates + counts.rejected
