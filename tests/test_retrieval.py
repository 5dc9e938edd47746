"""The retrieval rig's plumbing: index, cache, gallery, search CLI, bad queries.

The model here is a stand-in with the trainer's export contract (a fixed
random projection of a 16x16 thumbnail); the trained model's retrieval
quality is tests/test_trained_run.py's subject.
"""

from __future__ import annotations

import io
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from unibed.dataplane.records.codec import decode_example
from unibed.dataplane.records.framing import iter_records
from unibed.retrieval import index as index_module
from unibed.retrieval.index import ExactIndex, IndexError_, faiss_available, make_index
from unibed.schemas import features
from unibed.schemas.manifest import Manifest


def export_projection_model(path: str, seed: int = 0) -> str:
    """A SavedModel with the export contract: uint8 [B, H, W, 3] -> {"embedding": [B, 64]},
    L2-normalised - a fixed random projection of the centred 16x16 image."""
    import tensorflow as tf

    class Projection(tf.Module):
        def __init__(self):
            super().__init__()
            w = np.random.default_rng(seed).standard_normal((16 * 16 * 3, 64)).astype(np.float32)
            self.w = tf.Variable(w)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
        def serve(self, images):
            x = tf.image.resize(tf.cast(images, tf.float32) / 255.0, [16, 16], antialias=True)
            x = tf.reshape(x, [-1, 16 * 16 * 3])
            x = x - tf.reduce_mean(x, axis=1, keepdims=True)
            return {"embedding": tf.math.l2_normalize(x @ self.w + 1e-3, axis=1)}

    module = Projection()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def stored_images(build_dir: str, split: str, n: int | None = None) -> list[tuple[str, int, bytes]]:
    """(image id, label, stored JPEG bytes) of a build's split, read with the TF-free codec."""
    with open(os.path.join(build_dir, "manifest.json")) as f:
        manifest = Manifest.from_json(f.read())
    out = []
    for shard in manifest.splits[split].shards:
        with open(os.path.join(build_dir, shard.path), "rb") as f:
            for record in iter_records(f):
                v = decode_example(record)
                out.append((v[features.IMAGE_ID].decode(), v[features.LABEL], v[features.ENCODED]))
    return out[:n]


@pytest.fixture(scope="session")
def projection_model(tmp_path_factory) -> str:
    return export_projection_model(str(tmp_path_factory.mktemp("models") / "projection"), seed=0)


# --- index -----------------------------------------------------------------

def _unit(rng, n, d=64):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _normalise(v):
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _brute_force(gallery, queries, k):
    """Every distance, full stable sort: ties to the lower gallery position."""
    d = np.maximum(2.0 - 2.0 * (queries @ gallery.T), 0.0)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


@pytest.fixture
def small_blocks(monkeypatch):
    """Force many gallery blocks so the merge across blocks is exercised."""
    monkeypatch.setattr(index_module, "_BLOCK_SCORES", 997)


def test_exact_index_equals_brute_force(small_blocks):
    rng = np.random.default_rng(1)
    gallery, queries = _unit(rng, 3000), _unit(rng, 37)
    distances, indices = ExactIndex(gallery).search(queries, 10)
    want_d, want_i = _brute_force(gallery, queries, 10)
    assert indices.shape == (37, 10) and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, want_i)
    np.testing.assert_allclose(distances, want_d, atol=1e-5)
    assert np.all(np.diff(distances, axis=1) >= 0)


def test_exact_index_ties_go_to_the_lower_position(small_blocks):
    # unit vectors with four entries of +-0.5: every dot product is an exact multiple of
    # 0.25, so distances tie massively and exactly, across blocks
    rng = np.random.default_rng(2)
    gallery = np.zeros((600, 64), np.float32)
    for row in gallery:
        row[rng.choice(8, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    queries = gallery[rng.choice(600, 25)]
    distances, indices = ExactIndex(gallery).search(queries, 40)
    want_d, want_i = _brute_force(gallery, queries, 40)
    np.testing.assert_array_equal(indices, want_i)
    np.testing.assert_array_equal(distances, want_d)
    assert len(np.unique(want_d)) < 10  # the case really is full of ties


def test_exact_index_edge_cases():
    rng = np.random.default_rng(3)
    gallery = _unit(rng, 5)
    distances, indices = ExactIndex(gallery).search(gallery[:2], 50)  # k > size: everything
    assert indices.shape == (2, 5) and list(indices[:, 0]) == [0, 1]
    assert distances[0, 0] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(IndexError_, match="dimension 32"):
        ExactIndex(gallery).search(_unit(rng, 1, 32), 3)
    with pytest.raises(IndexError_, match="NaN"):
        ExactIndex(np.full((3, 64), np.nan, np.float32))
    with pytest.raises(IndexError_, match="unknown index backend"):
        make_index(gallery, "annoy")


@pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed (optional ANN backend)")
@pytest.mark.parametrize("backend", ["faiss-hnsw", "faiss-ivf"])
def test_faiss_recall_against_exact(backend):
    # embeddings cluster by class, and a query has near neighbours: 100 clusters, queries
    # close to gallery vectors
    rng = np.random.default_rng(4)
    centres = _unit(rng, 100)
    gallery = _normalise(centres[rng.integers(0, 100, 5000)] + 0.15 * rng.standard_normal((5000, 64)))
    queries = _normalise(gallery[:50] + 0.05 * rng.standard_normal((50, 64)))
    _, exact = ExactIndex(gallery).search(queries, 10)
    _, approx = make_index(gallery, backend).search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall > 0.9


def test_missing_faiss_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(IndexError_, match="faiss-cpu"):
        make_index(_unit(np.random.default_rng(5), 10), "faiss-hnsw")


# --- images --------------------------------------------------------------------

def test_untrusted_images_are_refused_with_the_builds_reasons():
    from unibed.retrieval.images import BadImage, decode_untrusted, query_spec

    spec = query_spec(max_pixels=1_000_000)
    png = io.BytesIO()
    Image.new("L", (2000, 1000)).save(png, "PNG")  # 2 Mpx in a few KB: over our limit
    cases = {b"": "empty file", b"hello, not an image": "not an image", png.getvalue(): "too many pixels"}
    jpeg = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), np.uint8)
    Image.fromarray(noise).save(jpeg, "JPEG")
    cases[jpeg.getvalue()[:len(jpeg.getvalue()) // 2]] = "truncated"  # header intact, data cut
    for data, reason in cases.items():
        with pytest.raises(BadImage, match=reason):
            decode_untrusted(data, spec)
    assert decode_untrusted(jpeg.getvalue(), spec).size == (400, 300)


# --- cache and galleries --------------------------------------------------------------

def _folder_gallery(root, build_dir, n=12):
    """A folder gallery of class sub-folders holding stored images of the build."""
    for image_id, label, jpeg in stored_images(build_dir, "train", n):
        path = root / f"class{label}" / (image_id.replace("/", "_") + ".jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg)
    return root


def test_cache_hits_and_rebuilds_on_model_or_gallery_change(sample_build, projection_model, tmp_path):
    from unibed.retrieval.search import Searcher

    cache_dir = str(tmp_path / "cache")
    folder = _folder_gallery(tmp_path / "gallery", sample_build.output)
    (folder / "notes.txt").write_text("not an image, not listed")
    logs = []

    def searcher(model, gallery=str(folder), **kw):
        return Searcher(model, gallery, cache_dir=cache_dir, log=logs.append, **kw)

    first = searcher(projection_model)
    assert not first.cached.hit and len(first.items) == 12
    assert {i.label_name for i in first.items} == {p.name for p in folder.iterdir() if p.is_dir()}
    again = searcher(projection_model)
    assert again.cached.hit and again.cached.key == first.cached.key
    np.testing.assert_array_equal(again.cached.vectors, first.cached.vectors)
    assert [i.image_id for i in again.items] == [i.image_id for i in first.items]

    # another model (other weights, same graph): new key, new vectors
    other_model = export_projection_model(str(tmp_path / "other-model"), seed=1)
    other = searcher(other_model)
    assert not other.cached.hit and other.cached.key != first.cached.key
    assert not np.allclose(other.cached.vectors, first.cached.vectors)

    # the gallery changes: a new image, then an edited one (size and mtime change)
    src = next(folder.glob("class*/*.jpg"))
    shutil.copy(src, src.parent / "copy.jpg")
    added = searcher(projection_model)
    assert not added.cached.hit and len(added.items) == 13
    (src.parent / "copy.jpg").write_bytes(src.read_bytes() + b"\0")
    assert not searcher(projection_model).cached.hit
    assert searcher(projection_model).cached.hit
    assert any("cache hit" in line for line in logs)

    # a build gallery: keyed by its manifest and splits
    train = searcher(projection_model, sample_build.output, splits=("train",))
    assert not train.cached.hit
    assert {i.split for i in train.items} == {"train"}
    assert len(train.items) == sample_build.manifest.splits["train"].num_records
    assert searcher(projection_model, sample_build.output, splits=("train",)).cached.hit
    assert not searcher(projection_model, sample_build.output).cached.hit  # both splits: another key


def test_bad_gallery_items_are_skipped_with_reasons(sample_build, projection_model, tmp_path):
    from unibed.retrieval.search import Searcher

    folder = _folder_gallery(tmp_path / "gallery", sample_build.output, n=3)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    logs = []
    s = Searcher(projection_model, str(folder), cache_dir=str(tmp_path / "cache"), log=logs.append)
    assert len(s.items) == 3
    assert any("skipped broken.jpg" in line and "not an image" in line for line in logs)


# --- the search command --------------------------------------------------------------

def _search(argv, capsys):
    from unibed.cli.search import main

    code = main(["search", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_search_cli_on_the_sample_build_writes_report_and_contact_sheet(
        sample_build, projection_model, tmp_path, capsys):
    queries = tmp_path / "queries"
    queries.mkdir()
    # in the order the folder is searched: by file name
    picked = sorted(stored_images(sample_build.output, "train")[::40][:4], key=lambda p: p[0].replace("/", "_"))
    for image_id, _, jpeg in picked:
        (queries / (image_id.replace("/", "_") + ".jpg")).write_bytes(jpeg)
    out = tmp_path / "report"
    code, stdout, stderr = _search(
        [str(queries), "--model", projection_model, "--gallery", sample_build.output,
         "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "-k", "7"], capsys)
    assert code == 0, stderr
    blocks = stdout.split("query ")[1:]
    assert len(blocks) == len(picked)
    for (image_id, _, _), block in zip(picked, blocks):
        rows = re.findall(r"^\s+(\d+)\s+d=([\d.]+)\s+(.+) \((\d+)\)\s+(\w+)\s+(\S+)", block, re.MULTILINE)
        assert [int(r[0]) for r in rows] == list(range(1, 8))
        # a gallery image finds itself first: the query went through the build's own
        # preprocessing, which stores a fitting JPEG as is, so the pixels are identical
        assert rows[0][5] == image_id and float(rows[0][1]) < 1e-4
        assert [float(r[1]) for r in rows] == sorted(float(r[1]) for r in rows)
    html = (out / "report.html").read_text()
    assert html.count("data:image/jpeg;base64,") == len(picked) * 8  # query + 7 matches each
    assert all(image_id in html for image_id, _, _ in picked)
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.format == "PNG" and sheet.height >= 4 * 128 and sheet.width >= 6 * 128
    # the first query's first match tile is not blank
    assert np.asarray(sheet.convert("L"))[6:134, 140:268].std() > 5


def test_search_cli_labelled_split_queries(sample_build, projection_model, tmp_path, capsys):
    code, stdout, stderr = _search(
        ["--query-split", "validation", "--gallery-split", "train", "--model", projection_model,
         "--gallery", sample_build.output, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "r")],
        capsys)
    assert code == 0, stderr
    n = sample_build.manifest.splits["validation"].num_records
    m = re.search(rf"{n} validation queries: top-1 same label ([\d.]+), P@5 ([\d.]+)", stdout)
    assert m, stdout[-500:]
    matched = set(re.findall(r"^\s+\d+\s+d=\S+\s+.+\s(\S+)$", stdout, re.MULTILINE))
    validation = {image_id for image_id, _, _ in stored_images(sample_build.output, "validation")}
    assert matched and not matched & validation  # the gallery is the train split only
    assert 0.0 <= float(m.group(1)) <= 1.0


def test_search_cli_bad_queries_are_reported_and_the_rest_searched(
        sample_build, projection_model, tmp_path, capsys):
    good = tmp_path / "good.jpg"
    good.write_bytes(stored_images(sample_build.output, "validation", 1)[0][2])
    text = tmp_path / "notes.jpg"
    text.write_text("plain text with a .jpg name")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    code, stdout, stderr = _search(
        [str(good), str(text), str(empty), str(tmp_path / "absent.jpg"), "--model", projection_model,
         "--gallery", sample_build.output, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "r")],
        capsys)
    assert code == 1
    assert "3 of 4 queries could not be searched" in stderr
    assert f"query {text}\n  error: not an image" in stdout
    assert f"query {empty}\n  error: empty file" in stdout
    assert "absent.jpg\n  error: cannot read: No such file" in stdout
    assert re.search(rf"query {good}\n\s+1\s+d=", stdout)
    assert "not an image" in (tmp_path / "r" / "report.html").read_text()


def test_search_cli_bad_model_gallery_or_arguments(sample_build, projection_model, tmp_path, capsys):
    common = ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "r")]
    query = str(tmp_path / "q.jpg")
    code, _, err = _search([query, "--model", str(tmp_path), "--gallery", sample_build.output, *common], capsys)
    assert code == 2 and "no saved_model.pb" in err
    code, _, err = _search([query, "--model", projection_model, "--gallery", str(tmp_path / "nope"), *common],
                           capsys)
    assert code == 2 and "not a folder" in err
    code, _, err = _search(["--model", projection_model, "--gallery", sample_build.output, *common], capsys)
    assert code == 2 and "give query images" in err
    code, _, err = _search([query, "--model", projection_model, "--gallery", sample_build.output,
                            "--backend", "faiss-hnsw", *common], capsys)
    if not faiss_available():
        assert code == 2 and "faiss-cpu" in err
