"""Quality metrics: MSE/PSNR with shave, SSIM, and the STDO per-patch protocol.

Images are torch float tensors [N, C, H, W] with values in 0..255. PSNR comes in two
kinds that are never mixed: RGB PSNR (`psnr`, all three channels) and Y-PSNR (`psnr_y`, the
BT.601 luma as SR papers report it). Two numbers are reported for a video:

- whole-frame PSNR on stitched frames (what a viewer sees), border shave = scale,
  averaged over frames;
- the STDO protocol: per-patch MSE with a shave of scale+4 on each side of every HR
  patch, aggregated over chunks by patch count:
  psnr = -10·log10(Σ n_i·mse_i / Σ n_i) (for 0..255 data, 10·log10(255² / that)).
"""

from __future__ import annotations

import numpy as np
import torch

from stdo.grid import Grid, patch_sums

PEAK = 255.0


def stdo_shave(scale: int) -> int:
    """The shave of the STDO protocol for each HR patch."""
    return scale + 4


def min_patch(scale: int) -> int:
    """The smallest patch side, in LR pixels, a grid may have at x`scale`: each HR patch keeps pixels after the
    STDO protocol's shave (stdo-cluster refuses finer grids, and a bundle's reader with them)."""
    return 2 * stdo_shave(scale) // scale + 1


def _shaved(x: torch.Tensor, shave: int) -> torch.Tensor:
    return x[..., shave : x.shape[-2] - shave, shave : x.shape[-1] - shave] if shave else x


def mse(a: torch.Tensor, b: torch.Tensor, shave: int = 0) -> torch.Tensor:
    """Per-image mean squared error, [N]."""
    d = _shaved(a, shave).double() - _shaved(b, shave).double()
    return d.pow(2).flatten(1).mean(1)


def psnr_from_mse(value, peak: float = PEAK):
    """PSNR in dB; a zero MSE is clamped to 1e-10 (about 148 dB for 8-bit data)."""
    if isinstance(value, torch.Tensor):
        return 10 * torch.log10(peak**2 / value.clamp_min(1e-10))
    return 10 * np.log10(peak**2 / np.maximum(value, 1e-10))


def psnr(a: torch.Tensor, b: torch.Tensor, shave: int = 0) -> torch.Tensor:
    """Per-image PSNR in dB, [N]."""
    return psnr_from_mse(mse(a, b, shave))


def psnr_y(a: torch.Tensor, b: torch.Tensor, shave: int = 0) -> torch.Tensor:
    """Per-image Y-PSNR in dB, [N]: PSNR of the BT.601 luma (16..235, peak 255), as SR papers report."""
    return psnr(rgb_to_y(a.float()), rgb_to_y(b.float()), shave)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of 0..255 RGB [N, 3, H, W] -> [N, 1, H, W] (16..235), as SR papers compute SSIM."""
    w = x.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255.0
    return 16.0 + (x * w).sum(1, keepdim=True)


def _gaussian_taps(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    return (g / g.sum()).float()


def _gaussian_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 2-D Gaussian over [..., H, W], valid region only (sums of shifted slices:
    faster on CPU than a one-channel conv2d)."""
    n = len(taps)
    w = x.shape[-1] - n + 1
    x = sum(taps[i] * x[..., i : i + w] for i in range(n))
    h = x.shape[-2] - n + 1
    return sum(taps[i] * x[..., i : i + h, :] for i in range(n))


def ssim(a: torch.Tensor, b: torch.Tensor, shave: int = 0) -> torch.Tensor:
    """Per-image SSIM on the luma (Wang et al. 2004: 11x11 Gaussian, sigma 1.5, valid region), [N].

    float32 and a separable filter for speed; the (co)variances are computed on data
    centred at 128 so that E[x²] - E[x]² does not cancel away float32 precision.
    """
    x, y = rgb_to_y(_shaved(a, shave).float()) - 128, rgb_to_y(_shaved(b, shave).float()) - 128
    taps = _gaussian_taps().to(x.device)
    f = lambda z: _gaussian_filter(z, taps)  # noqa: E731
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    mx, my = mx + 128, my + 128
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).double().mean(1)


def squared_error_map(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-pixel squared error averaged over channels: [N, H, W] float32 numpy."""
    return torch.sub(a.float(), b).square_().mean(1).numpy()  # b may stay uint8: promoted on the fly


def interior_mask(grid: Grid, scale: int, shave: int) -> np.ndarray:
    """[s·H, s·W] mask that is 1 inside every HR patch less `shave` pixels on each side."""
    def axis_mask(e: np.ndarray) -> np.ndarray:
        m = np.zeros(e[-1], np.float32)
        for lo, hi in zip(e[:-1], e[1:]):
            m[lo + shave : max(lo + shave, hi - shave)] = 1
        return m

    return np.outer(axis_mask(grid.row_edges * scale), axis_mask(grid.col_edges * scale))


def patch_mse(sr: torch.Tensor, hr: torch.Tensor, grid: Grid, scale: int, shave: int = 0) -> np.ndarray:
    """MSE of every HR patch, each shaved by `shave` on its sides: [N, rows, cols] float64."""
    se = squared_error_map(sr, hr)
    if not shave:
        return patch_sums(se, grid, scale) / grid.patch_pixels(scale)
    mask = interior_mask(grid, scale, shave)
    counts = patch_sums(mask[None], grid, scale)[0]
    if (counts == 0).any():
        raise ValueError(f"patches of grid {grid.cols}x{grid.rows} at x{scale} vanish under a shave of {shave}")
    return patch_sums(se * mask, grid, scale) / counts


def chunk_mse(patch_mses: np.ndarray, chunks: np.ndarray, num_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean patch MSE of each chunk and its patch count: ([k] float64, [k] int64)."""
    counts = np.bincount(chunks.ravel(), minlength=num_chunks)
    sums = np.bincount(chunks.ravel(), weights=patch_mses.ravel(), minlength=num_chunks)
    return sums / np.maximum(counts, 1), counts


def count_weighted_psnr(chunk_mses: np.ndarray, counts: np.ndarray) -> float:
    """The STDO aggregate: PSNR of the count-weighted mean of per-chunk MSE."""
    counts = np.asarray(counts, np.float64)
    return float(psnr_from_mse(float((np.asarray(chunk_mses) * counts).sum() / counts.sum())))
