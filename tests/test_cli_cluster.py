import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import tree
from stdo.cli import main as stdo_main
from stdo.cluster.chunkmap import load_chunkmap
from stdo.cluster.cli import cluster_command
from stdo.stream import StreamOptions, encode_stream
from stdo.resample import downscale_bicubic
from stdo.video import read_video

OPTIONS = {"--scale": "4", "--crop": "320x192+160+40", "--frames": "4", "--grid": "4x3", "--chunks": "2"}
SMALL = [*sum(OPTIONS.items(), ()), "-q"]


def small_except(options: list) -> list:
    """SMALL without the options that `options` sets itself."""
    return [*sum(((k, v) for k, v in OPTIONS.items() if k not in options), ()), "-q"]
BIN = Path(sys.executable).parent


def test_cluster_writes_a_complete_run(cli, bikes, tmp_path):
    run = tmp_path / "run"
    code, out, err, _ = cli(cluster_command, [bikes, run, *SMALL])
    assert code == 0, err
    info = json.loads((run / "run.json").read_text())
    assert info["format"] == 2 and info["scale"] == 4 and info["source"]["kind"] == "video"
    assert info["hr_size"] == [320, 192] and info["lr_size"] == [80, 48] and info["frames"]["count"] == 4
    assert info["grid"]["cols"] == 4 and info["grid"]["rows"] == 3 and info["margin"] == 8
    hr, lr = np.load(run / "frames/hr.npy", mmap_mode="r"), np.load(run / "frames/lr.npy", mmap_mode="r")
    assert hr.shape == (4, 192, 320, 3) and lr.shape == (4, 48, 80, 3) and hr.dtype == np.uint8
    cmap = load_chunkmap(run / "clusters.npz")
    assert cmap.chunks.shape == (4, 3, 4) and cmap.counts.tolist() == [24, 24]
    assert cmap.scores[cmap.chunks == 0].max() <= cmap.thresholds[0] <= cmap.scores[cmap.chunks == 1].min()
    assert "patches    48" in out and "(hardest)" in out and "thresholds" in out and "time" in out
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]
    # the default LR stream: H.264 High yuv420p BT.709 limited, kept in the RUN; lr.npy is its decode, bit for bit
    stream = info["lr"]["stream"]
    assert (stream["codec"], stream["profile"], stream["pix_fmt"], stream["matrix"], stream["range"]) == (
        "h264", "High", "yuv420p", "bt709", "limited")
    assert info["lr"]["encoder_options"]["crf"] == 23 and stream["bytes"] == (run / "frames/lr.mp4").stat().st_size
    np.testing.assert_array_equal(read_video(run / "frames/lr.mp4")[0], lr)
    assert "LR stream  h264 High yuv420p bt709 limited" in out


def test_stdo_cluster_is_the_same_command(cli, bikes, tmp_path):
    assert cli(cluster_command, [bikes, tmp_path / "a", *SMALL])[0] == 0
    assert cli(stdo_main, ["cluster", bikes, tmp_path / "b", *SMALL])[0] == 0
    a, b = load_chunkmap(tmp_path / "a/clusters.npz"), load_chunkmap(tmp_path / "b/clusters.npz")
    np.testing.assert_array_equal(a.chunks, b.chunks)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_dct_kmeans_and_an_hevc_stream(cli, bikes, tmp_path):
    run = tmp_path / "run"
    extra = ["--scorer", "dct", "--partition", "kmeans", "--chunks", "3", "--codec", "hevc", "--crf", "30",
             "--gop", "2", "--preset", "fast", "--seed", "3"]
    code, out, err, _ = cli(cluster_command, [bikes, run, *small_except(extra), *extra])
    assert code == 0, err
    info = json.loads((run / "run.json").read_text())
    assert info["lr"]["origin"] == "bicubic" and info["partition"]["name"] == "kmeans"
    assert info["lr"]["encoder_options"] == {"codec": "hevc", "crf": 30, "bitrate_kbps": None, "preset": "fast",
                                             "gop": 2, "lossless": False}
    assert info["lr"]["stream"]["codec"] == "hevc" and info["lr"]["stream"]["profile"] == "Main"
    np.testing.assert_array_equal(read_video(run / "frames/lr.mp4")[0], np.load(run / "frames/lr.npy"))
    assert load_chunkmap(run / "clusters.npz").features.shape == (4, 3, 4, 2)


def test_rerun_on_same_source_is_allowed_other_source_needs_force(cli, bikes, bunny, tmp_path):
    run = tmp_path / "run"
    assert cli(cluster_command, [bikes, run, *SMALL])[0] == 0
    assert cli(cluster_command, [bikes, run, *small_except(["--chunks"]), "--chunks", "3"])[0] == 0
    before = tree(run)
    code, _, err, _ = cli(cluster_command, [bunny, run, *SMALL])
    assert code == 2 and "made from" in err and "--overwrite" in err
    assert tree(run) == before
    assert cli(cluster_command, [bunny, run, *SMALL, "--overwrite"])[0] == 0
    assert json.loads((run / "run.json").read_text())["source"]["path"].endswith("bigbuckbunny.mp4")


def _bad_inputs(tmp_path: Path, bikes: Path) -> dict[str, tuple[list, str]]:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 10_000)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(bikes.read_bytes()[:200_000])
    empty = tmp_path / "empty"
    empty.mkdir()
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 96, 3), dtype=np.uint8)
    wrong_lr = tmp_path / "lr.mp4"
    encode_stream(wrong_lr, downscale_bicubic(frames, 2))  # made at x2, used at x4
    return {
        "missing": ([tmp_path / "nope.mp4"], "does not exist"),
        "corrupt": ([junk], "not a video"),
        "truncated": ([cut], "complete"),
        "empty folder": ([empty], "no PNG or JPG"),
        "lr size": ([bikes, "--lr-video", wrong_lr], "needs 160x68"),
        "scale": ([bikes, "--scale", "1"], "below 2"),
        "grid": ([bikes, "--grid", "60x40"], "finer than"),
        "chunks": ([bikes, "--chunks", "49"], "more than the 48 patches"),
        "crop": ([bikes, "--crop", "2x"], "WxH"),
        "general needs checkpoint": ([bikes, "--scorer", "general"], "needs --checkpoint"),
        "lossless with crf": ([bikes, "--lossless", "--crf", "20"], "cannot be combined with --crf"),
        "crf range": ([bikes, "--crf", "60"], "outside 1..51"),
        "av1 crf range": ([bikes, "--codec", "av1", "--crf", "64"], "outside 1..63"),
        "crf and bitrate": ([bikes, "--crf", "20", "--bitrate", "300"], "exclusive"),
        "bitrate range": ([bikes, "--bitrate", "0"], "outside 1.."),
        "av1 lossless": ([bikes, "--codec", "av1", "--lossless"], "not available for av1"),
        "preset": ([bikes, "--preset", "fastest"], "not a h264 preset"),
        "gop": ([bikes, "--gop", "0"], "below 1"),
        "smooth": ([bikes, "--smooth", "-1"], "--smooth -1 is negative"),
        "hold": ([bikes, "--hold", "4"], "--hold 4 is not an odd number of frames"),
    }


@pytest.mark.parametrize("case", ["missing", "corrupt", "truncated", "empty folder", "lr size", "scale", "grid",
                                  "chunks", "crop", "general needs checkpoint", "lossless with crf", "crf range",
                                  "av1 crf range", "crf and bitrate", "bitrate range", "av1 lossless", "preset", "gop",
                                  "smooth", "hold"])
def test_bad_input_is_one_line_exit_2_nothing_written(cli, bikes, tmp_path, case):
    args, message = _bad_inputs(tmp_path, bikes)[case]
    run = tmp_path / "run"
    source, options = args[0], args[1:]
    code, out, err, exc = cli(cluster_command, [source, run, *small_except(options), *options])
    assert code == 2, (out, err, exc)
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not run.exists()


def test_bad_input_keeps_an_existing_run(cli, bikes, tmp_path):
    run = tmp_path / "run"
    assert cli(cluster_command, [bikes, run, *SMALL])[0] == 0
    before = tree(run)
    for args, _ in _bad_inputs(tmp_path, bikes).values():
        code = cli(cluster_command, [args[0], run, *small_except(args[1:]), *args[1:]])[0]
        assert code == 2
    assert tree(run) == before


def test_a_codec_this_ffmpeg_lacks_is_refused(cli, bikes, tmp_path, monkeypatch):
    import stdo.stream

    monkeypatch.setitem(stdo.stream.CODECS, "h264", replace(stdo.stream.CODECS["h264"], encoder="libnothere"))
    code, _, err, _ = cli(cluster_command, [bikes, tmp_path / "run", *SMALL, "--crf", "23"])
    assert code == 2 and "this FFmpeg has no libnothere encoder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_refuses_a_folder_that_is_not_a_run(cli, bikes, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err, _ = cli(cluster_command, [bikes, tmp_path, *SMALL])
    assert code == 2 and "not a stdo RUN" in err and (tmp_path / "notes.txt").read_text() == "mine"


def test_console_scripts(bikes, tmp_path):
    """The installed entry points: --help, and a bad input with no traceback."""
    help_text = subprocess.run([BIN / "stdo-cluster", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--scale", "--grid", "--chunks", "--scorer", "--partition", "--crop", "--codec", "--crf",
                   "--bitrate", "--preset", "--gop", "--lossless", "--overwrite", "--lr-video"):
        assert option in help_text
    assert "cluster" in subprocess.run([BIN / "stdo", "--help"], capture_output=True, text=True, check=True).stdout
    bad = subprocess.run([BIN / "stdo", "cluster", tmp_path / "nope.mp4", tmp_path / "run"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_a_given_lr_video_used_whole_is_shipped_as_it_is(cli, bikes, tmp_path):
    frames = read_video(bikes, start=10, count=4, box=(0, 0, 320, 192))[0]
    hr, lr = tmp_path / "hr.mp4", tmp_path / "lr.mp4"
    encode_stream(hr, frames, options=StreamOptions(lossless=True))
    encode_stream(lr, downscale_bicubic(frames, 4), options=StreamOptions(codec="hevc", crf=30))
    run = tmp_path / "run"
    code, out, err, _ = cli(cluster_command, [hr, run, "--lr-video", lr, "--scale", "4", "--grid", "4x3", "-q"])
    assert code == 0, err
    assert (run / "frames/lr.mp4").read_bytes() == lr.read_bytes()  # byte for byte, not re-encoded
    info = json.loads((run / "run.json").read_text())
    assert info["lr"]["kept_as_given"] and info["lr"]["encoder_options"] is None
    assert info["lr"]["stream"]["codec"] == "hevc"
    np.testing.assert_array_equal(read_video(lr)[0], np.load(run / "frames/lr.npy"))
    code, _, err, _ = cli(cluster_command, [hr, tmp_path / "run2", "--lr-video", lr, "--scale", "4", "--crf", "20", "-q"])
    assert code == 2 and "shipped as it is" in err and not (tmp_path / "run2").exists()
    # the library names its option fields (`lr`, `codec`); the command prints them as its own flags
    assert f"--lr-video {lr} is shipped as it is: drop --codec, --crf, --bitrate" in err and "`" not in err


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (root only; skipped, with the reason, where mounts are not allowed)."""
    disk = tmp_path / "small"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_one_line_and_leaves_nothing(bikes, small_disk):
    """Frames go to memory-mapped files: their blocks are allocated first, so a full disk is an error, not SIGBUS,
    and a rerun gets the same message (nothing is left to make it think the folder is something else)."""
    for _ in range(2):
        out = subprocess.run([BIN / "stdo-cluster", bikes, small_disk / "run", "--frames", "12", "-q"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith("Error: no room for the hr frames") and len(out.stderr.splitlines()) == 1
        assert list(small_disk.iterdir()) == []
