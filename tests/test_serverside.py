"""Server-side methods: the multi-frame WDSR (mfwdsr) and the large WDSR (wdsr-large) as stdo-train methods."""

import json

import numpy as np
import pytest
import torch

from conftest import copy_run
from stdo.export.cli import export_command
from stdo.grid import Grid
from stdo.infer import temporal_stack
from stdo.models import create_model, fold_weight_norm, load_wdsr
from stdo.train.cli import train_command
from stdo.train.data import ClipFrames, PatchSampler
from stdo.upscale.cli import upscale_command
from stdo.upscale.pipeline import UpscaleOptions, upscale
from stdo.video import open_video


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("frames", [1, 3, 5])
def test_multi_frame_wdsr_shapes_and_its_bicubic_start(scale, frames):
    model = create_model("wdsr_a_mobile", scale=scale, frames=frames)
    x = torch.rand(2, 3 * frames, 12, 10)
    y = model(x)
    assert y.shape == (2, 3, 12 * scale, 10 * scale) and y.dtype == torch.float32
    centre = x[:, 3 * (frames // 2) : 3 * (frames // 2) + 3]
    single = create_model("wdsr_a_mobile", scale=scale)
    assert (y - single(centre)).abs().max() < 1e-5  # a new model upsamples the centre frame bicubically
    back = load_wdsr(model.state_dict())
    assert back.config.frames == frames and back.config.scale == scale


def test_wdsr_large_is_a_few_million_parameters():
    model = create_model("wdsr_large", scale=4)
    assert 3e6 < sum(p.numel() for p in model.parameters()) < 8e6
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_temporal_windows_repeat_the_clip_ends():
    lr = np.arange(4, dtype=np.uint8)[:, None, None, None] * np.ones((4, 2, 3, 3), np.uint8)  # frame t filled with t
    stacked = temporal_stack(lr, 0, 4, 1)
    assert stacked.shape == (4, 2, 3, 9)
    assert [list(stacked[t, 0, 0, ::3]) for t in range(4)] == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def test_the_sampler_stacks_the_same_crop_of_neighbouring_frames():
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (5, 24, 32, 3), dtype=np.uint8)
    hr = rng.integers(0, 256, (5, 48, 64, 3), dtype=np.uint8)
    grid = Grid(24, 32, 2, 2, 4)
    sampler = PatchSampler(ClipFrames(hr, lr, grid, 2), np.array([[2, 0, 0], [0, 1, 1]]), crop=8, augment=False, radius=1)
    x, y, _ = sampler.gather(np.array([[2, 0, 0], [0, 1, 1]]), rng)
    assert x.shape[1] == 9 and y.shape[1] == 3
    for i, t in enumerate((2, 0)):
        window = (x[i] * 255).round().byte().permute(1, 2, 0).numpy()
        for k, tk in enumerate((t - 1, t, t + 1)):
            tk = min(max(tk, 0), 4)
            hits = [(r, c) for r in range(24 - window.shape[0] + 1) for c in range(32 - window.shape[1] + 1)
                    if np.array_equal(lr[tk, r : r + window.shape[0], c : c + window.shape[1]], window[..., 3 * k : 3 * k + 3])]
            assert hits, f"channels {3 * k}.. of sample {i} are not a crop of frame {tk}"


@pytest.fixture(scope="module")
def run(tmp_path_factory, small_run):
    return copy_run(small_run, tmp_path_factory.mktemp("server") / "run")


@pytest.fixture(scope="module")
def trained(run):
    from click.testing import CliRunner

    result = CliRunner().invoke(train_command, [str(run), "--method", "mfwdsr", "--radius", "1", "--steps", "300",
                                                "--blocks", "2", "--units", "8", "--batch", "8", "--crop-size", "16", "-q"])
    assert result.exit_code == 0, result.output
    return run


def test_mfwdsr_reads_three_frames_and_beats_bicubic(cli, trained):
    run = trained
    report = json.loads((run / "models/mfwdsr/report.json").read_text())
    assert report["radius"] == 1 and report["model"]["frames"] == 3
    assert report["psnr_video"] > report["bicubic"]["psnr_video"]  # the 480-step bar: test_train
    code, _, err, _ = cli(export_command, [run, "--method", "mfwdsr"])  # not a phone model
    assert code == 2 and "reads 3 frames at once" in err and len(err.strip().splitlines()) == 1


def test_a_window_longer_than_the_clip_is_one_line_exit_2(cli, run, tmp_path):
    code, _, err, _ = cli(train_command, [run, "--method", "mfwdsr", "--radius", "3", "--steps", "10", "-q"])
    assert code == 2 and "--radius 3 needs 7 frames, the RUN has 6" in err and len(err.strip().splitlines()) == 1


def test_upscale_runs_the_whole_clip_like_training_evaluated_it(cli, trained, tmp_path):
    run = trained
    trained_report = json.loads((run / "models/mfwdsr/report.json").read_text())
    out = tmp_path / "sr.mp4"
    code, stdout, err, _ = cli(upscale_command, [run, "--method", "mfwdsr", "--out", out, "-q"])
    assert code == 0, err
    assert "fps" in stdout and "RGB PSNR model" in stdout and "frames t-1..t+1" in stdout
    with open_video(out) as video:
        assert (video.info.width, video.info.height, video.info.frames) == (160, 96, 6)
    torch_report = upscale(UpscaleOptions(run=run, method="mfwdsr"))
    # whole frames here, windows with margin 6 (the tiny model's receptive radius) in training: the same pixels
    assert abs(torch_report["psnr"]["model"] - trained_report["psnr_video"]) < 0.01
    assert abs(torch_report["psnr"]["bicubic"] - trained_report["bicubic"]["psnr_video"]) < 1e-6
    onnx_report = upscale(UpscaleOptions(run=run, method="mfwdsr", backend="onnxruntime"))
    assert abs(onnx_report["psnr"]["model"] - torch_report["psnr"]["model"]) < 0.01


def test_multi_frame_onnx_equals_torch(tmp_path):
    from stdo.export.onnx import export_onnx
    from stdo.runtimes.onnx import OnnxRunner
    from stdo.metrics import psnr

    torch.manual_seed(0)
    model = fold_weight_norm(create_model("wdsr_a_mobile", scale=3, frames=3)).eval()
    for p in model.parameters():
        p.data.add_(0.01 * torch.randn_like(p))  # not the bicubic start
    x = torch.rand(2, 9, 20, 28)
    onnx_out = OnnxRunner(export_onnx(model, tmp_path / "mf.onnx"))(x)
    with torch.no_grad():
        assert float(psnr(onnx_out.clamp(0, 1) * 255, model(x).clamp(0, 1) * 255).min()) >= 100


def test_upscale_bad_input_is_one_line_exit_2(cli, trained, tmp_path):
    out = tmp_path / "sr.mp4"
    out.write_bytes(b"earlier")
    for args, message in (([trained, "--method", "mfwdsr", "--out", out], "exists"),
                          ([trained, "--method", "nas"], "holds no finished training"),
                          ([trained, "--out", tmp_path / "sr.avi"], "give an .mp4 file")):
        code, _, err, _ = cli(upscale_command, args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert out.read_bytes() == b"earlier"
