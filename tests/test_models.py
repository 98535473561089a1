import pytest
import torch
import torch.nn.functional as F

from stdo.metrics import psnr
from stdo.models import WDSR, WDSRConfig, create_model, fold_weight_norm, list_models, load_wdsr
from stdo.models.cafm import CaFMWDSR

SMALL = WDSRConfig(scale=2, num_blocks=2, num_residual_units=8)


def test_registry_and_stdo_default_size():
    assert {"wdsr_a", "wdsr_a_mobile"} <= set(list_models())
    stdo = create_model("wdsr_a", scale=4)
    assert (stdo.config.num_blocks, stdo.config.num_residual_units, stdo.config.width_multiplier) == (16, 32, 4.0)
    assert sum(p.numel() for p in stdo.parameters()) == 1_203_312
    with pytest.raises(KeyError, match="unknown model"):
        create_model("edsr")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_new_model_starts_as_bicubic(scale):
    model = WDSR(WDSRConfig(scale=scale, num_blocks=2, num_residual_units=8)).eval()
    x = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        y = model(x)
    ref = F.interpolate(x, scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)
    b = 2 * scale + 2  # inside: exact; at the frame border the skip conv repeats edge pixels, where torch's
    torch.testing.assert_close(y[..., b:-b, b:-b], ref[..., b:-b, b:-b], atol=1e-5, rtol=0)
    assert float(psnr(y * 255, ref * 255).min()) > 45  # bicubic renormalizes its taps instead: close, not equal
    # (zero padding, as in the WDSR release, gave 33-35 dB on these 20x24 noise frames)


def test_receptive_radius_is_what_it_says():
    torch.manual_seed(0)
    model = WDSR(SMALL)
    for p in model.parameters():  # random weights everywhere, so every path carries signal
        p.data.normal_(0, 0.2)
    x = torch.rand(1, 3, 31, 31)
    y0 = model(x)
    r = model.receptive_radius
    far, near = x.clone(), x.clone()
    far[..., 15, 15 + r + 1] += 1  # just outside the radius of LR pixel (15, 15)
    near[..., 15, 15 + r] += 1  # on its edge
    with torch.no_grad():
        assert torch.equal(model(far)[..., 30:32, 30:32], y0[..., 30:32, 30:32].detach())
        assert not torch.equal(model(near)[..., 30:32, 30:32], y0[..., 30:32, 30:32].detach())


def test_own_checkpoint_roundtrip_and_folded_weights():
    torch.manual_seed(1)
    model = WDSR(SMALL).eval()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)  # as after training: the body no longer zero
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        y = model(x)
        assert torch.allclose(load_wdsr(model.state_dict()).eval()(x), y, atol=1e-6)
        plain = fold_weight_norm(load_wdsr(model.state_dict()))
        assert all(not k.endswith(("original0", "original1")) for k in plain.state_dict())
        assert torch.allclose(plain(x), y, atol=1e-5)
        assert torch.allclose(load_wdsr(plain.state_dict()).eval()(x), y, atol=1e-5)


def test_cafm_folds_into_plain_models_per_chunk():
    torch.manual_seed(2)
    model = CaFMWDSR(SMALL, num_chunks=3)
    for p in model.parameters():
        p.data.normal_(0.5, 0.3)  # backbone and modulation away from their starting points
    x = torch.rand(3, 3, 12, 12)
    ids = torch.tensor([0, 1, 2])
    with torch.no_grad():
        joint = model(x, ids)
        for k in range(3):
            torch.testing.assert_close(model.fold(k)(x[k : k + 1]), joint[k : k + 1], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(model.fold(0)(x[:1]), model.fold(1)(x[:1]))
        model(x, ids)  # folding leaves the joint model usable


def test_mixed_precision_keeps_the_picture_in_fp32():
    """Under bf16 autocast only the residual blocks run in bf16: a new model is still bicubic to fp32 precision."""
    model = WDSR(SMALL).eval()
    x = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=0)  # bf16 in the skip path would be off by ~1e-3
