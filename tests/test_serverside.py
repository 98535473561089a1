"""Server-side methods: the multi-frame WDSR (mfwdsr) and the large WDSR (wdsr-large) as stdo-train methods."""

import json

import numpy as np
import pytest
import torch

from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.export.cli import export_command
from stdo.grid import Grid
from stdo.infer import temporal_stack
from stdo.models import create_model, load_wdsr
from stdo.stream import StreamOptions
from stdo.train.cli import train_command
from stdo.train.data import PatchSampler
from stdo.video import Crop, upscale_bicubic


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
    sampler = PatchSampler(hr, lr, grid, 2, np.array([[2, 0, 0], [0, 1, 1]]), crop=8, augment=False, radius=1)
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
def run(tmp_path_factory, bikes):
    path = tmp_path_factory.mktemp("server") / "run"
    cluster(ClusterOptions(source=bikes, run=path, scale=2, grid=(4, 2), chunks=2, margin=6, frames=6,
                           crop=Crop(160, 96, 240, 96), stream=StreamOptions(lossless=True)))
    return path


def test_mfwdsr_reads_three_frames_and_beats_bicubic(cli, run):
    code, _, err, _ = cli(train_command, [run, "--method", "mfwdsr", "--radius", "1", "--steps", "300", "--blocks", "2",
                                          "--units", "8", "--batch", "8", "--crop", "16", "-q"])
    assert code == 0, err
    report = json.loads((run / "models/mfwdsr/report.json").read_text())
    assert report["radius"] == 1 and report["model"]["frames"] == 3
    assert report["psnr_video"] > report["bicubic"]["psnr_video"]  # the 480-step bar: test_train
    code, _, err, _ = cli(export_command, [run, "--method", "mfwdsr"])  # not a phone model
    assert code == 2 and "reads 3 frames at once" in err and len(err.strip().splitlines()) == 1


def test_a_window_longer_than_the_clip_is_one_line_exit_2(cli, run, tmp_path):
    code, _, err, _ = cli(train_command, [run, "--method", "mfwdsr", "--radius", "3", "--steps", "10", "-q"])
    assert code == 2 and "--radius 3 needs 7 frames, the RUN has 6" in err and len(err.strip().splitlines()) == 1
