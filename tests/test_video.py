from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from matlab_imresize import imresize
from stdo.errors import StdoError
from stdo.metrics import psnr
from stdo.stream import StreamOptions, encode_stream
from stdo.clip import Crop, Cut, load_clip
from stdo.resample import downscale_bicubic, upscale_bicubic
from stdo.video import open_video, read_video


def _save_frames(folder: Path, frames: np.ndarray, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names):
        Image.fromarray(frame).save(folder / name)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()  # noqa: E731
    return float(psnr(t(a), t(b)).mean())


def test_read_video_range_and_crop(bikes):
    with open_video(bikes) as video:
        assert (video.info.width, video.info.height, video.info.frames, video.info.fps) == (640, 272, 250, 25.0)
    all_frames, _ = read_video(bikes, count=8)
    part, _ = read_video(bikes, start=5, count=3, box=(10, 20, 64, 32))
    assert part.shape == (3, 32, 64, 3) and part.dtype == np.uint8
    np.testing.assert_array_equal(part, all_frames[5:8, 20:52, 10:74])


def test_a_reader_opened_once_gives_info_frames_and_the_count_of_an_undeclared_stream(bikes, tmp_path):
    import av

    with open_video(bikes) as reader:
        assert (reader.info.width, reader.info.height, reader.info.frames, reader.info.fps) == (640, 272, 250, 25.0)
        first = reader.read(0, 4)
        np.testing.assert_array_equal(reader.read(2, 2, box=(8, 4, 32, 16)), first[2:4, 4:20, 8:40])  # decoded again
    raw = tmp_path / "clip.h264"  # an elementary stream: no container that declares the length
    with av.open(str(raw), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(7):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with open_video(raw) as reader:
        assert reader.info.frames == 0 and reader.count() == 7
        frames = reader.read(1, 3, allocate=lambda name, shape: np.zeros(shape, np.uint8))  # after counting
        assert frames.shape == (3, 48, 64, 3) and abs(int(frames[2].mean()) - 90) <= 3


def test_clip_is_cropped_to_a_multiple_of_the_scale(bikes):
    clip = load_clip(bikes, 4, Cut(frames=2, crop=Crop.parse("101x77+3+5")), stream=StreamOptions(lossless=True))
    assert clip.hr.shape == (2, 76, 100, 3) and clip.lr.shape == (2, 19, 25, 3)
    assert clip.lr_origin == "bicubic" and clip.fps == 25.0
    clip = load_clip(bikes, 4, Cut(frames=2, crop=Crop.parse("101x77+3+5")))  # default 4:2:0 stream: even LR sizes
    assert clip.hr.shape == (2, 72, 96, 3) and clip.lr.shape == (2, 18, 24, 3)


def test_frame_folder_is_read_in_numeric_order(tmp_path, bikes_frames):
    _save_frames(tmp_path, bikes_frames[:3], ["frame10.png", "frame2.png", "frame1.png"])
    clip = load_clip(tmp_path, scale=2)
    np.testing.assert_array_equal(clip.hr[0], bikes_frames[2])  # frame1
    np.testing.assert_array_equal(clip.hr[1], bikes_frames[1])  # frame2
    np.testing.assert_array_equal(clip.hr[2], bikes_frames[0])  # frame10


@pytest.mark.parametrize("lr_name", ["{i:05d}x2.png", "{i:05d}_x2.png"])
def test_vsd4k_layout_uses_its_own_lr_frames(tmp_path, bikes_frames, lr_name):
    lr = downscale_bicubic(bikes_frames, 2) // 2  # visibly not what stdo would synthesize
    _save_frames(tmp_path / "DIV2K_train_HR", bikes_frames, [f"{i:05d}.png" for i in range(1, 7)])
    _save_frames(tmp_path / "DIV2K_train_LR_bicubic" / "X2", lr, [lr_name.format(i=i) for i in range(1, 7)])
    clip = load_clip(tmp_path, 2, Cut(start=1, frames=4))
    assert clip.lr_origin == "given"
    np.testing.assert_array_equal(clip.hr, bikes_frames[1:5])
    np.testing.assert_array_equal(clip.lr, lr[1:5])


def test_bicubic_lr_is_close_to_matlab_imresize(bunny):
    frame, _ = read_video(bunny, start=30, count=1)  # a real 1280x720 frame
    for scale in (2, 4):
        ref = imresize(frame[0], 1 / scale)
        got = downscale_bicubic(frame, scale)[0]
        diff = np.abs(ref.astype(int) - got)
        assert _psnr(ref[None], got[None]) > 60  # measured 72.8 dB at x2, 64.6 dB at x4
        assert diff[4:-4, 4:-4].max() <= 1  # the interior agrees to rounding; borders pad differently
        up = upscale_bicubic(got[None], scale)[0].permute(1, 2, 0).numpy()
        up_diff = np.abs(imresize(got, scale).astype(float) - up)
        assert up_diff.max() <= 2 and up_diff[8:-8, 8:-8].max() <= 1  # enlarging: the same a = -0.5 kernel


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscaling_in_stripes_equals_whole_frames(scale):
    frames = np.random.default_rng(scale).integers(0, 256, (2, 30 * scale, 17 * scale, 3), dtype=np.uint8)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    whole = torch.nn.functional.interpolate(x, size=(30, 17), mode="bicubic", antialias=True, align_corners=False)
    whole = whole.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for rows in (1, 7, 64):
        np.testing.assert_array_equal(downscale_bicubic(frames, scale, stripe_rows=rows), whole)


def test_given_lr_video(tmp_path, bikes):
    hr, _ = read_video(bikes, count=4)
    lr_path = tmp_path / "lr.mp4"
    encode_stream(lr_path, downscale_bicubic(hr, 2), options=StreamOptions(lossless=True))
    clip = load_clip(bikes, 2, Cut(frames=4), lr_source=lr_path)  # cut from bikes: re-encoded by the stream
    assert clip.lr.shape == (4, 136, 320, 3) and clip.lr_origin == "given" and clip.lr_video is None
    np.testing.assert_array_equal(clip.lr, downscale_bicubic(hr, 2))
    hr_path = tmp_path / "hr.mp4"
    encode_stream(hr_path, hr, options=StreamOptions(lossless=True))
    clip = load_clip(hr_path, scale=2, lr_source=lr_path)  # used whole: its bitstream is kept as it is
    assert clip.lr_video == lr_path
    with pytest.raises(StdoError, match="shipped as it is: drop `codec`"):
        load_clip(hr_path, scale=2, lr_source=lr_path, stream=StreamOptions(crf=30))


# ---------------------------------------------------------------------------- bad input


def test_missing_corrupt_and_truncated_videos(tmp_path, bikes, bikes_frames):
    with pytest.raises(StdoError, match="does not exist"):
        load_clip(tmp_path / "nope.mp4", 4)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(StdoError, match="not a video FFmpeg can read"):
        load_clip(junk, 4)
    cut = tmp_path / "cut.mp4"  # bikes.mp4 keeps its index at the end: cut short, it cannot be opened
    cut.write_bytes(bikes.read_bytes()[:300_000])
    with pytest.raises(StdoError, match="check the file is complete"):
        load_clip(cut, 4)
    streamable = tmp_path / "fast.mp4"  # index first: opens, then runs out of frames
    noise = np.random.default_rng(1).integers(0, 256, (30, 64, 64, 3), dtype=np.uint8)
    encode_stream(streamable, noise, options=StreamOptions(crf=10))
    half = tmp_path / "half.mp4"
    half.write_bytes(streamable.read_bytes()[: streamable.stat().st_size // 2])
    with pytest.raises(StdoError, match="truncated"):
        load_clip(half, 2)


def test_empty_folder_and_unreadable_frames(tmp_path):
    with pytest.raises(StdoError, match="no PNG or JPG frames"):
        load_clip(tmp_path, 2)
    (tmp_path / "1.png").write_bytes(b"not a png")
    with pytest.raises(StdoError, match="not a readable image"):
        load_clip(tmp_path, 2)


def test_hr_and_lr_of_different_sizes_or_counts(tmp_path, bikes_frames):
    hr_dir, lr_dir = tmp_path / "DIV2K_train_HR", tmp_path / "DIV2K_train_LR_bicubic" / "X2"
    _save_frames(hr_dir, bikes_frames, [f"{i}.png" for i in range(6)])
    _save_frames(lr_dir, downscale_bicubic(bikes_frames, 4), [f"{i}x2.png" for i in range(6)])
    with pytest.raises(StdoError, match="LR .* is 40x24 but HR 160x96 at x2 needs 80x48"):
        load_clip(tmp_path, 2)
    _save_frames(lr_dir, downscale_bicubic(bikes_frames, 2), [f"{i}x2.png" for i in range(6)])
    (lr_dir / "5x2.png").unlink()
    with pytest.raises(StdoError, match="has 6 frames but .* has 5"):
        load_clip(tmp_path, 2)


def test_given_lr_video_with_fewer_frames(tmp_path, bikes):
    hr, _ = read_video(bikes, count=4)
    short = tmp_path / "short.mp4"
    encode_stream(short, downscale_bicubic(hr[:2], 2))
    with pytest.raises(StdoError, match="past its end|has 2 frames"):
        load_clip(bikes, 2, Cut(start=0, frames=4), lr_source=short)


@pytest.mark.parametrize("scale, cut, message", [
    (1, Cut(frames=2), "below 2"),
    (4, Cut(start=300, frames=2), "past its end"),
    (4, Cut(frames=0), "asks for no frames"),
    (4, Cut(frames=2, crop=Crop(700, 10)), "reaches outside"),
])
def test_bad_options(bikes, scale, cut, message):
    with pytest.raises(StdoError, match=message):
        load_clip(bikes, scale, cut)


def test_crop_syntax():
    assert Crop.parse("64x32+8+4") == Crop(64, 32, 8, 4)
    assert Crop.parse("64x32") == Crop(64, 32, 0, 0)
    with pytest.raises(StdoError, match="WxH"):
        Crop.parse("64by32")
