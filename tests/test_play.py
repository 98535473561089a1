"""stdo-play on an exported bundle: the numbers agree with training, the margin is right, outputs are safe."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tree
from stdo.cli import main as stdo_main
from stdo.export.pipeline import ExportOptions, export
from stdo.play.cli import play_command
from stdo.play.pipeline import PlayOptions, play
from stdo.play.player import Player
from stdo.infer import upscale_batch, upscale_planned
from stdo.plan import base_shape, make_plan
from stdo.stream import StreamOptions, encode_stream
from stdo.video import open_video, read_video

pytest.importorskip("litert_torch")


@pytest.fixture(scope="module")
def bundle(trained_run, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("play") / "run"
    shutil.copytree(trained_run, run)
    export(ExportOptions(run=run, format=("onnx", "tflite"), quantize=("int8",), calibration=16,
                         verify_frames=1, plan_margin=6))  # the receptive radius: the exact plan
    return run / "bundle"


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "litert"])
def test_player_psnr_matches_the_training_report(bundle, backend):
    run = bundle.parent
    trained = json.loads((run / "models/stdo/report.json").read_text())
    report = play(PlayOptions(bundle=bundle, backend=backend, hr=run / "frames/hr.npy"))
    assert report["frames"] == 6 and report["fps"] > 0
    assert abs(report["psnr"]["model"] - trained["psnr_video"]) < 0.05  # the bar, on the default lossy stream
    assert abs(report["psnr"]["model_y"] - trained["psnr_y_video"]) < 0.05
    assert report["psnr"]["model_y"] != report["psnr"]["model"] and 0 < report["psnr"]["model_ssim"] <= 1
    assert abs(report["psnr"]["bicubic"] - trained["bicubic"]["psnr_video"]) < 1e-6
    assert report["psnr"]["model"] > report["psnr"]["bicubic"]
    assert set(report["seconds"]) >= {"decode", "inference", "stitch", "encode", "playback"}


def test_int8_plays_close_to_fp32(bundle):
    hr = bundle.parent / "frames/hr.npy"
    fp32 = play(PlayOptions(bundle=bundle, backend="litert", hr=hr))["psnr"]["model"]
    int8 = play(PlayOptions(bundle=bundle, backend="litert", precision="int8", hr=hr))["psnr"]["model"]
    assert fp32 - 1.0 < int8 < fp32 + 0.2


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_one_model_over_all_patches_equals_the_whole_frame(bundle, backend):
    player = Player(bundle, backend)
    lr = np.load(bundle.parent / "frames/lr.npy")[:2]
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255
    base = (base_shape(player.grid, 6),)  # one patch + margins: no merging, every patch its own window
    for k, runner in enumerate(player.runners):
        plan = make_plan(np.full((2, player.grid.rows, player.grid.cols), k, np.uint8), player.grid, 6, base)
        stitched = upscale_planned(x, plan.frame_runs(0, 2), plan.shapes, player.scale, player.runners)
        whole = runner(x).clamp(0, 1)
        assert (stitched - whole).abs().max() < 1e-5  # margin 6 = the tiny model's receptive radius


@pytest.mark.parametrize("backend, precision", [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                                                ("litert", "fp32"), ("litert", "int8")])
def test_the_plan_gives_the_frames_of_the_windowed_player(bundle, backend, precision):
    """The bundle's plan (merged windows, several shapes) against one window per patch, on every backend."""
    player = Player(bundle, backend, precision)
    plan, lr = player.bundle.plan, np.load(bundle.parent / "frames/lr.npy")
    assert len(plan.shapes) > 1 and plan.stats(player.grid)["runs_per_frame"] < player.grid.num_patches
    planned = player.upscale(lr, 0)
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255
    windowed = upscale_batch(x, player.grid, player.scale, player.bundle.model_map, player.runners)
    # float rounding; int8 runtimes quantize each window's activations by fixed scales, so they agree as closely
    assert (planned - windowed).abs().max() < (1e-4 if precision == "fp32" else 2e-2)


def test_mp4_png_and_side_by_side_outputs(bundle, tmp_path, cli):
    code, out, err, _ = cli(play_command, [bundle, "--out", tmp_path / "sr.mp4", "-q"])
    assert code == 0, err
    with open_video(tmp_path / "sr.mp4") as video:
        assert (video.info.width, video.info.height, video.info.frames) == (160, 96, 6)
        info = video.describe()  # the default output: yuv420p, tagged BT.709 limited range
    assert "fps" in out and "inference" in out
    code, _, err, _ = cli(play_command, [bundle, "--out", tmp_path / "frames", "--backend", "torch", "-q"])
    assert code == 0, err
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert len(pngs) == 6
    sr = play(PlayOptions(bundle=bundle, backend="torch", out=tmp_path / "side.mp4", compare=True, out_crf=0))
    side, _ = read_video(tmp_path / "side.mp4")
    assert side.shape == (6, 96, 320, 3) and sr["compare"]
    from PIL import Image

    frames = np.stack([np.asarray(Image.open(p)) for p in pngs])
    np.testing.assert_array_equal(side[:, :, 160:], frames)  # --crf 0 is lossless: the SR frames exactly
    assert (info["pix_fmt"], info["matrix"], info["range"]) == ("yuv420p", "bt709", "limited")


def test_report_and_plot(bundle, tmp_path, cli):
    pytest.importorskip("matplotlib")
    hr = bundle.parent / "frames/hr.npy"
    code, out, err, _ = cli(play_command, [bundle, "--hr", hr, "--report", tmp_path / "psnr.md", "--plot",
                                           tmp_path / "psnr.png", "-q"])
    assert code == 0, err
    assert "RGB PSNR" in out and "Y-PSNR" in out and "SSIM" in out and "| bicubic |" in (tmp_path / "psnr.md").read_text()
    assert (tmp_path / "psnr.png").read_bytes()[:4] == b"\x89PNG"
    code, _, err, _ = cli(play_command, [bundle, "--hr", hr, "--report", tmp_path / "psnr.json", "-q"])
    per_frame = json.loads((tmp_path / "psnr.json").read_text())["psnr"]["per_frame"]
    assert code == 0 and len(per_frame) == 6
    # --shave: the border PSNR leaves out, as stdo-deliver scores every scale with the largest one's
    from stdo.play.pipeline import PlayOptions, play

    code, _, err, _ = cli(play_command, [bundle, "--hr", hr, "--shave", "8", "--report", tmp_path / "s8.json", "-q"])
    wide = json.loads((tmp_path / "s8.json").read_text())["psnr"]
    assert code == 0 and wide["model"] == pytest.approx(play(PlayOptions(bundle=bundle, hr=hr, shave=8))["psnr"]["model"])
    assert wide["model"] != pytest.approx(json.loads((tmp_path / "psnr.json").read_text())["psnr"]["model"], abs=1e-4)
    code, _, err, _ = cli(play_command, [bundle, "--hr", hr, "--shave", "99", "-q"])
    assert code == 2 and "--shave 99 must be in 0..64" in err


def test_rate_puts_the_bundle_bytes_beside_hr_h264_and_hevc_at_equal_psnr(bundle, tmp_path, cli):
    hr = bundle.parent / "frames/hr.npy"
    code, _, err, _ = cli(play_command, [bundle, "--rate", "-q"])
    assert code == 2 and "--rate needs --hr" in err
    code, out, err, _ = cli(play_command, [bundle, "--precision", "int8", "--hr", hr, "--rate", "--report",
                                           tmp_path / "r.json", "-q"])
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    d, manifest = report["delivery"], json.loads((bundle / "manifest.json").read_text())
    int8 = sum(f["bytes"] for m in manifest["models"] for f in m["files"] if (f["format"], f["precision"]) ==
               ("onnx", "int8"))
    sizes = {"video": manifest["video"]["bytes"], "models": int8, "model_map": manifest["model_map"]["bytes"]}
    assert d["bundle"] == {**sizes, "total": sum(sizes.values())}
    assert list(d["hr"]) == ["h264", "hevc"]  # what users stream today, in both codecs
    for codec, lowest in (("h264", 1), ("hevc", 0)):
        hr_stream = d["hr"][codec]
        point = hr_stream["point"]
        assert point["psnr"] >= report["psnr"]["model"] or point["crf"] == lowest
        assert hr_stream["bytes_ratio"] == pytest.approx(d["bundle"]["total"] / point["bytes"])
        if hr_stream["same_psnr"] is not None:  # at the model's PSNR exactly: no more than the stream that reaches it
            assert hr_stream["same_psnr"] <= point["bytes"]
            assert hr_stream["bytes_ratio_same_psnr"] == pytest.approx(d["bundle"]["total"] / hr_stream["same_psnr"])
    assert "bytes    bundle" in out and "HR H.264 crf" in out and "HR HEVC crf" in out
    # every client the bundle serves: its own download, priced against the same HR streams
    clients = d["clients"]
    assert list(clients)[0] == "onnx int8" and clients["onnx int8"]["total"] == d["bundle"]["total"]
    for name, c in clients.items():
        fmt, precision = name.split()
        models = sum(int((f.get("update") or f)["bytes"]) for m in manifest["models"] for f in m["files"]
                     if (f["format"], f["precision"]) == (fmt, precision))
        assert c["total"] == sizes["video"] + models + sizes["model_map"]
        assert c["vs_hr"]["h264"] == pytest.approx(c["total"] / (d["hr"]["h264"]["same_psnr"] or
                                                                  d["hr"]["h264"]["point"]["bytes"]))
    assert "clients  onnx int8" in out
    code, _, err, _ = cli(play_command, [bundle, "--hr", hr, "--rate", "--rate-codec", "vp8", "-q"])
    assert code == 2 and "--rate-codec 'vp8' is unknown" in err


def test_existing_outputs_are_refused_unless_overwrite(bundle, tmp_path, cli):
    out = tmp_path / "sr.mp4"
    out.write_bytes(b"earlier result")
    code, _, err, _ = cli(play_command, [bundle, "--out", out, "-q"])
    assert code == 2 and "exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"earlier result"
    code, _, err, _ = cli(play_command, [bundle, "--out", out, "--overwrite", "-q"])
    assert code == 0 and read_video(out)[0].shape[0] == 6
    code, _, err, _ = cli(play_command, [bundle, "--out", tmp_path / "sr.avi"])
    assert code == 2 and "give an .mp4 file, or a folder" in err and not (tmp_path / "sr.avi").exists()
    mine = tmp_path / "frames"
    assert cli(play_command, [bundle, "--out", mine, "--backend", "torch", "-q"])[0] == 0
    assert cli(play_command, [bundle, "--out", mine, "--backend", "torch", "--overwrite", "-q"])[0] == 0
    assert len(list(mine.glob("*.png"))) == 6  # its own frame folder: replaced
    unrelated = tmp_path / "photos"
    unrelated.mkdir()
    (unrelated / "holiday.jpg").write_bytes(b"precious")
    code, _, err, _ = cli(play_command, [bundle, "--out", unrelated, "--overwrite", "-q"])
    assert code == 2 and "is a folder stdo-play did not write" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in unrelated.iterdir()] == ["holiday.jpg"]  # untouched
    code, _, err, _ = cli(play_command, [bundle, "--out", tmp_path / "fast.mp4", "--out-preset", "warp"])
    assert code == 2 and "--out-preset 'warp' is not a h264 preset" in err and not (tmp_path / "fast.mp4").exists()


def test_tampered_bundle_is_refused(bundle, tmp_path, cli):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    model = copy / "models/model1.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 1
    model.write_bytes(bytes(data))
    code, _, err, _ = cli(play_command, [copy, "--out", tmp_path / "sr.mp4"])
    assert code == 2 and "sha256" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "sr.mp4").exists()


def test_a_video_that_does_not_match_is_refused_and_nothing_is_written(bundle, tmp_path, cli):
    lr = np.load(bundle.parent / "frames/lr.npy")
    encode_stream(tmp_path / "short.mp4", lr[:4], options=StreamOptions(lossless=True))
    encode_stream(tmp_path / "small.mp4", lr[:, :40], options=StreamOptions(lossless=True))
    for video, message in (("short.mp4", "with 4 frames"), ("small.mp4", "80x40")):
        code, _, err, _ = cli(play_command, [bundle, "--lr-video", tmp_path / video, "--out", tmp_path / "sr.mp4"])
        assert code == 2 and message in err and "exported with" in err, err
    np.save(tmp_path / "short.npy", lr[:4])  # a source that does not declare its length: caught at its end
    code, _, err, _ = cli(play_command, [bundle, "--lr-video", tmp_path / "short.npy", "--out", tmp_path / "sr.mp4"])
    assert code == 2 and "ends after 4 frames" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.mp4", "short.npy", "small.mp4"]


def test_missing_backend_or_variant_is_a_clear_error(bundle, cli, monkeypatch):
    code, _, err, _ = cli(play_command, [bundle, "--backend", "onnxruntime", "--precision", "fp16"])
    assert code == 2 and "no onnx fp16 model" in err
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # as if not installed
    code, _, err, _ = cli(play_command, [bundle, "--backend", "litert"])
    assert code == 2 and "ai-edge-litert is not installed" in err


def test_hr_that_does_not_match_is_refused(bundle, tmp_path, cli):
    lr = np.load(bundle.parent / "frames/lr.npy")
    np.save(tmp_path / "wrong.npy", lr)  # LR size, not HR
    code, _, err, _ = cli(play_command, [bundle, "--hr", tmp_path / "wrong.npy"])
    assert code == 2 and "expected 160x96" in err
    before = tree(tmp_path)
    code, _, err, _ = cli(play_command, [bundle, "--plot", tmp_path / "p.png"])
    assert code == 2 and "--plot needs --hr" in err and tree(tmp_path) == before


def test_stdo_play_is_also_a_subcommand(cli):
    code, out, _, _ = cli(stdo_main, ["play", "--help"])
    assert code == 0 and "--backend" in out and "--compare" in out


@pytest.mark.parametrize("scale", [1, 2])
def test_a_plain_bundle_plays_its_stream_upsampled_by_bicubic_on_any_backend(bikes_frames, tmp_path, cli, scale):
    """No model: at x1 the frames are the HR stream as it decodes (what HR streaming shows), above it bicubic of
    the stream, and the report says so."""
    from stdo.bundle import write_plain_bundle
    from stdo.resample import upscale_bicubic

    lr = bikes_frames[:, ::scale, ::scale] if scale > 1 else bikes_frames
    encode_stream(tmp_path / "v.mp4", iter(np.ascontiguousarray(lr)), 25.0, StreamOptions(crf=23))
    write_plain_bundle(tmp_path / "bundle", tmp_path / "v.mp4", scale=scale)
    decoded, _ = read_video(tmp_path / "v.mp4")
    for backend in ("torch", "onnxruntime", "litert"):
        player = Player(tmp_path / "bundle", backend, "int8" if backend != "torch" else "fp32")
        played = np.stack([sr for _, _, sr in player.play(iter(decoded))])
        expected = upscale_bicubic(decoded, scale).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(played, expected) and player.delivered_bytes["models"] == 0
        if scale == 1:
            assert np.array_equal(played, decoded)
    np.save(tmp_path / "hr.npy", bikes_frames)
    code, out, err, _ = cli(play_command, [tmp_path / "bundle", "--hr", tmp_path / "hr.npy", "-q"])
    assert code == 0, err
    assert ("no model: the HR stream as decoded" if scale == 1 else "no model: bicubic upsampling") in out
    assert "gain +0.000 dB" in out
