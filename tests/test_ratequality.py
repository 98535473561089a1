"""The HR-streaming baseline: points on the CRF ladder, and the cheapest CRF reaching a target PSNR."""

import pytest

from stdo.ratequality import hr_stream_at_psnr, hr_stream_point
from stdo.stream import StreamOptions


def test_cheapest_crf_reaching_a_target(bikes_frames):
    frames = lambda: iter(bikes_frames)  # noqa: E731 - 6 real frames, 160x96
    ladder = {crf: hr_stream_point(frames, 25.0, StreamOptions(crf=crf), shave=2) for crf in (20, 30, 40)}
    assert ladder[20].bytes > ladder[30].bytes > ladder[40].bytes
    assert ladder[20].psnr > ladder[30].psnr > ladder[40].psnr and ladder[20].psnr_y != ladder[20].psnr
    target = ladder[30].psnr
    point, tried = hr_stream_at_psnr(frames, 25.0, target, shave=2)
    assert point.psnr >= target and point.crf >= 30
    above = [p for p in tried if p.crf == point.crf + 1]
    assert not above or above[0].psnr < target  # one CRF more would miss the target
    assert len(tried) <= 8  # bisection, not a sweep of 51 encodes


def test_an_unreachable_target_returns_the_best_crf(bikes_frames):
    point, tried = hr_stream_at_psnr(lambda: iter(bikes_frames), 25.0, 99.0, shave=2)
    assert point.crf == 1 and point.psnr < 99 and len(tried) == 1


def test_bytes_at_a_psnr_between_two_crfs_are_interpolated_in_log_bytes():
    from stdo.ratequality import RatePoint, bytes_at_psnr

    points = [RatePoint(42, 90_000, 29.4, 31.0, 0.9), RatePoint(43, 40_000, 28.4, 30.0, 0.9)]
    assert bytes_at_psnr(points, 28.9) == pytest.approx(60_000)  # the geometric mean halfway
    assert bytes_at_psnr(points, 29.4) == pytest.approx(90_000)
    assert bytes_at_psnr(points, 29.5) is None and bytes_at_psnr(points, 28.0) is None
