import math

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate

from stdo.grid import Grid
from stdo.metrics import count_weighted_psnr, chunk_mse, mse, patch_mse, psnr, rgb_to_y, ssim, stdo_shave


def test_psnr_of_known_error():
    a = torch.zeros(1, 3, 10, 10)
    b = torch.full((1, 3, 10, 10), 5.0)
    assert psnr(a, b).item() == pytest.approx(10 * math.log10(255**2 / 25))


def test_shave_ignores_the_border():
    a = torch.zeros(2, 3, 12, 12)
    b = a.clone()
    b[..., :2, :] = 100  # only the top two rows differ
    assert mse(a, b, shave=2).tolist() == [0, 0]
    assert mse(a, b).min() > 0


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM written out with scipy filters (valid region), for one 2-D luma image."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    f = lambda z: correlate(z, w, mode="constant")[5:-5, 5:-5]  # noqa: E731
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean())


def test_ssim_matches_reference_and_orders_quality(bikes_frames):
    hr = torch.from_numpy(bikes_frames[:1]).permute(0, 3, 1, 2).float()
    noisy = (hr + torch.randn_like(hr, generator=torch.Generator().manual_seed(0)) * 8).clamp(0, 255)
    noisier = (hr + torch.randn_like(hr, generator=torch.Generator().manual_seed(0)) * 25).clamp(0, 255)
    ref = _ssim_reference(rgb_to_y(hr)[0, 0].double().numpy(), rgb_to_y(noisy)[0, 0].double().numpy())
    assert ssim(hr, noisy).item() == pytest.approx(ref, abs=1e-5)
    assert ssim(hr, hr).item() == pytest.approx(1.0)
    assert 1.0 > ssim(hr, noisy).item() > ssim(hr, noisier).item()


def test_patch_mse_with_stdo_shave_matches_a_loop():
    grid = Grid(20, 30, 2, 3)
    scale = 2
    rng = torch.Generator().manual_seed(0)
    sr, hr = torch.rand(2, 3, 40, 60, generator=rng) * 255, torch.rand(2, 3, 40, 60, generator=rng) * 255
    shave = stdo_shave(scale)
    got = patch_mse(sr, hr, grid, scale, shave)
    for r in range(2):
        for c in range(3):
            y0, y1 = grid.row_edges[r] * scale, grid.row_edges[r + 1] * scale
            x0, x1 = grid.col_edges[c] * scale, grid.col_edges[c + 1] * scale
            ps, ph = sr[:, :, y0:y1, x0:x1], hr[:, :, y0:y1, x0:x1]
            np.testing.assert_allclose(got[:, r, c], mse(ps, ph, shave).numpy(), rtol=1e-5)


def test_count_weighted_aggregation():
    mses, counts = np.array([4.0, 1.0]), np.array([1, 3])
    assert count_weighted_psnr(mses, counts) == pytest.approx(10 * math.log10(255**2 / ((4 + 3) / 4)))
    chunks = np.array([[[0, 1], [1, 1]]])
    per_patch = np.array([[[4.0, 1.0], [1.0, 1.0]]])
    got_mse, got_counts = chunk_mse(per_patch, chunks, 2)
    np.testing.assert_allclose(got_mse, [4.0, 1.0])
    assert got_counts.tolist() == [1, 3]


def test_stdo_protocol_and_whole_frame_psnr_differ_by_their_shaves():
    grid = Grid(24, 24, 2, 2)
    hr = torch.rand(1, 3, 96, 96) * 255
    sr = hr.clone()
    sr[..., 46:50, :] += 50  # an error band along the patch seam: the STDO shave hides it, the frame PSNR does not
    chunks = np.zeros((1, 2, 2), np.uint8)
    assert count_weighted_psnr(*chunk_mse(patch_mse(sr, hr, grid, 4, stdo_shave(4)), chunks, 1)) > 100  # STDO's
    assert float(psnr(sr, hr, shave=4).mean()) < 40  # the whole frame's, as training's evaluation reports it
