"""stdo-export on a trained RUN: every format converted, run by its own runtime, verified, bundled."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tree
from stdo.cli import main as stdo_main
from stdo.errors import StdoError
from stdo.export import pipeline as export_pipeline
from stdo.bundle import read_bundle
from stdo.export.cli import export_command
from stdo.export.pipeline import ExportOptions, export
from stdo.bundle import sha256_of
from stdo.infer import upscale_batch
from stdo.options import parse_list
from stdo.runtimes import EXPORT_FORMATS, signature_name
from stdo.runtimes.tflite import TfliteRunner
from stdo.models import load_wdsr
from stdo.metrics import mse
from stdo.play.player import Player
from stdo.resample import as_nchw
from stdo.video import read_video

pytest.importorskip("litert_torch")
pytest.importorskip("coremltools")


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(trained_run, run)
    report = export(ExportOptions(run=run, format=("onnx", "tflite", "coreml"), quantize=("int8", "fp16"),
                                  calibration=16, verify_frames=3, plan_shapes=2))
    return run, report


def test_bundle_holds_every_variant_and_reads_back(exported):
    run, report = exported
    bundle = read_bundle(run / "bundle")  # the untrusted-input reader accepts what we wrote
    m = bundle.manifest
    assert len(m["models"]) == 2 and m["method"] == "stdo" and not m["joint"]
    assert m["grid"] == {"cols": 4, "rows": 2, "margin": 6} and m["lr_size"] == [80, 48]
    with np.load(run / "models/stdo/model_map.npz") as z:
        assert np.array_equal(bundle.model_map, z["model_map"])
    expected = {("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "fp16"),
                ("tflite", "int8"), ("coreml", "fp16"), ("coreml", "int8")}
    plan_shapes = {tuple(s) for s in m["plan"]["shapes"]}
    margin = m["plan"]["margin"]  # auto: measured, at most the receptive radius (6)
    assert margin == report["plan"]["margin_check"]["margin"] <= 6 == m["receptive_radius"]
    assert (min(24 + 2 * margin, 48), 20 + 2 * margin) in plan_shapes  # the base window: one patch + margins
    for model in m["models"]:
        assert {(f["format"], f["precision"]) for f in model["files"]} == expected
        for precision in ("fp32", "fp16", "int8"):  # fixed-shape TFLite: one file, a signature per plan shape
            tflite = [f for f in model["files"] if (f["format"], f["precision"]) == ("tflite", precision)]
            assert [f["input_shape"] for f in tflite] == [[1, 3, None, None]]
            signatures = TfliteRunner(bundle.file(tflite[0])).signatures
            assert set(signatures) == {signature_name(s) for s in plan_shapes}
        onnx = [f["input_shape"] for f in model["files"] if (f["format"], f["precision"]) == ("onnx", "fp32")]
        assert onnx == [[None, 3, None, None]]  # dynamic: one file serves every window
    # the LR stream is the RUN's own, byte for byte (lossy H.264 by default): the client decodes exactly
    # the frames the models were trained on
    video = m["video"]
    assert video["sha256"] == sha256_of(run / "frames/lr.mp4") and video["bytes"] == (run / "frames/lr.mp4").stat().st_size
    assert (video["codec"], video["profile"], video["pix_fmt"], video["matrix"], video["range"]) == (
        "h264", "High", "yuv420p", "bt709", "limited")
    assert video["frames"] == 6 and video["duration_s"] == pytest.approx(6 / 25) and video["bitrate_kbps"] > 0
    lr, _ = read_video(bundle.file(video))
    assert np.array_equal(lr, np.load(run / "frames/lr.npy"))
    assert report["video"]["sha256"] == video["sha256"]
    assert not [p for p in run.iterdir() if p.name.startswith(".bundle")]  # no temp folder left


def test_the_measured_margin_leaves_the_frames_as_the_exact_plan(exported):
    """auto margin: every frame within 0.1% of the model's own error of the exact (receptive radius) frames."""
    run, report = exported
    check = report["plan"]["margin_check"]
    player = Player(run / "bundle", "torch")
    lr, hr = np.load(run / "frames/lr.npy"), np.load(run / "frames/hr.npy")
    planned = player.upscale(lr, 0).mul(255)
    exact = upscale_batch(as_nchw(lr).float() / 255, player.grid, 2, player.bundle.model_map, player.runners).mul(255)
    own = float(mse(exact.round(), as_nchw(hr).float(), shave=2).mean())
    assert player.grid.margin == 6 and float(mse(planned, exact).mean()) <= check["tolerance"] * own
    assert [c["margin"] for c in check["checks"]] == list(range(check["margin"] + 1))[: len(check["checks"])]
    assert all(c["mse_vs_exact"] > check["tolerance"] * check["mse_exact_vs_hr"] for c in check["checks"][:-1])


def test_verification_meets_the_targets_and_sizes_shrink(exported):
    run, report = exported
    rows = {(r["format"], r["precision"]): r for r in report["artifacts"]}
    for key in [("onnx", "fp32"), ("tflite", "fp32")]:
        assert rows[key]["psnr_vs_torch"] >= 100 and rows[key]["target"] == "ok"
        assert abs(rows[key]["psnr_vs_hr"] - report["torch_fp32_psnr_hr"]) < 1e-3
    for fmt in ("onnx", "tflite", "coreml"):
        int8 = rows[(fmt, "int8")]
        assert int8["bytes"] < 0.8 * rows[(fmt, "fp32" if fmt != "coreml" else "fp16")]["bytes"]
        assert 30 < int8["psnr_vs_torch"] < 100  # really quantized, and still the same picture
        # the int8 target (at most 0.3 dB below fp32 torch against HR), met by every format on a trained model
        assert int8["delta_vs_torch_fp32"] >= -0.3 and int8["target"] == "ok", (fmt, int8)
    assert rows[("tflite", "fp16")]["bytes"] < 0.7 * rows[("tflite", "fp32")]["bytes"]
    assert rows[("tflite", "fp16")]["psnr_vs_torch"] > 60 and rows[("coreml", "fp16")]["psnr_vs_torch"] > 60
    assert rows[("onnx", "fp32")]["ms_per_window"] > 0
    on_disk = json.loads((run / "bundle/report.json").read_text())
    assert on_disk["artifacts"] == report["artifacts"]
    md = (run / "bundle/report.md").read_text()
    assert "| tflite | int8 |" in md and f"Inference plan: margin {report['plan']['margin']} (measured" in md


@pytest.mark.slow  # TFLite and CoreML conversions
def test_coreml_spec_and_tflite_runtime(exported):
    from stdo.runtimes.coreml import inspect_coreml

    bundle = read_bundle(exported[0] / "bundle")
    files = {(f["format"], f["precision"]): (bundle.file(f), f["input_shape"])
             for f in bundle.manifest["models"][0]["files"]}
    spec = inspect_coreml(files[("coreml", "int8")][0])
    assert list(spec["inputs"]) == ["lr"] and spec["outputs"] == ["sr"]
    assert spec["inputs"]["lr"][:2] == [[1, 1], [3, 3]] and spec["inputs"]["lr"][2][1] >= 1080
    assert spec["ops"]["conv"] == 1 + 2 * 2 + 1 + 1  # head, 2 blocks x 2, tail, skip: every conv of the model
    # int8 weights in every conv but the 5x5 skip, which stays fp16 (its rounding lands on the output pixels)
    assert spec["ops"].get("constexpr_affine_dequantize", 0) == spec["ops"]["conv"] - 1
    runner = TfliteRunner(files[("tflite", "fp32")][0])
    reference = load_wdsr(torch.load(files[("torch", "fp32")][0], weights_only=True)).eval()
    for window in bundle.plan.shapes:  # each signature: its window shape, the torch model's output
        x = torch.rand(3, 3, *window)
        out = runner(x)
        assert out.shape == (3, 3, 2 * window[0], 2 * window[1])
        assert torch.allclose(out, reference(x), atol=1e-4)
    window = bundle.plan.shapes[0]
    with pytest.raises(ValueError, match="no signature for windows"):
        runner(torch.rand(1, 3, window[0] + 1, window[1]))


def test_single_model_method_bundle_has_no_model_map(trained_run, tmp_path):
    from stdo.train.loop import TrainConfig
    from stdo.train.methods import MethodOptions
    from stdo.train.pipeline import TrainOptions, train

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    train(TrainOptions(run=run, method="awdnn", config=TrainConfig(steps=10, batch=4, crop_size=16),
                       method_options=MethodOptions(blocks=2, units=8)))
    report = export(ExportOptions(run=run, method="awdnn", format=("onnx", "tflite"), quantize=("int8",),
                                  verify_frames=1))
    bundle = read_bundle(run / "bundle")
    assert bundle.manifest["joint"] and bundle.manifest["model_map"] is None and len(bundle.manifest["models"]) == 1
    assert not (run / "bundle/modelmap.bin").exists() and not bundle.model_map.any()
    # one model on every patch runs once on the whole frame: an Android client downloads one TFLite file per variant
    tflite = [f for f in bundle.models[0] if f["format"] == "tflite"]
    assert bundle.plan.shapes == ((bundle.grid.height, bundle.grid.width),)
    assert len(tflite) == len({f["precision"] for f in tflite}) == 2  # fp32, int8
    assert report["clients"]["tflite int8"]["models"] == next(f["bytes"] for f in tflite if f["precision"] == "int8")


def test_a_failed_export_keeps_the_earlier_bundle_and_leaves_nothing(exported, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(exported[0], run)
    before = tree(run)

    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(export_pipeline, "open_runner", broken)  # fails after the first file is written
    with pytest.raises(RuntimeError):
        export(ExportOptions(run=run, format=("onnx",), verify_frames=1))
    assert tree(run) == before
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in exported[0].iterdir())


def test_strict_export_fails_on_a_missed_target_and_keeps_the_earlier_bundle(cli, exported, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported[0], run)
    before = tree(run)
    code, _, err, _ = cli(export_command, [run, "--format", "onnx", "--quantize", "int8", "--verify-frames", "1",
                                           "--strict", "--int8-max-loss", "-1", "-q"])  # int8 must beat fp32: it cannot
    assert code == 2 and "--strict: onnx int8 (loses more than -1.0 dB) misses its target" in err, err
    assert len(err.strip().splitlines()) == 1 and tree(run) == before
    code, _, err, _ = cli(export_command, [run, "--format", "onnx", "--quantize", "int8", "--verify-frames", "1",
                                           "--int8-max-loss", "-1", "-q"])
    assert code == 0, err  # without --strict the miss is reported in the table, and the bundle written
    targets = {(a["format"], a["precision"]): a["target"] for a in json.loads((run / "bundle/report.json").read_text())["artifacts"]}
    assert targets[("onnx", "int8")] == "loses more than -1.0 dB" and targets[("onnx", "fp32")] == "ok"


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx,mp3"], "--format 'mp3' is unknown"),
    (["--quantize", "int4"], "--quantize 'int4' is unknown"),
    (["--method", "nas"], "holds no finished training: run stdo-train"),
    (["--verify-frames", "-1"], "--verify-frames"),
    (["--plan-shapes", "9"], "--plan-shapes 9 is outside 1..8"),
    (["--plan-margin", "wide"], "--plan-margin 'wide' is not a number"),
    (["--plan-margin", "-1"], "--plan-margin -1 is outside 0..256"),
    (["--video-crf", "23"], "--video-crf is gone: the bundle ships the RUN's own LR stream byte for byte; choose it "
                            "at clustering with stdo-cluster --codec/--crf/--bitrate/--lossless"),
])
def test_cli_bad_options_are_one_line_errors(cli, trained_run, args, message):
    before = tree(trained_run)
    code, out, err, _ = cli(export_command, [trained_run, *args])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert tree(trained_run) == before


def test_cli_refuses_incomplete_runs_and_foreign_folders(cli, trained_run, tmp_path):
    code, _, err, _ = cli(export_command, [tmp_path / "missing"])
    assert code == 2 and "does not exist" in err
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("models"))
    code, _, err, _ = cli(export_command, [run])
    assert code == 2 and "run stdo-train" in err
    shutil.copytree(trained_run / "models", run / "models")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos/cat.jpg").write_bytes(b"not a bundle")
    code, _, err, _ = cli(export_command, [run, "--out", tmp_path / "photos"])
    assert code == 2 and "is not a bundle" in err
    assert (tmp_path / "photos/cat.jpg").read_bytes() == b"not a bundle"


def test_cli_missing_converter_is_named(cli, trained_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "litert_torch", None)  # as if not installed: importing it fails
    before = tree(trained_run)
    code, _, err, _ = cli(export_command, [trained_run, "--format", "onnx,tflite"])
    assert code == 2 and "litert-torch is not installed: pip install 'stdo[export]'" in err
    assert tree(trained_run) == before


def test_stdo_export_is_also_a_subcommand(cli):
    code, out, _, _ = cli(stdo_main, ["export", "--help"])
    assert code == 0 and "--quantize" in out and "--format" in out


def test_unknown_lists_raise_early():
    with pytest.raises(StdoError, match="unknown"):
        parse_list("onnx,,pdf", EXPORT_FORMATS, "--format")
    assert parse_list("ONNX, tflite,onnx", EXPORT_FORMATS, "--format") == ("onnx", "tflite")
