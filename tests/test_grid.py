import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from stdo.errors import StdoError
from stdo.grid import Grid, edges, parse_grid, patch_means, split, stitch


@st.composite
def grids(draw):
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    return Grid(h, w, draw(st.integers(1, h)), draw(st.integers(1, w)), draw(st.integers(0, 12)))


@settings(max_examples=150, deadline=None)
@given(grid=grids(), t=st.integers(1, 3), c=st.integers(1, 3))
def test_stitch_of_split_is_identity(grid, t, c):
    x = np.random.default_rng(0).integers(0, 256, (t, c, grid.height, grid.width), dtype=np.uint8)
    windows = split(x, grid)
    assert windows.shape[-2:] == grid.window_shape
    np.testing.assert_array_equal(stitch(windows, grid), x)


@settings(max_examples=60, deadline=None)
@given(grid=grids(), scale=st.integers(1, 4))
def test_stitch_of_upscaled_windows_is_upscaled_frame(grid, scale):
    """Nearest-neighbour upscaling is local: stitched windows equal the upscaled frame, any margin."""
    x = torch.rand(2, 3, grid.height, grid.width)
    up = lambda a: a.repeat_interleave(scale, -1).repeat_interleave(scale, -2)  # noqa: E731
    out = stitch(up(split(x, grid)), grid, scale)
    torch.testing.assert_close(out, up(x), rtol=0, atol=0)


@given(length=st.integers(1, 5000), parts=st.integers(1, 200))
def test_edges_cover_everything_with_near_equal_parts(length, parts):
    if parts > length:
        return
    e = edges(length, parts)
    assert e[0] == 0 and e[-1] == length
    sizes = np.diff(e)
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1


def _net(radius_convs: int, scale: int) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1)]
    for _ in range(radius_convs - 2):
        layers += [nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)]
    layers += [nn.ReLU(), nn.Conv2d(8, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
    return nn.Sequential(*layers).eval()


@settings(max_examples=25, deadline=None)
@given(h=st.integers(8, 48), w=st.integers(8, 48), rows=st.integers(1, 5), cols=st.integers(1, 5),
       extra=st.integers(0, 3), scale=st.sampled_from([2, 3, 4]))
def test_per_patch_inference_equals_whole_frame_when_margin_covers_receptive_field(h, w, rows, cols, extra, scale):
    radius = 4  # four 3x3 convs
    net = _net(radius, scale)
    grid = Grid(h, w, rows, cols, margin=radius + extra)
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        whole = net(x)
        windows = split(x, grid)
        batch = windows.reshape(-1, 3, *grid.window_shape)
        out = net(batch).reshape(2, rows, cols, 3, *(s * scale for s in grid.window_shape))
    torch.testing.assert_close(stitch(out, grid, scale), whole, rtol=1e-5, atol=1e-5)


def test_too_small_margin_shows_seams():
    """The property above is not vacuous: with no margin, patch borders differ from whole-frame output."""
    net = _net(4, 2)
    grid = Grid(32, 32, 2, 2, margin=0)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = net(split(x, grid).reshape(-1, 3, 16, 16)).reshape(1, 2, 2, 3, 32, 32)
        assert (stitch(out, grid, 2) - net(x)).abs().max() > 1e-3


def test_uneven_split_keeps_every_pixel_and_pads_windows_to_one_shape():
    grid = Grid(68, 160, 5, 10, margin=3)  # 68 / 5 is uneven
    assert list(grid.row_edges) == [0, 13, 27, 40, 54, 68]
    assert grid.patch_shape == (14, 16) and grid.smallest_patch == (13, 16)
    assert grid.window_shape == (20, 22)
    assert grid.patch_pixels().sum() == 68 * 160
    ys, xs = grid.window_starts
    assert ys[0] == 0 and ys[-1] + 20 <= 68 and xs[-1] + 22 == 160


def test_window_never_exceeds_frame():
    grid = Grid(10, 12, 2, 2, margin=50)
    assert grid.window_shape == (10, 12)


def test_patch_means_matches_loop():
    grid = Grid(17, 23, 3, 4)
    m = np.random.default_rng(1).random((2, 17 * 2, 23 * 2))
    got = patch_means(m, grid, scale=2)
    for r in range(3):
        for c in range(4):
            ys, xs = grid.row_edges[r : r + 2] * 2, grid.col_edges[c : c + 2] * 2
            np.testing.assert_allclose(got[:, r, c], m[:, ys[0] : ys[1], xs[0] : xs[1]].mean((1, 2)))


def test_parse_grid_and_bad_grids():
    assert parse_grid("10x5") == (10, 5)
    for bad in ("10", "0x5", "ax5", "10x-1"):
        with pytest.raises(StdoError, match="COLSxROWS"):
            parse_grid(bad)
    with pytest.raises(StdoError, match="finer than"):
        Grid(4, 100, rows=5, cols=2)
