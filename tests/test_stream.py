"""The shipped LR stream: every codec decodes to the frames the RUN stores, colour tags are honoured."""

import os
import subprocess
import sys

import av
import numpy as np
import pytest
import torch

from stdo.errors import StdoError
from stdo.metrics import psnr
from stdo.colour import frame_to_rgb, rgb_to_yuv420, yuv_to_rgb
from stdo.stream import StreamOptions, encode_stream
from stdo.video import open_video, read_video
from stdo.resample import downscale_bicubic


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()  # noqa: E731
    return float(psnr(t(a), t(b)).mean())


@pytest.fixture(scope="module")
def lr(bikes_frames) -> np.ndarray:
    return downscale_bicubic(bikes_frames, 2)  # 6 real frames, 80x48


@pytest.mark.parametrize("options, expected", [
    (StreamOptions(), ("h264", "High", "yuv420p", "bt709", "limited")),
    (StreamOptions(codec="hevc", crf=26), ("hevc", "Main", "yuv420p", "bt709", "limited")),
    (StreamOptions(codec="av1", crf=30, preset="10"), ("av1", "Main", "yuv420p", "bt709", "limited")),
    (StreamOptions(bitrate=150, gop=3), ("h264", "High", "yuv420p", "bt709", "limited")),
    (StreamOptions(lossless=True), ("h264", "High 4:4:4 Predictive", "gbrp", "rgb", "full")),
    (StreamOptions(codec="hevc", lossless=True), ("hevc", "Rext", "gbrp", "rgb", "full")),
])
def test_every_codec_is_tagged_and_decodes_the_same_way_twice(tmp_path, lr, options, expected):
    path = tmp_path / "lr.mp4"
    encode_stream(path, lr, 25.0, options)
    with open_video(path) as video:
        info = video.describe()
    assert (info["codec"], info["profile"], info["pix_fmt"], info["matrix"], info["range"]) == expected
    assert (info["width"], info["height"], info["frames"], info["bytes"]) == (80, 48, 6, path.stat().st_size)
    assert info["duration_s"] == pytest.approx(6 / 25) and info["bitrate_kbps"] > 0
    first, second = read_video(path)[0], read_video(path)[0]
    np.testing.assert_array_equal(first, second)  # what the RUN stores is what any later decode gives
    if options.lossless:
        np.testing.assert_array_equal(first, lr)
    else:
        assert 30 < _psnr(first, lr) < 60


def test_quality_falls_with_crf_and_bytes_with_it(tmp_path, lr):
    sizes, quality = [], []
    for crf in (12, 40):
        path = tmp_path / f"crf{crf}.mp4"
        encode_stream(path, lr, options=StreamOptions(crf=crf))
        sizes.append(path.stat().st_size)
        quality.append(_psnr(read_video(path)[0], lr))
    assert sizes[0] > 1.4 * sizes[1] and quality[0] > quality[1] + 5  # 6 tiny frames: headers weigh


def test_colour_matrix_round_trip_and_tags_are_honoured(tmp_path):
    """Flat saturated colours survive BT.709 limited encoding; read with the wrong matrix they would not."""
    colours = np.array([[200, 30, 30], [20, 180, 60], [40, 50, 220], [235, 235, 20]], np.uint8)
    frames = np.repeat(np.repeat(colours[:, None, None, :], 16, 1), 32, 2)  # 4 flat frames, 32x16
    for frame in frames:
        y, cb, cr = rgb_to_yuv420(frame)
        assert np.abs(yuv_to_rgb(y, cb, cr, "bt709", False).astype(int) - frame).max() <= 1
        assert np.abs(yuv_to_rgb(y, cb, cr, "bt601", False).astype(int) - frame).max() >= 8
    path = tmp_path / "flat.mp4"
    encode_stream(path, frames, options=StreamOptions(crf=1))
    decoded, _ = read_video(path)
    assert np.abs(decoded[:, 4:-4, 4:-4].astype(int) - frames[:, 4:-4, 4:-4]).max() <= 2


def test_full_range_jpeg_formats_are_read_as_full_range():
    rgb = np.full((16, 16, 3), (180, 90, 40), np.uint8)
    y, cb, cr = rgb_to_yuv420(rgb, "bt601", full_range=True)
    frame = av.VideoFrame(16, 16, "yuvj420p")
    for plane, data in zip(frame.planes, (y, cb, cr)):
        padded = np.zeros((plane.height, plane.line_size), np.uint8)
        padded[:, : data.shape[1]] = data
        plane.update(padded)
    assert np.abs(frame_to_rgb(frame).astype(int) - rgb).max() <= 1  # untagged SD, JPEG range: BT.601 full


def test_odd_sizes_are_refused_for_4_2_0():
    with pytest.raises(StdoError, match="sizes must be even"):
        rgb_to_yuv420(np.zeros((15, 16, 3), np.uint8))


@pytest.mark.parametrize("options, message", [
    (StreamOptions(codec="vp8"), "unknown"),
    (StreamOptions(crf=0), "outside 1..51 for h264: give a CRF in that range, or `lossless`"),
    (StreamOptions(codec="av1", crf=0), "outside 1..63"),
    (StreamOptions(lossless=True, crf=10), "cannot be combined"),
    (StreamOptions(lossless=True, bitrate=100), "cannot be combined"),
    (StreamOptions(crf=20, bitrate=100), "exclusive"),
    (StreamOptions(bitrate=10**9), "outside 1..500000"),
    (StreamOptions(codec="av1", lossless=True), "not available for av1"),
    (StreamOptions(codec="av1", preset="medium"), "not a av1 preset"),
    (StreamOptions(gop=0), "below 1"),
])
def test_bad_stream_options(options, message):
    with pytest.raises(StdoError, match=message):
        options.check()


def test_hevc_of_frames_smaller_than_a_ctu_does_not_crash_the_process(tmp_path):
    """x265's CU-tree corrupted the heap on frames under 64 pixels (carphone at x4, 44x36: about half the runs
    aborted); the encoding runs in a child process, four times, so a crash fails the test instead of the session."""
    script = (
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from stdo.clip import Cut, load_clip\n"
        "from stdo.clips import clip_path\n"
        "from stdo.stream import StreamOptions, encode_stream\n"
        "from stdo.video import read_video\n"
        "lr = load_clip(clip_path('carphone'), 4, Cut(frames=30)).lr\n"
        "for crf in (27, 31, 35):\n"
        f"    path = Path({str(tmp_path)!r}) / f'{{crf}}.mp4'\n"
        "    encode_stream(path, list(lr), options=StreamOptions(codec='hevc', crf=crf))\n"
        "    assert len(read_video(path)[0]) == 30\n")
    for _ in range(4):
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-500:]


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="no POSIX scheduling calls on this platform")
def test_an_av1_encode_leaves_the_process_scheduled_as_it_was(tmp_path, lr):
    """SVT-AV1 makes the thread that opens it real-time (SCHED_FIFO 99) when it can, as root; a process that kept
    it would pass it to everything it starts (a browser under test spinning at real-time priority starved the
    test worker of its own timeout). Without root it cannot, and this holds trivially."""
    before = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    encode_stream(tmp_path / "lr.mp4", lr, 25.0, StreamOptions(codec="av1", crf=30, preset="12"))
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
    child = subprocess.run([sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"], capture_output=True,
                           text=True, check=True)
    assert int(child.stdout) == before[0]
