"""A Searcher: model + gallery + cached embeddings + index, answering queries."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from unibed.retrieval import cache
from unibed.retrieval.embedder import Embedder
from unibed.retrieval.gallery import Gallery, GalleryItem, open_gallery
from unibed.retrieval.images import BadImage, decode_untrusted, query_spec
from unibed.retrieval.index import make_index


@dataclass(frozen=True)
class Match:
    rank: int  # 1-based
    distance: float  # squared L2 of unit vectors = 2 - 2 cos, in [0, 4]
    item: GalleryItem


@dataclass
class QueryResult:
    name: str  # file name, upload name, or gallery id
    image: Image.Image | None  # the query as decoded (None when it could not be)
    matches: list[Match] = field(default_factory=list)
    error: str = ""
    label: int = -1  # known for queries taken from a build's split


class Searcher:
    def __init__(self, model_dir: str, gallery: str | Gallery, *, splits: tuple[str, ...] | None = None,
                 cache_dir: str = cache.DEFAULT_CACHE_DIR, backend: str = "exact",
                 image_size: int | None = None, batch_size: int = 32, max_pixels: int | None = None,
                 log=None):
        log = log or (lambda msg: print(msg, file=sys.stderr))
        self.gallery = open_gallery(gallery, splits) if isinstance(gallery, str) else gallery
        self.embedder = Embedder(model_dir, image_size=image_size, batch_size=batch_size)
        self.spec = query_spec(self.gallery.image_spec, max_pixels)
        model_sha = cache.model_fingerprint(model_dir)
        fingerprint = self.gallery.fingerprint()
        key = cache.cache_key(model_sha, self.embedder.settings(), fingerprint)
        provenance = {"model_dir": model_dir, "model_sha256": model_sha, "gallery": fingerprint,
                      "embed": self.embedder.settings()}
        self.cached = cache.load_or_build(
            cache_dir, key, provenance,
            lambda: cache.pairs(self.gallery.iter_images(), self.embedder.embed_images))
        self.items = self.cached.items
        self.by_id = {item.image_id: i for i, item in enumerate(self.items)}
        self.index = make_index(self.cached.vectors, backend)
        state = "cache hit" if self.cached.hit else "embedded"
        log(f"index: {len(self.items)} images x {self.cached.vectors.shape[1]} ({state}, "
            f"{self.cached.seconds:.1f}s, key {key[:12]}, backend {backend})")
        for rel, why in getattr(self.gallery, "skipped", []):
            log(f"  skipped {rel}: {why}")

    def embed_image(self, image: Image.Image) -> np.ndarray:
        return next(self.embedder.embed_images([image]))

    def search_vectors(self, vectors: np.ndarray, k: int, exclude: list[int] | None = None) -> list[list[Match]]:
        """Top-k per row; `exclude[i]` (a gallery position) is left out of row i's matches
        (a gallery image picked as a query is not its own match)."""
        extra = 1 if exclude is not None else 0
        distances, indices = self.index.search(vectors, k + extra)
        out = []
        for row, (ds, ix) in enumerate(zip(distances, indices)):
            pairs = [(float(d), int(i)) for d, i in zip(ds, ix)
                     if i >= 0 and (exclude is None or i != exclude[row])][:k]
            out.append([Match(rank + 1, d, self.items[i]) for rank, (d, i) in enumerate(pairs)])
        return out

    def search_bytes(self, data: bytes, name: str, k: int) -> QueryResult:
        """An untrusted image's matches; a bad image gives a result with `error` set."""
        try:
            image = decode_untrusted(data, self.spec)
        except BadImage as e:
            return QueryResult(name, None, error=str(e))
        return QueryResult(name, image, self.search_vectors(self.embed_image(image)[None], k)[0])

    def search_ids(self, image_ids: list[str], k: int) -> list[QueryResult]:
        """Gallery images as queries, with the vectors already in the index."""
        missing = [i for i in image_ids if i not in self.by_id]
        if missing:
            raise KeyError(f"not in the gallery: {', '.join(missing[:5])}")
        rows = [self.by_id[i] for i in image_ids]
        matches = self.search_vectors(self.cached.vectors[rows], k, exclude=rows)
        return [QueryResult(self.items[r].image_id, None, m, label=self.items[r].label)
                for r, m in zip(rows, matches)]

    def search_images(self, queries: list[tuple[str, Image.Image, int]], k: int) -> list[QueryResult]:
        """Decoded images (name, image, label or -1), embedded in batches."""
        vectors = np.stack(list(self.embedder.embed_images(image for _, image, _ in queries)))
        matches = self.search_vectors(vectors, k)
        return [QueryResult(name, image, m, label=label) for (name, image, label), m in zip(queries, matches)]

    def read_image(self, image_id: str) -> Image.Image:
        return self.gallery.read_image(self.items[self.by_id[image_id]])


def split_queries(build_location: str, split: str) -> list[tuple[GalleryItem, Image.Image]]:
    """The images of one split of a build, as labelled queries."""
    return list(open_gallery(build_location, (split,)).iter_images())


def top1_rate(results: list[QueryResult]) -> float:
    scored = [r for r in results if r.matches and r.label >= 0]
    return sum(r.matches[0].item.label == r.label for r in scored) / max(1, len(scored))


def precision_at(results: list[QueryResult], k: int = 5) -> float:
    """Per query, the fraction of its first k matches with its label; averaged."""
    scored = [r for r in results if r.matches and r.label >= 0]
    return sum(sum(m.item.label == r.label for m in r.matches[:k]) / min(k, len(r.matches))
               for r in scored) / max(1, len(scored))
