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


def test_holding_keeps_a_patch_on_one_chunk_through_a_flicker_and_follows_a_real_change():
    from stdo.bundle import encode_model_map
    from stdo.cluster.partition import hold_chunks

    rng = np.random.default_rng(0)
    steady = np.zeros((60, 4, 6), np.uint8)
    steady[30:, :2] = 1  # half the patches really change chunk at frame 30
    noisy = steady.copy()
    flicker = (rng.random(steady.shape) < 0.2) & (np.arange(60)[:, None, None] % 4 == 1)
    noisy[flicker] = 1 - noisy[flicker]  # one-frame flips, at most two in any five frames
    held = hold_chunks(noisy, 5)
    assert (held != steady).mean() < 0.2 * (noisy != steady).mean()
    assert (held[33:, :2] == 1).all() and (held[:27, :2] == 0).all()  # the real change is kept, on time
    assert len(encode_model_map(held)) < 0.6 * len(encode_model_map(noisy))
    np.testing.assert_array_equal(hold_chunks(noisy, 1), noisy)
    three = np.array([0, 2, 1, 2, 0], np.uint8).reshape(5, 1, 1)  # ordered ids: the median is one of them
    assert hold_chunks(three, 3).ravel().tolist() == [0, 1, 2, 1, 0]
    with pytest.raises(StdoError, match="not an odd number"):
        hold_chunks(noisy, 2)


def test_smoothing_grows_regions_and_keeps_uniform_maps():
    from stdo.cluster.partition import smooth_chunks

    rng = np.random.default_rng(0)
    noisy = (rng.random((3, 10, 20)) < 0.3).astype(np.uint8)  # scattered chunk-1 patches
    smoothed = smooth_chunks(noisy, 2, 2)
    boundaries = lambda c: (np.diff(c, axis=1) != 0).sum() + (np.diff(c, axis=2) != 0).sum()  # noqa: E731
    assert boundaries(smoothed) < 0.5 * boundaries(noisy)
    np.testing.assert_array_equal(smooth_chunks(noisy, 0, 2), noisy)
    flat = np.ones((2, 5, 5), np.uint8)
    np.testing.assert_array_equal(smooth_chunks(flat, 3, 2), flat)
    block = np.zeros((1, 6, 6), np.uint8)
    block[0, :3, :3] = 1  # a 3x3 block is already a region: only its corner can flip
    assert smooth_chunks(block, 1, 2)[0, :2, :2].all()
