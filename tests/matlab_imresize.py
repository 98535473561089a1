"""MATLAB's imresize (bicubic, antialias on downscaling) written out in numpy, as a test reference.

MATLAB: cubic kernel with a = -0.5, kernel stretched by 1/scale when shrinking,
weights normalized per output pixel, symmetric padding at the borders, rounding to uint8.
"""

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _weights(n_in: int, n_out: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in input coordinates (1-based)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    w /= w.sum(1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])  # symmetric padding
    idx = mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    return w, idx


def imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """uint8 H×W×C -> uint8, resized by `scale` (e.g. 0.25)."""
    x = image.astype(np.float64)
    h, w = x.shape[:2]
    wy, iy = _weights(h, int(np.ceil(h * scale)), scale)
    x = np.einsum("ok,okc->oc", wy, x[iy].reshape(*iy.shape, -1)).reshape(len(wy), w, -1)
    wx, ix = _weights(w, int(np.ceil(w * scale)), scale)
    x = np.einsum("ok,hokc->hoc", wx, x[:, ix])
    return np.clip(np.round(x), 0, 255).astype(np.uint8)
