"""mP@k against hand-computed cases, and exact k-NN against brute force (ties included).

mP@k = mean_q (1/min(n_q, k)) * sum_{j=1..min(n_q, k)} rel_q(j)   (REFERENCE section 5):
only the first min(n_q, k) ranks count.
"""

from __future__ import annotations

import numpy as np
import pytest

from unibed.trainer.metrics import knn, mean_precision_at_k, precision_at_k, relevant_counts

# index: label 1 x2, label 7 x6, label 3 x1, label 4 x1, label 5 x3  (N = 13)
INDEX = np.array([1, 1, 7, 7, 7, 7, 7, 7, 3, 4, 5, 5, 5])
CASES = [
    # (query label, retrieved labels at ranks 1..5, expected precision, arithmetic)
    (1, [1, 0, 1, 2, 3], 0.5),     # n_q=2 -> ranks 1..2 count: (1 + 0) / 2 = 0.5 (the hit at rank 3 is past min(n_q, 5))
    (7, [7, 7, 0, 0, 7], 0.6),     # n_q=6 -> ranks 1..5 count: (1 + 1 + 0 + 0 + 1) / 5 = 3/5
    (3, [0, 0, 3, 0, 0], 0.0),     # n_q=1 -> rank 1 only: 0 / 1 = 0 (the hit at rank 3 does not count)
    (4, [4, 0, 0, 0, 0], 1.0),     # n_q=1 -> rank 1 only: 1 / 1
    (5, [0, 5, 5, 5, 0], 2 / 3),   # n_q=3 -> ranks 1..3: (0 + 1 + 1) / 3 = 2/3
]


def test_hand_computed_precisions():
    q = np.array([c[0] for c in CASES])
    retrieved = np.array([c[1] for c in CASES])
    expected = np.array([c[2] for c in CASES])
    np.testing.assert_allclose(precision_at_k(q, retrieved, INDEX), expected)
    # (0.5 + 0.6 + 0 + 1 + 2/3) / 5 = 2.7666.../5 = 0.55333...
    assert mean_precision_at_k(q, retrieved, INDEX) == pytest.approx(0.5533333333)


def test_relevant_counts_of_absent_labels_are_zero():
    assert relevant_counts([7, 1, 99, -1, 0], INDEX).tolist() == [6, 2, 0, 0, 0]
    assert relevant_counts([3], []).tolist() == [0]


def test_queries_without_a_relevant_image_are_excluded():
    q = np.array([1, 99])  # 99: n_q = 0
    retrieved = np.array([[1, 1, 7, 7, 7], [1, 1, 7, 7, 7]])
    per_query = precision_at_k(q, retrieved, INDEX)
    assert per_query[0] == 1.0 and np.isnan(per_query[1])  # (1 + 1) / 2, and undefined
    assert mean_precision_at_k(q, retrieved, INDEX) == 1.0  # the mean of the scored query only
    with pytest.raises(ValueError, match="none of the 1 queries"):
        mean_precision_at_k([99], retrieved[:1], INDEX)


def test_k_is_the_width_of_the_retrieved_labels():
    # k = 1: precision@1 whatever n_q; n_q=6 for label 7
    assert mean_precision_at_k([7, 7], [[7], [1]], INDEX) == 0.5  # (1 + 0) / 2
    # k = 3 with n_q = 6: (1 + 0 + 1) / 3
    assert mean_precision_at_k([7], [[7, 1, 7]], INDEX) == pytest.approx(2 / 3)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\[Q=2, k\]"):
        precision_at_k([1, 7], [[1, 1, 1]], INDEX)
    with pytest.raises(ValueError, match="k = 0"):
        precision_at_k([1], np.zeros((1, 0)), INDEX)


def _brute_force(queries, index, k):
    """Order by (float32 distance, index) from float64 differences."""
    q = np.asarray(queries, np.float64)
    x = np.asarray(index, np.float64)
    dist = np.sqrt(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)).astype(np.float32)
    cols = np.arange(len(x))
    order = np.array([np.lexsort((cols, row))[:k] for row in dist]).reshape(len(q), k)
    return np.take_along_axis(dist, order, 1), order


@pytest.mark.parametrize("block_elements", [1 << 22, 640])  # one block / many query and index blocks
def test_knn_matches_brute_force(block_elements):
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(150, 16)).astype(np.float32)
    index = rng.normal(size=(900, 16)).astype(np.float32)
    d, i = knn(queries, index, 7, block_elements=block_elements)
    bd, bi = _brute_force(queries, index, 7)
    assert d.dtype == np.float32 and i.dtype == np.int64 and i.shape == (150, 7)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_allclose(d, bd, rtol=1e-6)
    assert (np.diff(d, axis=1) >= 0).all()


@pytest.mark.parametrize("block_elements", [1 << 22, 640, 64])
def test_knn_ties_go_to_the_lower_index(block_elements):
    # integer points on a 3x3 grid, each repeated many times: most distances tie exactly,
    # and ties straddle the index blocks when the blocks are small
    rng = np.random.default_rng(1)
    index = rng.integers(0, 3, size=(300, 2)).astype(np.float32)
    queries = rng.integers(-1, 4, size=(40, 2)).astype(np.float32)
    d, i = knn(queries, index, 9, block_elements=block_elements)
    bd, bi = _brute_force(queries, index, 9)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_array_equal(d, bd)
    # inside a run of equal distances the indices increase
    same = d[:, 1:] == d[:, :-1]
    assert same.any() and (i[:, 1:][same] > i[:, :-1][same]).all()


def test_knn_constant_index_returns_the_first_rows():
    d, i = knn(np.ones((3, 4)), np.zeros((50, 4)), 5, block_elements=64)
    assert i.tolist() == [[0, 1, 2, 3, 4]] * 3
    np.testing.assert_array_equal(d, np.full((3, 5), 2.0, np.float32))  # sqrt(4 * 1^2)


def test_knn_edge_cases():
    index = np.eye(4, dtype=np.float32)
    d, i = knn(np.zeros((0, 4)), index, 2)
    assert d.shape == (0, 2) and i.shape == (0, 2)
    d, i = knn(index[:1], index, 4)  # k = N: a full ordering
    assert i.tolist() == [[0, 1, 2, 3]] and d[0, 0] == 0.0
    np.testing.assert_allclose(d[0, 1:], np.sqrt(2))
    with pytest.raises(ValueError, match=r"k must be in \[1, N=4\], got 5"):
        knn(index, index, 5)
    with pytest.raises(ValueError, match="k must be"):
        knn(index, index, 0)
    with pytest.raises(ValueError, match="k must be"):
        knn(index, np.zeros((0, 4)), 1)
    with pytest.raises(ValueError, match="dimension 3"):
        knn(np.zeros((1, 3)), index, 1)
    with pytest.raises(ValueError, match="NaN"):
        knn(np.full((1, 4), np.nan), index, 1)
    with pytest.raises(ValueError, match="2-D"):
        knn(np.zeros(4), index, 1)
