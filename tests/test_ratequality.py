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
