"""Optical flow between neighbouring frames, and warping by it.

Flow comes from OpenCV's DIS (dense inverse search) on the luma of the frames: no pretrained
flow network is reachable here, and DIS needs no weights. Convention (OpenCV's): the flow
from frame a to frame b is a [h, w, 2] field (dx, dy) with a(y, x) ≈ b(y + dy, x + dx), so
`warp(b, flow)` pulls b onto a's pixel grid (backward warping).

Used by the recurrent VSR model (alignment of propagated features) and by the temporal
consistency figure of the server-side benchmark.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch
import torch.nn.functional as F

from stdo.errors import StdoError

def _dis(preset: str):
    try:
        import cv2
    except ImportError:
        raise StdoError("optical flow needs OpenCV: pip install 'stdo[server]' (opencv-python-headless)") from None
    code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
    return cv2.DISOpticalFlow_create(code)


def _luma(frame: np.ndarray) -> np.ndarray:
    """uint8 [h, w, 3] RGB -> uint8 [h, w] BT.601 luma."""
    y = frame[..., 0] * 0.299 + frame[..., 1] * 0.587 + frame[..., 2] * 0.114
    return np.ascontiguousarray(np.clip(y + 0.5, 0, 255).astype(np.uint8))


def neighbour_flows(frames: np.ndarray, preset: str = "medium", on_disk: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [T, h, w, 3] -> (forward, backward), each float32 [T-1, h, w, 2]:
    forward[t] is the flow from frame t to t+1, backward[t] from frame t+1 to t.

    on_disk: the fields go to memory-mapped temporary files (removed when the arrays are), so a long clip's
    flows (16 bytes per LR pixel per frame) do not have to fit in RAM."""
    dis = _dis(preset)
    t, h, w = len(frames), frames.shape[1], frames.shape[2]
    shape = (max(t - 1, 0), h, w, 2)
    if on_disk and t > 1:
        forward, backward = (np.memmap(tempfile.TemporaryFile(prefix="stdo-flow-"), np.float32, "w+", shape=shape)
                             for _ in range(2))
    else:
        forward, backward = np.empty(shape, np.float32), np.empty(shape, np.float32)
    previous = _luma(frames[0]) if t else None
    for i in range(t - 1):
        current = _luma(frames[i + 1])
        forward[i] = dis.calc(previous, current, None)
        backward[i] = dis.calc(current, previous, None)
        previous = current
    return forward, backward


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp x [N, C, h, w] by flow [N, 2, h, w] (dx, dy in pixels): out(y, x) = x(y + dy, x + dx),
    bilinear, the border repeated outside the frame."""
    n, _, h, w = x.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    gx = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1  # align_corners=True: -1 and 1 are the outer pixel centres
    gy = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def warp_error(frames: np.ndarray, flows_forward: np.ndarray, shave: int = 0) -> float:
    """Temporal-consistency figure: mean absolute error (0..255) between frame t and frame t+1 warped onto t by
    the given forward flows, over pixels whose flow stays inside the frame (shave: border pixels left out).

    Computed for SR frames with the HR frames' flow, and for the HR frames themselves: the HR figure is the
    floor (occlusions, light); an SR video that flickers or swims sits above it."""
    errors = []
    for t in range(len(frames) - 1):
        a = torch.from_numpy(np.ascontiguousarray(frames[t])).permute(2, 0, 1)[None].float()
        b = torch.from_numpy(np.ascontiguousarray(frames[t + 1])).permute(2, 0, 1)[None].float()
        flow = torch.from_numpy(flows_forward[t]).permute(2, 0, 1)[None]
        warped = warp(b, flow)
        h, w = a.shape[-2:]
        ys = torch.arange(h).view(h, 1) + flow[0, 1]
        xs = torch.arange(w).view(1, w) + flow[0, 0]
        valid = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
        if shave:
            border = torch.zeros(h, w, dtype=torch.bool)
            border[shave:h - shave, shave:w - shave] = True
            valid &= border
        diff = (warped - a).abs().mean(1)[0]
        errors.append(float(diff[valid].mean()) if valid.any() else 0.0)
    return float(np.mean(errors)) if errors else 0.0
