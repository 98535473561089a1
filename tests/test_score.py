import math

import numpy as np
import pytest
import torch
from torch import nn

from stdo.cluster.pipeline import load_general_model
from stdo.cluster.score import score_bicubic, score_dct, score_model
from stdo.errors import StdoError
from stdo.grid import Grid
from stdo.metrics import psnr
from stdo.models import WDSR, WDSRConfig
from stdo.resample import downscale_bicubic, upscale_bicubic


def test_bicubic_score_is_each_patch_psnr(bikes_frames):
    hr = bikes_frames[:, :96, :160]
    lr = downscale_bicubic(hr, 4)
    grid = Grid(24, 40, 3, 4)
    got = score_bicubic(hr, lr, grid, 4).scores
    up = upscale_bicubic(lr, 4)
    ref = torch.from_numpy(hr).permute(0, 3, 1, 2).float()
    for r in range(3):
        for c in range(4):
            ys = slice(grid.row_edges[r] * 4, grid.row_edges[r + 1] * 4)
            xs = slice(grid.col_edges[c] * 4, grid.col_edges[c + 1] * 4)
            np.testing.assert_allclose(got[:, r, c], psnr(up[..., ys, xs], ref[..., ys, xs]).numpy(), rtol=1e-5)
    assert got.dtype == np.float32 and got.shape == (6, 3, 4)


class _ReleaseBlock(nn.Module):
    """The WDSR/STDO release's block, built with the legacy weight_norm (weight_g / weight_v keys)."""

    def __init__(self, units, wide):
        super().__init__()
        wn = torch.nn.utils.weight_norm
        self.body = nn.Sequential(wn(nn.Conv2d(units, wide, 3, padding=1)), nn.ReLU(True), wn(nn.Conv2d(wide, units, 3, padding=1)))

    def forward(self, x):
        return self.body(x) + x


class _ReleaseWDSR(nn.Module):
    def __init__(self, scale, blocks, units, wide):
        super().__init__()
        wn = torch.nn.utils.weight_norm
        out = 3 * scale * scale
        self.body = nn.Sequential(wn(nn.Conv2d(3, units, 3, padding=1)), *[_ReleaseBlock(units, wide) for _ in range(blocks)],
                                  wn(nn.Conv2d(units, out, 3, padding=1)))
        self.skip = nn.Sequential(wn(nn.Conv2d(3, out, 5, padding=2)))
        self.shuf = nn.Sequential(nn.PixelShuffle(scale))

    def forward(self, x):
        x = x - 0.5
        return self.shuf(self.body(x) + self.skip(x)) + 0.5


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_general_scorer_loads_release_checkpoint(tmp_path, bikes_frames):
    torch.manual_seed(0)
    release = _ReleaseWDSR(scale=2, blocks=3, units=8, wide=32).eval()
    assert any(k.endswith("weight_g") for k in release.state_dict())
    path = tmp_path / "epoch-30.pth"
    torch.save({"epoch": 30, "model_state_dict": {"module." + k: v for k, v in release.state_dict().items()}}, path)

    model = load_general_model(path, scale=2)
    assert model.config == WDSRConfig(scale=2, num_blocks=3, num_residual_units=8, width_multiplier=4.0,
                                        skip_padding="zeros")  # the release padded its skip conv with zeros
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(model(x), release(x), rtol=1e-5, atol=1e-5)

    hr = bikes_frames[:2]
    lr = downscale_bicubic(hr, 2)
    grid = Grid(48, 80, 2, 4)
    scores = score_model(hr, lr, grid, 2, model).scores
    with torch.no_grad():
        sr = (release(torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255) * 255).round().clamp(0, 255)
    hr_t = torch.from_numpy(hr).permute(0, 3, 1, 2).float()
    np.testing.assert_allclose(scores[:, 0, 0], psnr(sr[..., :48, :40], hr_t[..., :48, :40]).numpy(), rtol=1e-4)


def test_general_scorer_refuses_bad_checkpoints(tmp_path):
    with pytest.raises(StdoError, match="does not exist"):
        load_general_model(tmp_path / "none.pt", 4)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x04garbage")
    with pytest.raises(StdoError, match="not a WDSR checkpoint"):
        load_general_model(junk, 4)
    x2 = tmp_path / "x2.pt"
    torch.save(WDSR(WDSRConfig(scale=2, num_blocks=1, num_residual_units=4)).state_dict(), x2)
    with pytest.raises(StdoError, match="x2 model but `scale` is 4"):
        load_general_model(x2, 4)


def test_dct_scores_busy_and_moving_patches_as_harder():
    rng = np.random.default_rng(0)
    lr = np.full((4, 32, 64, 3), 128, np.uint8)
    lr[:, :, 32:] = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)  # right half: texture, static
    lr[:, :16, :32] = np.arange(4)[:, None, None, None] * 60  # top-left: flat but flickering
    s = score_dct(lr, Grid(32, 64, 2, 2)).scores
    flat_static, flicker, texture = s[:, 1, 0], s[:, 0, 0], s[:, :, 1]
    assert (flat_static > flicker).all() and (flat_static[:, None] > texture).all()
    assert flat_static.min() == pytest.approx(10 * math.log10(255**2))


@pytest.mark.parametrize("window", [1, 4, 7, 20])
def test_dct_scores_a_block_at_a_time_as_the_whole_clip(window):
    """Memory bounded by the block, not the clip: blocks of 3 frames (with the frames their time windows reach)
    score exactly as one block of all 11."""
    lr = np.random.default_rng(0).integers(0, 255, (11, 32, 64, 3), dtype=np.uint8)
    blocks, whole = (score_dct(lr, Grid(32, 64, 2, 2), batch=b, window=window) for b in (3, 1000))
    assert np.array_equal(blocks.scores, whole.scores) and np.array_equal(blocks.features, whole.features)
