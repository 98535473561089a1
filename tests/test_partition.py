import numpy as np
import pytest

from stdo.cluster.partition import partition_kmeans, partition_quantile
from stdo.errors import StdoError


def test_quantile_gives_equal_counts_with_chunk0_hardest():
    scores = np.random.default_rng(0).normal(30, 5, (7, 5, 10)).astype(np.float32)
    chunks, thresholds = partition_quantile(scores, 4)
    counts = np.bincount(chunks.ravel())
    assert counts.sum() == 350 and counts.max() - counts.min() <= 1
    means = [scores[chunks == i].mean() for i in range(4)]
    assert means == sorted(means)
    for i, t in enumerate(thresholds):
        assert scores[chunks == i].max() <= t <= scores[chunks == i + 1].min()


def test_quantile_with_ties_is_still_equal_count_and_deterministic():
    scores = np.zeros((2, 3, 3), np.float32)
    a, _ = partition_quantile(scores, 3)
    b, _ = partition_quantile(scores, 3)
    np.testing.assert_array_equal(a, b)
    assert np.bincount(a.ravel()).tolist() == [6, 6, 6]


def test_kmeans_orders_chunks_by_difficulty_and_is_deterministic():
    rng = np.random.default_rng(1)
    centres = np.array([40.0, 20.0, 30.0])
    scores = (centres[rng.integers(0, 3, (6, 4, 5))] + rng.normal(0, 0.5, (6, 4, 5))).astype(np.float32)
    a, thresholds = partition_kmeans(scores, scores[..., None], 3, seed=7)
    b, _ = partition_kmeans(scores, scores[..., None], 3, seed=7)
    np.testing.assert_array_equal(a, b)
    means = [scores[a == i].mean() for i in range(3)]
    np.testing.assert_allclose(means, [20, 30, 40], atol=0.5)
    np.testing.assert_allclose(thresholds, [25, 35], atol=0.5)


def test_too_many_chunks():
    with pytest.raises(StdoError, match="more than the 4 patches"):
        partition_quantile(np.zeros((1, 2, 2)), 5)
    with pytest.raises(StdoError, match="only 1 distinct"):
        partition_kmeans(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 1)), 2)
