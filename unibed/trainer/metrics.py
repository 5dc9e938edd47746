"""Retrieval metric and exact k-NN, in numpy only (no TensorFlow).

mP@k (REFERENCE section 5; the competition uses k = 5):

    mP@k = (1/Q) sum_q (1 / min(n_q, k)) sum_{j=1..min(n_q, k)} rel_q(j)

n_q = index images sharing q's label; rel_q(j) = 1 when the j-th retrieved
image shares it. Only the first min(n_q, k) ranks count: a query with
n_q = 2 scores 1/2 for ranks [hit, miss, hit], not 1.

As Google's baseline scores it, a hit repeated in a query's list (the same
index image twice, when the index lists a file twice) counts once, and n_q
counts distinct index images: pass the retrieved and index image ids.

Queries with n_q = 0 are excluded from the mean (and counted by callers, see
`precision_at_k` / unibed/trainer/evaluate.py). The competition guarantees n_q >= 1;
here such a query can only come from the data (a class with no index image),
and no embedding could score it: 1/min(0, k) is undefined, scoring it 0
would charge the model for the split, raising would make any evaluation on a
sampled index fragile. If no query has a match at all, the mean is undefined
and `mean_precision_at_k` raises.
"""

from __future__ import annotations

import numpy as np

# float64 elements per distance block (~32 MB): bounds memory whatever Q and N are
_BLOCK_ELEMENTS = 1 << 22


def relevant_counts(query_labels, index_labels) -> np.ndarray:
    """n_q for each query: how many index labels equal the query's label."""
    query_labels = np.asarray(query_labels).reshape(-1)
    values, counts = np.unique(np.asarray(index_labels).reshape(-1), return_counts=True)
    if len(values) == 0:
        return np.zeros(len(query_labels), np.int64)
    pos = np.searchsorted(values, query_labels).clip(max=len(values) - 1)
    return np.where(values[pos] == query_labels, counts[pos], 0)


def first_occurrences(retrieved_ids) -> np.ndarray:
    """bool [Q, k]: True where a row's id has not appeared earlier in that row."""
    ids = np.asarray(retrieved_ids)
    k = ids.shape[1]
    earlier = np.tril(np.ones((k, k), bool), -1)  # [j, i]: i < j
    return ~((ids[:, :, None] == ids[:, None, :]) & earlier[None]).any(axis=2)


def distinct_labels(index_labels, index_ids) -> np.ndarray:
    """The labels of distinct index images (an id listed twice counts once)."""
    labels, ids = np.asarray(index_labels).reshape(-1), np.asarray(index_ids).reshape(-1)
    _, first = np.unique(ids, return_index=True)
    return labels[np.sort(first)]


def precision_at_k(query_labels, retrieved_labels, index_labels, retrieved_ids=None,
                   index_ids=None) -> np.ndarray:
    """Per-query precision (float64 [Q]) with k = retrieved_labels.shape[1];
    NaN for queries without any relevant index image (n_q = 0). With image ids,
    a repeated hit counts once and n_q counts distinct index images."""
    query_labels = np.asarray(query_labels).reshape(-1)
    retrieved = np.asarray(retrieved_labels)
    if retrieved.ndim != 2 or retrieved.shape[0] != len(query_labels):
        raise ValueError(f"retrieved_labels must be [Q={len(query_labels)}, k], got shape {retrieved.shape}")
    k = retrieved.shape[1]
    if k < 1:
        raise ValueError("retrieved_labels has no columns (k = 0)")
    if index_ids is not None:
        index_labels = distinct_labels(index_labels, index_ids)
    n_q = relevant_counts(query_labels, index_labels)
    depth = np.minimum(n_q, k)  # ranks that count for each query
    hits = (retrieved == query_labels[:, None]) & (np.arange(k)[None, :] < depth[:, None])
    if retrieved_ids is not None:
        hits &= first_occurrences(retrieved_ids)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(depth > 0, hits.sum(axis=1) / depth, np.nan)


def mean_precision_at_k(query_labels, retrieved_labels, index_labels) -> float:
    """mP@k over the queries with at least one relevant index image (see module doc)."""
    per_query = precision_at_k(query_labels, retrieved_labels, index_labels)
    scored = per_query[~np.isnan(per_query)]
    if scored.size == 0:
        raise ValueError(
            f"none of the {per_query.size} queries has a relevant index image: mP@k is undefined"
        )
    return float(scored.mean())


def knn(queries, index, k: int, *, block_elements: int = _BLOCK_ELEMENTS) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest index rows of each query by Euclidean distance.

    Returns (distances float32 [Q, k], indices int64 [Q, k]), nearest first.
    Inputs are taken as float32; squared distances are computed in float64
    blocks (|q|^2 + |x|^2 - 2 q.x, exact to far below float32 resolution) and
    rounded to float32, and the order is (float32 distance, index): equal
    distances come out in index order, deterministically. Memory: one block of
    at most ~4M float64 distances, plus O(Q k); never Q x N.
    Raises ValueError for k < 1, k > N, mismatched or non-finite inputs.
    """
    q = _as_matrix(queries, "queries")
    x = _as_matrix(index, "index")
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"queries have dimension {q.shape[1]}, index has {x.shape[1]}")
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in [1, N={len(x)}], got {k}")
    nq = len(q)
    best_d = np.empty((nq, k), np.float32)
    best_i = np.empty((nq, k), np.int64)
    if nq == 0:
        return best_d, best_i
    index_block = max(k, min(len(x), block_elements // 64))
    query_block = max(1, block_elements // index_block)
    x_sq = np.concatenate([_sq_norms(x[i:i + index_block]) for i in range(0, len(x), index_block)])
    for q0 in range(0, nq, query_block):
        qb = q[q0:q0 + query_block].astype(np.float64)
        qb_sq = _sq_norms(qb)
        run_d = run_i = None
        for x0 in range(0, len(x), index_block):
            xb = x[x0:x0 + index_block].astype(np.float64)
            d2 = qb_sq[:, None] + x_sq[None, x0:x0 + len(xb)] - 2.0 * (qb @ xb.T)
            dist = np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)
            d, i = _smallest(dist, min(k, len(xb)))
            i += x0
            if run_d is None:
                run_d, run_i = d, i
            else:  # earlier blocks hold smaller indices: a stable sort keeps ties in index order
                d, i = np.concatenate([run_d, d], axis=1), np.concatenate([run_i, i], axis=1)
                order = np.argsort(d, axis=1, kind="stable")[:, :k]
                run_d, run_i = np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)
        best_d[q0:q0 + len(qb)], best_i[q0:q0 + len(qb)] = run_d, run_i
    return best_d, best_i


def _sq_norms(rows: np.ndarray) -> np.ndarray:
    rows = rows.astype(np.float64)  # a block at a time: never a float64 copy of the whole index
    return np.einsum("ij,ij->i", rows, rows)


def _smallest(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest of each row, ordered by (value, column); ties at the cut go to
    the lower columns (argpartition alone would pick among them arbitrarily)."""
    rows, n = dist.shape
    if k < n:
        kth = np.partition(dist, k - 1, axis=1)[:, k - 1:k]
        below = dist < kth
        need = k - below.sum(axis=1, keepdims=True)
        at_cut = dist == kth
        if (at_cut.sum(axis=1, keepdims=True) > need).any():  # surplus ties: keep the lowest columns
            at_cut &= np.cumsum(at_cut, axis=1) <= need
        take = below | at_cut
        cols = np.nonzero(take)[1].reshape(rows, k)  # row-major: each row's columns ascending
    else:
        cols = np.broadcast_to(np.arange(n), (rows, n)).copy()
    values = np.take_along_axis(dist, cols, 1)
    order = np.argsort(values, axis=1, kind="stable")
    return np.take_along_axis(values, order, 1), np.take_along_axis(cols, order, 1).astype(np.int64)


def _as_matrix(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [rows, dim], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return a
