"""The generated sample: published layouts, ground truth, planted problems, determinism."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import tarfile
import zipfile
from collections import Counter
from urllib.parse import unquote

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageOps, UnidentifiedImageError

from unibed.sample import SampleConfig, generate_sample
from unibed.sample.duplicates import build_match
from unibed.sample.edits import EDITS
from unibed.sample.phash import UNRELATED_PROBE_MIN_DISTANCE, probes_of

SOURCES = ("imagenet", "products10k", "gldv2")
WNID = re.compile(r"^n0\d{7}$")
GLDV2_ID = re.compile(r"^[0-9a-f]{16}$")
CATEGORY = re.compile(r"^http://commons\.wikimedia\.org/wiki/Category:(\S+)$")
TINY = SampleConfig(
    seed=7, imagenet_classes=2, imagenet_images_per_class=3, imagenet_val_per_class=1,
    products_classes=2, products_images_per_class=3, gldv2_landmarks=3,
    gldv2_max_images_per_landmark=3, gldv2_non_clean_images=1, gldv2_tars=2,
)


def read_csv(path: str) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_tar(data: bytes) -> dict[str, bytes]:
    """Regular members of a tar by name, in archive order."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def files_under(folder: str) -> dict[str, bytes]:
    found = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, folder)] = read_bytes(path)
    return found


class Layouts:
    """The sample read back the way docs/layouts.md describes it, independently of the generator."""

    def __init__(self, root: str):
        imagenet, products, gldv2 = (os.path.join(root, s) for s in SOURCES)
        with open(os.path.join(imagenet, "LOC_synset_mapping.txt")) as f:
            self.synsets = dict(line.rstrip("\n").split(" ", 1) for line in f)

        self.official: dict[str, bytes] = {}
        self.official_labels: dict[str, str] = {}
        outer = read_tar(read_bytes(os.path.join(imagenet, "ILSVRC2012_img_train.tar")))
        for inner_name, inner in outer.items():
            wnid = inner_name.removesuffix(".tar")
            assert inner_name.endswith(".tar") and WNID.match(wnid), inner_name
            for name, data in read_tar(inner).items():
                assert re.fullmatch(rf"{wnid}_\d+\.JPEG", name), name
                self.official[name.removesuffix(".JPEG")] = data
                self.official_labels[name.removesuffix(".JPEG")] = wnid

        cls_loc = os.path.join(imagenet, "ILSVRC", "Data", "CLS-LOC")
        self.kaggle: dict[str, bytes] = {}
        self.kaggle_labels: dict[str, str] = {}
        for rel, data in files_under(os.path.join(cls_loc, "train")).items():
            wnid, name = rel.split(os.sep)
            assert re.fullmatch(rf"{wnid}_\d+\.JPEG", name), rel
            self.kaggle[name.removesuffix(".JPEG")] = data
            self.kaggle_labels[name.removesuffix(".JPEG")] = wnid
        header, rows = read_csv(os.path.join(imagenet, "LOC_val_solution.csv"))
        assert header == ["ImageId", "PredictionString"]
        self.val_solution = {r["ImageId"]: r["PredictionString"].split() for r in rows}
        for rel, data in files_under(os.path.join(cls_loc, "val")).items():
            assert re.fullmatch(r"ILSVRC2012_val_\d{8}\.JPEG", rel), rel
            image_id = rel.removesuffix(".JPEG")
            self.kaggle[image_id] = data
            self.kaggle_labels[image_id] = self.val_solution[image_id][0]

        header, self.products_rows = read_csv(os.path.join(products, "train.csv"))
        assert header == ["name", "class", "group"]
        self.products_folder = files_under(os.path.join(products, "train"))
        with zipfile.ZipFile(os.path.join(products, "train.zip")) as z:
            names = z.namelist()
            assert all(n.startswith("train/") for n in names)
            self.products_zip = {n.removeprefix("train/"): z.read(n) for n in names}

        header, self.gldv2_rows = read_csv(os.path.join(gldv2, "train.csv"))
        assert header == ["id", "url", "landmark_id"]
        header, clean_rows = read_csv(os.path.join(gldv2, "train_clean.csv"))
        assert header == ["landmark_id", "images"]
        self.gldv2_clean = {i: r["landmark_id"] for r in clean_rows for i in r["images"].split(" ")}
        header, category_rows = read_csv(os.path.join(gldv2, "train_label_to_category.csv"))
        assert header == ["landmark_id", "category"]
        self.categories = {r["landmark_id"]: r["category"] for r in category_rows}
        self.gldv2_tars: dict[str, bytes] = {}
        self.tar_names = sorted(n for n in os.listdir(gldv2) if n.endswith(".tar"))
        for tar_name in self.tar_names:
            for name, data in read_tar(read_bytes(os.path.join(gldv2, tar_name))).items():
                image_id = name.rsplit("/", 1)[-1].removesuffix(".jpg")
                assert name == f"{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg", name
                assert GLDV2_ID.match(image_id) and image_id not in self.gldv2_tars
                self.gldv2_tars[image_id] = data

    def by_layout(self, source: str) -> dict[str, dict[str, bytes]]:
        return {
            "imagenet": {"official_tar": self.official, "kaggle_folder": self.kaggle},
            "products10k": {"folder": self.products_folder, "zip": self.products_zip},
            "gldv2": {"tars": self.gldv2_tars},
        }[source]

    def data(self, source: str, image_id: str) -> bytes:
        return {"imagenet": self.kaggle, "products10k": self.products_folder,
                "gldv2": self.gldv2_tars}[source][image_id]


@pytest.fixture(scope="module")
def layouts(sample_root) -> Layouts:
    return Layouts(sample_root)


@pytest.fixture(scope="module")
def entries(ground_truth) -> dict[str, dict]:
    return {f"{e['source']}/{e['image_id']}": e for e in ground_truth["images"]}


def test_ground_truth_shape(ground_truth):
    assert set(ground_truth) == {"schema_version", "seed", "config", "sources", "images",
                                 "duplicate_groups", "counts"}
    assert ground_truth["schema_version"] == 1
    assert ground_truth["config"] == dataclasses.asdict(SampleConfig())
    keys = [(e["source"], e["image_id"]) for e in ground_truth["images"]]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert {s: ground_truth["sources"][s]["root"] for s in SOURCES} == {s: s for s in SOURCES}


def test_imagenet_layouts(layouts, ground_truth):
    classes = ground_truth["sources"]["imagenet"]["classes"]
    assert layouts.synsets == {wnid: c["name"] for wnid, c in classes.items()}
    assert list(layouts.synsets) == sorted(layouts.synsets)
    train = {k: v for k, v in layouts.kaggle.items() if not k.startswith("ILSVRC2012_val_")}
    assert layouts.official == train  # the two layouts hold the same train images
    assert layouts.official_labels == {k: layouts.kaggle_labels[k] for k in train}
    for image_id, tokens in layouts.val_solution.items():
        assert image_id in layouts.kaggle
        assert tokens[0] in layouts.synsets and len(tokens) % 5 == 0
        boxes = np.asarray(tokens).reshape(-1, 5)
        assert set(boxes[:, 0]) == {tokens[0]} and all(int(v) >= 0 for v in boxes[:, 1:].flat)


def test_products10k_layouts(layouts):
    assert layouts.products_folder == layouts.products_zip
    for row in layouts.products_rows:
        assert re.fullmatch(r"\d+\.jpg", row["name"]) and row["class"].isdigit()
        assert row["group"].isdigit()
    names = [row["name"] for row in layouts.products_rows]
    assert len(set(names)) == len(names)
    assert set(layouts.products_folder) < set(names)  # one listed file is missing


def test_gldv2_layouts(layouts, sample_root, ground_truth):
    ids = [row["id"] for row in layouts.gldv2_rows]
    assert all(GLDV2_ID.match(i) for i in ids) and len(set(ids)) == len(ids)
    assert all(row["url"].startswith("https://upload.wikimedia.org/") for row in layouts.gldv2_rows)
    labels = {row["id"]: row["landmark_id"] for row in layouts.gldv2_rows}
    assert all(labels[i] == landmark for i, landmark in layouts.gldv2_clean.items())
    not_clean = sorted(set(ids) - set(layouts.gldv2_clean))
    assert not_clean and not_clean == ground_truth["sources"]["gldv2"]["not_in_clean"]
    assert set(not_clean) <= set(layouts.gldv2_tars)

    classes = ground_truth["sources"]["gldv2"]["classes"]
    assert set(layouts.categories) == set(classes) == set(labels.values())
    for landmark, url in layouts.categories.items():
        assert 0 <= int(landmark) <= 203093
        name = CATEGORY.match(url).group(1)
        assert unquote(name).replace("_", " ") == classes[landmark]["name"]

    tars = ground_truth["config"]["gldv2_tars"]
    assert layouts.tar_names == [f"images_{i:03d}.tar" for i in range(tars)]
    for tar_name in layouts.tar_names:
        md5 = hashlib.md5(read_bytes(os.path.join(sample_root, "gldv2", tar_name))).hexdigest()
        md5_file = os.path.join(sample_root, "gldv2", f"md5.{tar_name.removesuffix('.tar')}.txt")
        with open(md5_file) as f:
            assert f.read() == f"{md5}  {tar_name}\n"

    # landmark sizes vary and tie, so a top-k selection has something to decide
    counts = [c["images"] for c in classes.values()]
    assert len(set(counts)) > 2 and len(set(counts)) < len(counts)


def test_image_sizes_are_like_the_real_datasets(layouts, ground_truth):
    long_sides = {"imagenet": (333, 640), "products10k": (300, 800), "gldv2": (800, 1600)}
    ordinary = [e for e in ground_truth["images"] if e["quirk"] is None and e["expected"] == "ok"]
    assert 250 <= len(ordinary) <= 400
    for e in ordinary:
        width, height = Image.open(io.BytesIO(layouts.data(e["source"], e["image_id"]))).size
        low, high = long_sides[e["source"]]
        assert low <= max(width, height) <= high and min(width, height) >= 0.5 * max(width, height)


def test_every_image_is_where_the_ground_truth_says(layouts, ground_truth):
    products_labels = {r["name"]: r["class"] for r in layouts.products_rows}
    gldv2_labels = {r["id"]: r["landmark_id"] for r in layouts.gldv2_rows}
    for e in ground_truth["images"]:
        source, image_id = e["source"], e["image_id"]
        for layout, held in layouts.by_layout(source).items():
            assert (image_id in held) == (layout in e["in_layouts"]), (e, layout)
        label = {
            "imagenet": layouts.kaggle_labels.get(image_id),
            "products10k": products_labels.get(image_id),
            "gldv2": layouts.gldv2_clean.get(image_id),
        }[source]
        assert label == e["label"], e
        if source == "gldv2" and e["label"] is not None:
            assert gldv2_labels[image_id] == e["label"]
    listed = {(e["source"], e["image_id"]) for e in ground_truth["images"]}
    not_clean = set(ground_truth["sources"]["gldv2"]["not_in_clean"])
    for source in SOURCES:
        for held in layouts.by_layout(source).values():
            assert {(source, i) for i in held if i not in not_clean} <= listed


def test_planted_files_are_what_they_claim(layouts, ground_truth, monkeypatch):
    planted = [e for e in ground_truth["images"] if e["quirk"]]
    assert {e["source"] for e in planted} == set(SOURCES)
    quirks = {e["quirk"]: e for e in planted}  # each quirk once, but "missing" in two sources
    assert set(quirks) == {"cmyk", "grayscale", "png_named_jpeg", "exif_rotated", "very_large",
                           "pixel_bomb", "truncated", "empty", "not_an_image", "missing",
                           "unlabelled"}

    def data(quirk: str) -> bytes:
        return layouts.data(quirks[quirk]["source"], quirks[quirk]["image_id"])

    assert Image.open(io.BytesIO(data("cmyk"))).mode == "CMYK"
    assert Image.open(io.BytesIO(data("grayscale"))).mode == "L"
    assert data("png_named_jpeg").startswith(b"\x89PNG\r\n\x1a\n")
    rotated = Image.open(io.BytesIO(data("exif_rotated")))
    assert rotated.getexif()[0x0112] == 6
    assert ImageOps.exif_transpose(rotated).size == rotated.size[::-1]
    large = Image.open(io.BytesIO(data("very_large")))
    assert large.size == (5000, 3750)
    large.load()

    with pytest.raises(OSError):
        Image.open(io.BytesIO(data("truncated"))).load()
    assert data("empty") == b""
    for broken in ("empty", "not_an_image"):
        with pytest.raises(UnidentifiedImageError):
            Image.open(io.BytesIO(data(broken)))
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data("pixel_bomb")))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    width, height = Image.open(io.BytesIO(data("pixel_bomb"))).size
    assert width * height > 1e9 and len(data("pixel_bomb")) < 100_000

    assert quirks["unlabelled"]["label"] is None and quirks["unlabelled"]["in_layouts"] == ["tars"]
    missing = [e for e in planted if e["quirk"] == "missing"]
    assert {e["source"] for e in missing} == {"products10k", "gldv2"}
    assert all(e["in_layouts"] == [] and e["label"] for e in missing)

    expected = {"truncated": "truncated", "empty": "empty_file", "not_an_image": "not_an_image",
                "pixel_bomb": "too_many_pixels", "missing": "missing_image",
                "unlabelled": "unlabelled_image"}
    for e in ground_truth["images"]:
        if e["quirk"] in expected:
            assert (e["expected"], e["reject_reason"]) == ("reject", expected[e["quirk"]])
        else:
            assert e["expected"] in ("ok", "duplicate") and e["reject_reason"] is None


def phash(data: bytes) -> int:
    bits = imagehash.phash(Image.open(io.BytesIO(data))).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def test_duplicate_groups(layouts, ground_truth, entries):
    groups = ground_truth["duplicate_groups"]
    assert [g["id"] for g in groups] == list(range(len(groups)))
    for g in groups:
        members = [entries[key] for key in g["members"]]
        assert [e["expected"] for e in members] == ["ok"] + ["duplicate"] * (len(members) - 1)
        assert all(e["duplicate_group"] == g["id"] for e in members)
        assert g["cross_source"] == (len({e["source"] for e in members}) > 1)
        assert g["conflicting_labels"] == (len({(e["source"], e["label"]) for e in members}) > 1)
        blobs = [layouts.data(e["source"], e["image_id"]) for e in members]
        if g["kind"] == "exact":
            assert g["transform"] == "identical" and len(set(blobs)) == 1 and g["match"] == "exact"
        else:
            distances = [(phash(b) ^ phash(blobs[0])).bit_count() for b in blobs[1:]]
            assert len(set(blobs)) == len(blobs) and max(distances) == g["phash_distance"]
            # the build's default search pairs them, by the hash kind that `match` names
            assert all(build_match(blobs[0], b)[1] == g["match"] for b in blobs[1:])
            assert g["match"] != "near" or g["phash_distance"] <= 8
    in_groups = {e["image_id"] for e in ground_truth["images"] if e["duplicate_group"] is not None}
    assert in_groups == {key.split("/", 1)[1] for g in groups for key in g["members"]}

    def kinds(**flags) -> set[str]:
        return {g["kind"] for g in groups if all(g[k] == v for k, v in flags.items())}

    assert kinds(cross_source=False, conflicting_labels=False) == {"exact", "near"}
    assert kinds(cross_source=False, conflicting_labels=True) == {"exact", "near"}
    assert kinds(cross_source=True) == {"exact", "near"}
    transforms = {g["transform"].split("_")[0] for g in groups}
    assert {"identical", "reencode", "resize", "crop", "brightness"} <= transforms
    # one copy per edit that web-scraped datasets carry, and every probe kind matches one
    assert set(EDITS) <= {g["transform"] for g in groups}
    assert {g["match"] for g in groups} >= {"exact", "near", "near:mirror", "near:crop92", "near:crop84",
                                            "near:crop76", "near:trim", "near:top85"}


def test_no_unplanned_near_duplicates(layouts, ground_truth, entries):
    """Brute force over every decodable image: only planted pairs are within 10 bits."""
    keys, hashes, undecodable = [], [], set()
    for source in SOURCES:
        held = {"imagenet": layouts.kaggle, "products10k": layouts.products_folder,
                "gldv2": layouts.gldv2_tars}[source]
        for image_id, data in held.items():
            try:
                hashes.append(phash(data))
                keys.append(f"{source}/{image_id}")
            except (OSError, Image.DecompressionBombError):
                undecodable.add(f"{source}/{image_id}")
    content_rejects = {"truncated", "empty", "not_an_image", "pixel_bomb"}
    assert undecodable == {k for k, e in entries.items() if e["quirk"] in content_rejects}

    codes = np.asarray(hashes, dtype=np.uint64)
    distances = np.bitwise_count(codes[:, None] ^ codes[None, :])
    # an image outside every group gets a group of its own
    groups = [entries.get(k, {}).get("duplicate_group") for k in keys]
    group = np.asarray([-1 - i if g is None else g for i, g in enumerate(groups)])
    planted = group[:, None] == group[None, :]
    near = (distances <= 10) & ~planted
    pairs = [(keys[i], keys[j], int(distances[i, j])) for i, j in zip(*np.nonzero(near)) if i < j]
    assert pairs == []
    assert len(keys) > 250
    # nor through the build's probe hashes (mirror, crops, trimmed, top 85%)
    probes = [probes_of(layouts.data(*key.split("/", 1))) for key in keys]
    for kind in sorted({k for p in probes for k in p}):
        has = np.array([kind in p for p in probes])
        values = np.array([p.get(kind, 0) for p in probes], dtype=np.uint64)
        targets = values if kind == "top85" else codes
        close = np.bitwise_count(values[:, None] ^ targets[None, :]) < UNRELATED_PROBE_MIN_DISTANCE
        close &= has[:, None] & ~planted & (has[None, :] if kind == "top85" else True)
        assert [(kind, keys[i], keys[j]) for i, j in zip(*np.nonzero(close))] == []


def test_counts_are_consistent(ground_truth):
    for source in SOURCES:
        mine = [e for e in ground_truth["images"] if e["source"] == source]
        outcomes = Counter(e["expected"] for e in mine)
        assert ground_truth["counts"][source] == {
            "listed": len(mine), "ok": outcomes["ok"], "duplicate": outcomes["duplicate"],
            "reject": outcomes["reject"]}
        per_class = Counter(e["label"] for e in mine if e["split"] == "train" and e["label"])
        classes = ground_truth["sources"][source]["classes"]
        assert {label: c["images"] for label, c in classes.items()} == dict(per_class)


def _file_digests(root: str) -> dict[str, str]:
    """A content digest of every file under root, by relative path."""
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in files_under(root).items()}


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    first = generate_sample(str(tmp_path / "a"), TINY)
    generate_sample(str(tmp_path / "b"), TINY)
    generate_sample(str(tmp_path / "c"), dataclasses.replace(TINY, seed=8))
    assert _file_digests(str(tmp_path / "a")) == _file_digests(str(tmp_path / "b"))
    with open(tmp_path / "a" / "ground_truth.json") as f:
        assert f.read() == json.dumps(first, sort_keys=True, indent=2) + "\n"
    assert first["config"]["seed"] == 7 and len(first["images"]) > 30

    def image_digests(root: str) -> set[str]:  # real images only: empty and HTML files never vary
        return {hashlib.sha256(data).hexdigest() for name, data in files_under(root).items()
                if name.endswith((".JPEG", ".jpg")) and len(data) > 1000}

    assert not image_digests(str(tmp_path / "a")) & image_digests(str(tmp_path / "c"))


def test_config_rejects_samples_too_small_to_plant_problems():
    with pytest.raises(ValueError, match="products_classes"):
        SampleConfig(products_classes=1)
