"""Gallery embeddings cached on disk, keyed by what decides them.

Key = sha256 of: the model's files (saved_model.pb and variables/), the
embedder's settings (input size, view), and the gallery's fingerprint (a
build's manifest.json digest, which pins every shard's sha256; or a folder's
listing with sizes and mtimes). A changed model or gallery gives another key,
so it is rebuilt; stale entries are left for the user to delete.

An entry is `<key>.npy` (float32 [n, dim]) plus `<key>.json` (the item
listing and provenance), both written to temporary names and renamed, the
sidecar last: an entry without its sidecar is ignored.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from unibed.dataplane import storage
from unibed.retrieval.gallery import GalleryItem, items_from_columns, items_to_columns

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "unibed", "retrieval")


def model_fingerprint(model_dir: str) -> str:
    """sha256 over saved_model.pb and every file under variables/ (names and bytes)."""
    digest = hashlib.sha256()
    paths = ["saved_model.pb"]
    variables = os.path.join(model_dir, "variables")
    for folder, dirs, files in os.walk(variables):
        dirs.sort()
        paths += sorted(os.path.relpath(os.path.join(folder, f), model_dir) for f in files)
    for rel in paths:
        digest.update(rel.encode("utf-8") + b"\0")
        with open(os.path.join(model_dir, rel), "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def cache_key(model_sha256: str, embed_settings: dict, gallery_fingerprint: dict) -> str:
    blob = json.dumps({"version": CACHE_VERSION, "model": model_sha256, "embed": embed_settings,
                       "gallery": gallery_fingerprint}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CachedEmbeddings:
    def __init__(self, vectors: np.ndarray, items: list[GalleryItem], key: str, hit: bool, seconds: float):
        self.vectors, self.items, self.key, self.hit, self.seconds = vectors, items, key, hit, seconds


def load_or_build(cache_dir: str, key: str, provenance: dict,
                  embed: Callable[[], Iterable[tuple[GalleryItem, np.ndarray]]]) -> CachedEmbeddings:
    """The entry for `key`, or `embed()`'s (item, vector) pairs stored under it."""
    start = time.perf_counter()
    npy, sidecar = (os.path.join(cache_dir, f"{key}{ext}") for ext in (".npy", ".json"))
    cached = _load(npy, sidecar, key)
    if cached is not None:
        vectors, items = cached
        return CachedEmbeddings(vectors, items, key, True, time.perf_counter() - start)
    items, rows = [], []
    for item, vector in embed():
        items.append(item)
        rows.append(vector)
    if not items:
        raise ValueError("the gallery has no images to index")
    vectors = np.stack(rows).astype(np.float32)
    storage.write_atomic(npy, _npy_bytes(vectors))
    meta = {"version": CACHE_VERSION, "key": key, "count": len(items), "dim": int(vectors.shape[1]),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "embed_seconds": round(time.perf_counter() - start, 3), **provenance,
            "items": items_to_columns(items)}
    storage.write_atomic(sidecar, json.dumps(meta).encode("utf-8"))  # last: it completes the entry
    return CachedEmbeddings(vectors, items, key, False, time.perf_counter() - start)


def _load(npy: str, sidecar: str, key: str):
    try:
        with open(sidecar, encoding="utf-8") as f:
            meta = json.load(f)
        vectors = np.load(npy)
    except (OSError, ValueError):
        return None  # absent or unreadable: rebuilt
    if meta.get("key") != key or vectors.shape != (meta.get("count"), meta.get("dim")):
        return None
    return vectors.astype(np.float32, copy=False), items_from_columns(meta["items"])


def _npy_bytes(vectors: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, vectors)
    return out.getvalue()


def pairs(items: Iterator[tuple[GalleryItem, object]], embed_images) -> Iterator[tuple[GalleryItem, np.ndarray]]:
    """(item, image) pairs -> (item, vector) pairs, batched by the embedder."""
    held: list[GalleryItem] = []

    def images():
        for item, image in items:
            held.append(item)
            yield image

    for i, vector in enumerate(embed_images(images())):
        yield held[i], vector
