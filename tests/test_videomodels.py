"""The video models: brvsr (bidirectional recurrent, DIS flow) and vinr (continuous space-time), as stdo-train methods."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.export.cli import export_command
from stdo.flow import neighbour_flows, warp, warp_error
from stdo.grid import Grid
from stdo.models import create_model, fold_weight_norm, load_model, model_checkpoint
from stdo.models.brvsr import run_recurrence
from stdo.stream import StreamOptions
from stdo.train.cli import train_command
from stdo.train.clipdata import PairSampler, SequenceSampler
from stdo.train.data import ClipFrames
from stdo.upscale.cli import upscale_command
from stdo.upscale.pipeline import UpscaleOptions, upscale
from stdo.clip import Crop
from stdo.resample import upscale_bicubic


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture (bilinear warping of it is accurate to a grey level or so)."""
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.random((1, 3, h // 4 + 2, w // 4 + 2))).float()
    return F.interpolate(small, size=(h + 8, w + 8), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()


def test_dis_flow_finds_a_real_frames_motion(bikes_frames):
    frame = bikes_frames[0]
    moved = np.roll(frame, (2, -3), axis=(0, 1))  # frame t+1 = frame t moved 3 px left, 2 px down
    forward, backward = neighbour_flows(np.stack([frame, moved]))
    inner = (slice(8, -8), slice(8, -8))
    assert abs(np.median(forward[0][inner][..., 0]) + 3) < 0.25 and abs(np.median(forward[0][inner][..., 1]) - 2) < 0.25
    assert abs(np.median(backward[0][inner][..., 0]) - 3) < 0.25 and abs(np.median(backward[0][inner][..., 1]) + 2) < 0.25
    # warping frame t+1 by the forward flow gives frame t back: the HR clip's own consistency figure is ~0
    assert warp_error(np.stack([frame, moved]), forward, shave=8) < 3.0
    assert warp_error(np.stack([frame, frame[::-1]]), forward, shave=8) > 20  # and a wrong flow is far off


def test_sequences_carry_flows_that_align_their_frames_under_every_augmentation():
    """Frames shifted by a known motion with exact flows: after any flip, transpose or reversal, warping frame k+1 by
    forward flow k gives frame k, and frame k by backward flow k gives frame k+1."""
    t, h, w, shift = 6, 40, 48, (1, 2)  # each frame moves 2 px right and 1 px down
    base = _texture(h + 8 * t, w + 8 * t)
    lr = np.stack([(base[8 * t - shift[0] * k : 8 * t - shift[0] * k + h, 8 * t - shift[1] * k : 8 * t - shift[1] * k + w]
                    * 255).round().clip(0, 255).astype(np.uint8) for k in range(t)])
    hr = np.repeat(np.repeat(lr, 2, 1), 2, 2)
    forward = np.broadcast_to(np.array([shift[1], shift[0]], np.float32), (t - 1, h, w, 2)).copy()
    backward = -forward
    grid = Grid(h, w, 2, 2, 4)
    sampler = SequenceSampler(ClipFrames(hr, lr, grid, 2), (forward, backward), np.argwhere(np.ones((t, 2, 2))), length=4, crop=16)
    frames, fwd, bwd = sampler.sample(64, np.random.default_rng(1))[0]
    assert frames.shape == (64, 4, 3, 24, 24) and fwd.shape == bwd.shape == (64, 3, 2, 24, 24)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    for k in range(3):
        assert (warp(frames[:, k + 1], fwd[:, k]) - frames[:, k])[inner].abs().max() < 3 / 255
        assert (warp(frames[:, k], bwd[:, k]) - frames[:, k + 1])[inner].abs().max() < 3 / 255


def test_pairs_ask_for_the_frame_at_their_time():
    """Frame t filled with 20·t: the target of every pair (a, b) at time τ is a + τ·(b - a), whatever the gap,
    the symmetry or the swap, and the target's size is the RUN's scale or one in [1, scale]."""
    lr = (np.arange(8, dtype=np.uint8) * 20)[:, None, None, None] * np.ones((8, 24, 24, 3), np.uint8)
    hr = np.repeat(np.repeat(lr, 4, 1), 4, 2)
    sampler = PairSampler(ClipFrames(hr, lr, Grid(24, 24, 2, 2, 2), 4), np.argwhere(np.ones((8, 2, 2))), crop=12)
    sizes = set()
    for seed in range(8):
        (pairs, times, out_h, out_w), target, mask = sampler.sample(16, np.random.default_rng(seed))
        a, b = pairs[:, 0, 0, 0] * 255, pairs[:, 3, 0, 0] * 255
        assert torch.allclose(target[:, 0, 0, 0] * 255, a + times * (b - a), atol=0.01)
        assert set(((b - a).abs() / 20).round().tolist()) <= {1.0, 2.0}
        assert target.shape == (16, 3, out_h, out_w) and mask.shape == (16, 1, out_h, out_w) and mask.sum() > 0
        sizes.add(out_h)
    assert 64 in sizes and any(16 <= s < 64 for s in sizes)



def test_pairs_keep_the_clips_axes_and_evaluate_on_its_own_frames():
    """LR pixel (y, x) of frame t carries (y, x, 20·t): no crop is ever transposed (a crop's first channel grows
    down its rows, as the clip's y does), and the evaluation samples that decide the kept state are frames at their
    own time (0 or 1, neighbours one frame apart) at the RUN's scale."""
    yy, xx = np.meshgrid(np.arange(24), np.arange(24), indexing="ij")
    lr = np.stack([np.stack([yy * 8, xx * 8, np.full_like(yy, 20 * t)], -1) for t in range(8)]).astype(np.uint8)
    hr = np.repeat(np.repeat(lr, 4, 1), 4, 2)
    sampler = PairSampler(ClipFrames(hr, lr, Grid(24, 24, 2, 2, 2), 4), np.argwhere(np.ones((8, 2, 2))), crop=12)
    for seed in range(8):
        for draw in (sampler.sample, sampler.evaluation_sample):
            (pairs, times, out_h, out_w), _, _ = draw(16, np.random.default_rng(seed))
            rows_y = (pairs[:, 0, 1:, 0] - pairs[:, 0, :-1, 0]).abs()  # y steps down a crop's rows (flips: sign only)
            cols_y = (pairs[:, 0, 0, 1:] - pairs[:, 0, 0, :-1]).abs()
            assert torch.allclose(rows_y, torch.full_like(rows_y, 8 / 255)) and cols_y.max() == 0
        gaps = ((pairs[:, 5, 0, 0] - pairs[:, 2, 0, 0]).abs() * 255 / 20).round()
        assert (out_h, out_w) == (64, 64) and set(times.tolist()) <= {0.0, 1.0} and set(gaps.tolist()) == {1.0}

def test_new_video_models_start_as_bicubic_and_round_trip():
    torch.manual_seed(0)
    frames = torch.rand(1, 4, 3, 12, 16)
    still = torch.zeros(1, 3, 2, 12, 16)
    brvsr = create_model("brvsr", scale=3, num_blocks=1, num_residual_units=8)
    sr = brvsr(frames, still, still)
    wdsr = create_model("wdsr_a_mobile", scale=3)  # the toolkit's bicubic start, replicate border included
    assert sr.shape == (1, 4, 3, 36, 48) and (sr[0] - wdsr(frames[0])).abs().max() < 1e-5
    vinr = create_model("vinr", scale=3)
    pair = torch.rand(2, 6, 12, 16)
    assert (vinr(pair, torch.tensor([0.0, 1.0]), 30, 40) - vinr.bicubic_blend(pair, torch.tensor([0.0, 1.0]), 30, 40)).abs().max() == 0
    for model, args in ((brvsr, (frames, still, still)), (vinr, (pair, torch.tensor([0.25, 0.5]), 30, 40))):
        for p in model.parameters():
            p.data.add_(0.01 * torch.randn_like(p))
        back = load_model(model_checkpoint(model))
        assert type(back) is type(model) and torch.equal(back(*args), model(*args))
    assert vinr.upscale(pair, torch.tensor([0.25, 0.5]), 30, 40, rows_per_tile=7).shape == (2, 3, 30, 40)
    assert (vinr.upscale(pair, torch.tensor([0.25, 0.5]), 30, 40, rows_per_tile=7)
            - vinr(pair, torch.tensor([0.25, 0.5]), 30, 40)).abs().max() < 1e-5


def test_brvsr_steps_on_onnxruntime_equal_torch(tmp_path):
    from stdo.export.onnx import export_brvsr_onnx
    from stdo.runtimes.onnx import OnnxStep

    torch.manual_seed(0)
    model = create_model("brvsr", scale=2, num_blocks=1, num_residual_units=8)
    for p in model.parameters():
        p.data.add_(0.01 * torch.randn_like(p))
    model = fold_weight_norm(model).eval()
    paths = export_brvsr_onnx(model, tmp_path)
    frames = torch.rand(1, 3, 3, 20, 28)
    flows = torch.randn(1, 2, 2, 20, 28) * 2
    steps = (OnnxStep(paths["backward"], "backward"), OnnxStep(paths["forward"], "forward"))
    with torch.no_grad():
        expected = [sr for _, sr in run_recurrence(frames, flows, -flows, model.backward_step, model.forward_step, 8)]
    got = [sr for _, sr in run_recurrence(frames, flows, -flows, *steps, 8)]
    assert all((a - b).abs().max() < 1e-4 for a, b in zip(got, expected))


@pytest.fixture(scope="module")
def run(tmp_path_factory, bikes):
    path = tmp_path_factory.mktemp("video") / "run"
    cluster(ClusterOptions(source=bikes, run=path, scale=2, grid=(4, 2), chunks=2, margin=4, frames=6,
                           crop=Crop(160, 96, 240, 96), stream=StreamOptions(lossless=True)))
    return path


def _train(run, method, steps, *extra):
    from click.testing import CliRunner

    result = CliRunner().invoke(train_command, [str(run), "--method", method, "--steps", str(steps), "--blocks", "1",
                                                "--units", "8", "--batch", "4", "--crop-size", "16", "-q", *extra])
    assert result.exit_code == 0, result.output
    return json.loads((run / f"models/{method}/report.json").read_text())


@pytest.mark.slow  # video models trained
def test_brvsr_trains_beats_bicubic_and_runs_on_onnxruntime(cli, run):
    report = _train(run, "brvsr", 300, "--sequence", "3")
    assert report["model"]["name"] == "brvsr" and report["model"]["channels"] == 8
    assert report["psnr_video"] > report["bicubic"]["psnr_video"] + 0.1
    on_torch = upscale(UpscaleOptions(run=run, method="brvsr"))
    assert abs(on_torch["psnr"]["model"] - report["psnr_video"]) < 1e-6  # the same frames training evaluated
    on_onnx = upscale(UpscaleOptions(run=run, method="brvsr", backend="onnxruntime"))
    assert abs(on_onnx["psnr"]["model"] - on_torch["psnr"]["model"]) < 0.01
    code, _, err, _ = cli(export_command, [run, "--method", "brvsr"])
    assert code == 2 and "server-side video model" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # video models trained
def test_vinr_trains_beats_bicubic_at_any_scale_and_between_frames(cli, run):
    report = _train(run, "vinr", 600)
    assert report["psnr_video"] > report["bicubic"]["psnr_video"] + 0.1
    other = report["any_scale"]
    assert other["scale"] == 1.5 and other["size"] == [120, 72] and other["psnr"] > other["bicubic"]["psnr"] + 0.1
    between = report["frame_rate_2x"]
    assert between["frames"] == 2 and np.isfinite(between["psnr"]) and np.isfinite(between["bicubic"]["psnr"])
    code, stdout, err, _ = cli(upscale_command, [run, "--method", "vinr", "-q"])
    assert code == 0 and "frames t and t+1" in stdout, err
    code, _, err, _ = cli(upscale_command, [run, "--method", "vinr", "--backend", "onnxruntime"])
    assert code == 2 and "vinr runs on torch only" in err and len(err.strip().splitlines()) == 1


def test_a_brvsr_sequence_of_one_frame_is_refused(cli, run):
    code, _, err, _ = cli(train_command, [run, "--method", "brvsr", "--sequence", "1", "--steps", "5", "-q"])
    assert code == 2 and "--sequence 1 must be at least 2" in err and len(err.strip().splitlines()) == 1


def test_bicubic_baseline_of_the_video_metrics_is_the_toolkits(bikes_frames):
    from stdo.videosr import resize

    lr = bikes_frames[:2, ::2, ::2]
    assert torch.equal(resize(lr, (lr.shape[1] * 2, lr.shape[2] * 2)), upscale_bicubic(lr, 2))


def test_a_new_vinr_is_the_baselines_it_is_measured_against(bikes_frames):
    """Untrained, vinr is bicubic at any scale and frame blending between frames: its scores equal the baselines'."""
    from stdo.videosr import vinr_any_scale, vinr_between

    hr = bikes_frames[:5]
    lr = hr[:, ::2, ::2]
    model = create_model("vinr", scale=2).eval()
    other = vinr_any_scale(model, hr, lr, 1.5)
    assert other["size"] == [120, 72] and abs(other["psnr"] - other["bicubic"]["psnr"]) < 0.02
    between = vinr_between(model, hr, lr)
    assert between["frames"] == 2 and abs(between["psnr"] - between["bicubic"]["psnr"]) < 0.02


@pytest.mark.slow  # video models trained
@pytest.mark.parametrize("method", ["brvsr", "vinr"])
def test_an_interrupted_video_model_resumes_to_the_same_weights(run, tmp_path, method):
    import shutil

    from stdo.train.loop import TrainConfig
    from stdo.train.methods import MethodOptions
    from stdo.train.pipeline import TrainOptions, train

    def options(path):
        return TrainOptions(run=path, method=method, evaluate=False,
                            config=TrainConfig(steps=40, batch=4, crop_size=16, checkpoint_every=10),
                            method_options=MethodOptions(blocks=1, units=8,
                                                         sequence=3))

    whole, cut = (shutil.copytree(run, tmp_path / name, ignore=shutil.ignore_patterns("models")) for name in ("a", "b"))
    train(options(whole))

    def stop_at_25(job, step, steps, loss, psnr):
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(options(cut), progress=stop_at_25)
    assert torch.load(cut / f"models/{method}/state/joint.pt", weights_only=True)["step"] == 20
    train(options(cut))  # resumes at step 20
    a, b = (torch.load(r / f"models/{method}/model0.pt", weights_only=True)["state"] for r in (whole, cut))
    assert all(torch.equal(a[k], b[k]) for k in a)
