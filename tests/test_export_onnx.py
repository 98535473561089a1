"""ONNX export of trained-size WDSR models, checked by onnx.checker and run by onnxruntime."""

import sys

import numpy as np
import pytest
import torch

from stdo.errors import StdoError
from stdo.grid import Grid, split
from stdo.infer import upscale_batch
from stdo.metrics import psnr
from stdo.models import WDSR, WDSRConfig, fold_weight_norm
from stdo.resample import downscale_bicubic

pytest.importorskip("onnxruntime")
from stdo.export.onnx import export_onnx, quantize_onnx_int8  # noqa: E402
from stdo.runtimes.onnx import OnnxRunner  # noqa: E402

CONFIG = WDSRConfig(scale=2, num_blocks=2, num_residual_units=8)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = WDSR(CONFIG)
    for p in m.body[1:].parameters():  # as after training: the body contributes
        p.data.add_(torch.randn_like(p) * 0.02)
    return fold_weight_norm(m).eval()


def test_fp32_onnx_matches_torch_at_any_shape(model, tmp_path):
    path = export_onnx(model, tmp_path / "m.onnx")
    runner = OnnxRunner(path)
    for shape in [(1, 3, 24, 24), (5, 3, 37, 20)]:
        x = torch.rand(shape)
        with torch.no_grad():
            ref = model(x)
        out = runner(x)
        assert out.shape == ref.shape
        assert float(psnr(out * 255, ref * 255).min()) >= 100  # the bar for fp32 artifacts
    assert not list(tmp_path.glob("*.tmp*"))


def test_int8_calibrated_on_the_clip_is_smaller_and_close(model, tmp_path, bikes_frames):
    lr = downscale_bicubic(bikes_frames, 2)
    grid = Grid(lr.shape[1], lr.shape[2], 2, 4, margin=4)
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255
    windows = split(x, grid).reshape(-1, 3, *grid.window_shape)
    fp32 = export_onnx(model, tmp_path / "m.onnx")
    int8 = quantize_onnx_int8(fp32, tmp_path / "m_int8.onnx", [windows[i : i + 8].numpy() for i in range(0, 24, 8)])
    assert int8.stat().st_size < 0.7 * fp32.stat().st_size  # conv weights 4x smaller; a tiny model is mostly graph
    hr = torch.from_numpy(bikes_frames).permute(0, 3, 1, 2).float()
    chunks = np.zeros((len(lr), 2, 4), np.uint8)
    results = {}
    for name, runner in (("fp32", OnnxRunner(fp32)), ("int8", OnnxRunner(int8))):
        sr = (upscale_batch(x, grid, 2, chunks, [runner]) * 255).round()
        results[name] = float(psnr(sr, hr, shave=2).mean())
    assert results["fp32"] - 0.3 <= results["int8"] < results["fp32"] + 0.1, results  # the int8 bar


def test_missing_runtime_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: importing it fails
    with pytest.raises(StdoError, match="onnxruntime is not installed"):
        OnnxRunner(tmp_path / "m.onnx")
