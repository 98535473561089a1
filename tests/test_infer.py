import numpy as np
import torch
import torch.nn.functional as F

from stdo.grid import Grid
from stdo.infer import iter_upscaled, lr_batches, upscale_batch


def _nearest(offset: float):
    return lambda x: F.interpolate(x, scale_factor=2, mode="nearest") + offset


def test_each_patch_is_served_by_its_assigned_model():
    grid = Grid(20, 30, 2, 3, margin=2)
    x = torch.rand(2, 3, 20, 30) * 0.5
    model_map = np.random.default_rng(0).integers(0, 3, (2, 2, 3)).astype(np.uint8)
    out = upscale_batch(x, grid, 2, model_map, [_nearest(0.0), _nearest(0.1), _nearest(0.2)])
    base = F.interpolate(x, scale_factor=2, mode="nearest")
    for t in range(2):
        for r in range(2):
            for c in range(3):
                ys = slice(grid.row_edges[r] * 2, grid.row_edges[r + 1] * 2)
                xs = slice(grid.col_edges[c] * 2, grid.col_edges[c + 1] * 2)
                expected = base[t, :, ys, xs] + 0.1 * model_map[t, r, c]
                torch.testing.assert_close(out[t, :, ys, xs], expected)


def test_iter_upscaled_streams_all_frames_as_rounded_0_255():
    lr = np.random.default_rng(1).integers(0, 256, (5, 12, 16, 3), dtype=np.uint8)
    grid = Grid(12, 16, 2, 2, margin=1)
    seen = []
    for start, sr in iter_upscaled(lr_batches(lr, 2), grid, 2, np.zeros((5, 2, 2), np.uint8), [_nearest(0.0)]):
        assert sr.shape == (min(2, 5 - start), 3, 24, 32)
        assert torch.equal(sr, sr.round()) and sr.max() <= 255
        seen.append(start)
    assert seen == [0, 2, 4]
    np.testing.assert_array_equal(sr[-1].permute(1, 2, 0).numpy()[::2, ::2], lr[4])
