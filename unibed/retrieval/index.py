"""Nearest neighbours of L2-normalised embeddings.

Distances are squared Euclidean, which for unit vectors is 2 - 2 cos: one
matrix product gives them all. `ExactIndex` is brute force, vectorised and
chunked over the gallery so the score block stays ~64 MB whatever its size;
at 10^6 x 64 the matrix itself is 256 MB (benchmarks/bench_retrieval.py).
Results are ordered by distance, ties by gallery position, so they are
deterministic and equal to a full sort.

The approximate options for larger galleries, same interface, from faiss-cpu
(optional: import-guarded, asked for by name): `FaissHNSWIndex` (HNSW graph,
inner product: fastest queries, slowest build) and `FaissIVFIndex` (k-means
cells, a few probed per query: builds in seconds where HNSW takes minutes).
"""

from __future__ import annotations

import numpy as np

_BLOCK_SCORES = 16 << 20  # scores per block (float32: 64 MB)
BACKENDS = ("exact", "faiss-hnsw", "faiss-ivf")


class IndexError_(ValueError):
    """Vectors or queries that do not fit the index."""


def _check_vectors(vectors: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise IndexError_(f"{what} must be a 2-d array [n, dim], got shape {vectors.shape}")
    if dim is not None and vectors.shape[1] != dim:
        raise IndexError_(f"{what} have dimension {vectors.shape[1]}, the index has {dim}")
    if not np.all(np.isfinite(vectors)):
        raise IndexError_(f"{what} hold NaN or infinite values")
    return vectors


class ExactIndex:
    backend = "exact"

    def __init__(self, vectors: np.ndarray):
        self.vectors = _check_vectors(vectors, "gallery vectors")
        self.size, self.dim = self.vectors.shape

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances float32 [q, k'], indices int64 [q, k']) with k' = min(k, size)."""
        queries = _check_vectors(queries, "queries", self.dim)
        k = min(int(k), self.size)
        if k <= 0:
            raise IndexError_(f"k must be positive and the gallery non-empty (k={k}, size={self.size})")
        block = max(k, _BLOCK_SCORES // max(1, len(queries)))
        best_s = np.empty((len(queries), 0), np.float32)
        best_i = np.empty((len(queries), 0), np.int64)
        for start in range(0, self.size, block):
            scores = queries @ self.vectors[start:start + block].T  # cosines
            s, i = _top_k(scores, k)
            best_s, best_i = _merge(np.hstack([best_s, s]), np.hstack([best_i, i + start]), k)
        return np.maximum(2.0 - 2.0 * best_s, 0.0).astype(np.float32), best_i

    @property
    def nbytes(self) -> int:
        return self.vectors.nbytes


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest of each row, ties to the lower column. argpartition alone may pick
    any of several equal scores at the cut, so everything tied with the k-th is kept
    and the merge's stable sort decides."""
    q, n = scores.shape
    if k < n:
        kth = np.partition(scores, n - k, axis=1)[:, n - k:n - k + 1]
        rows, cols = np.nonzero(scores >= kth)  # row-major: columns ascending in each row
        counts = np.bincount(rows, minlength=q)
        pos = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
        vals = np.full((q, int(counts.max())), -np.inf, np.float32)  # padding sorts last
        kept = np.zeros(vals.shape, np.int64)
        vals[rows, pos] = scores[rows, cols]
        kept[rows, pos] = cols
        return _merge(vals, kept, k)
    cols = np.broadcast_to(np.arange(n, dtype=np.int64), scores.shape)
    return _merge(scores, cols, k)


def _merge(scores: np.ndarray, cols: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (score desc, column asc), first k."""
    order = np.lexsort((cols, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(cols, order, axis=1)


class FaissHNSWIndex:
    """Approximate: faiss IndexHNSWFlat on inner products (M links per node)."""

    backend = "faiss-hnsw"

    def __init__(self, vectors: np.ndarray, m: int = 32, ef_construction: int = 80, ef_search: int = 128):
        faiss = _faiss()
        self.vectors = _check_vectors(vectors, "gallery vectors")
        self.size, self.dim = self.vectors.shape
        self.index = faiss.IndexHNSWFlat(self.dim, m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.index.hnsw.efSearch = ef_search
        self.index.add(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = _check_vectors(queries, "queries", self.dim)
        k = min(int(k), self.size)
        if k <= 0:
            raise IndexError_(f"k must be positive and the gallery non-empty (k={k}, size={self.size})")
        if hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = max(self.index.hnsw.efSearch, k)
        scores, cols = self.index.search(queries, k)
        return np.maximum(2.0 - 2.0 * scores, 0.0).astype(np.float32), cols.astype(np.int64)

    @property
    def nbytes(self) -> int:
        return self.vectors.nbytes  # plus the graph: ~m * 2 * 4 bytes per vector


class FaissIVFIndex:
    """Approximate: faiss IndexIVFFlat on inner products, ~4 sqrt(n) cells, `nprobe` probed."""

    backend = "faiss-ivf"

    def __init__(self, vectors: np.ndarray, nprobe: int = 32, seed: int = 0):
        faiss = _faiss()
        self.vectors = _check_vectors(vectors, "gallery vectors")
        self.size, self.dim = self.vectors.shape
        nlist = max(1, min(self.size // 39, int(4 * np.sqrt(self.size))))  # faiss wants >= 39 per cell
        self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(seed).choice(self.size, min(self.size, 64 * nlist), replace=False)
        self.index.train(self.vectors[np.sort(sample)])
        self.index.add(self.vectors)
        self.index.nprobe = min(nprobe, nlist)

    search = FaissHNSWIndex.search  # the same call; faiss pads missing neighbours with -1

    @property
    def nbytes(self) -> int:
        return self.vectors.nbytes


def _faiss():
    try:
        import faiss
    except ImportError:
        raise IndexError_("the faiss-hnsw backend needs faiss-cpu (pip install faiss-cpu); "
                          "the exact backend needs nothing extra") from None
    return faiss


def faiss_available() -> bool:
    try:
        _faiss()
    except IndexError_:
        return False
    return True


def make_index(vectors: np.ndarray, backend: str = "exact"):
    if backend == "exact":
        return ExactIndex(vectors)
    if backend == "faiss-hnsw":
        return FaissHNSWIndex(vectors)
    if backend == "faiss-ivf":
        return FaissIVFIndex(vectors)
    raise IndexError_(f"unknown index backend {backend!r}; expected one of {', '.join(BACKENDS)}")
