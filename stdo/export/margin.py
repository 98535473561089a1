"""The inference plan's margin: the least LR context per window that leaves the output as it is.

With a margin of the models' receptive radius, a window's kept pixels equal the model run on the
whole frame. The far end of a receptive field carries little weight, though, and every pixel of
margin costs: at 1080p with two interleaved chunks the plan runs 1.76x the frame's pixels at
wdsr_a_mobile's radius (10) and 1.28x at margin 4, where benchmarks/plan_margin.py found the
output of trained models unchanged to the last 8-bit level.

`choose_margin` measures it on the clip: the fp32 models over a few frames with the plan the
bundle will ship at margin 0, 1, 2, ... (its window shapes chosen for that margin); it keeps the
first margin whose frames differ from the exact ones (margin = receptive radius) by a mean squared
error of at most `tolerance` times the exact frames' own error against HR. With the default 0.001
that moves PSNR against HR by under 0.005 dB. (Measuring one window per patch instead, and
shipping larger windows, let one trained pair of models exceed the tolerance by 7%.)
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from stdo.infer import upscale_planned
from stdo.metrics import PEAK, mse
from stdo.plan import base_shape, make_plan
from stdo.resample import as_nchw
from stdo.rundir import Run

TOLERANCE = 1e-3


ShapesFor = Callable[[int], tuple[tuple[int, int], ...]]  # a margin -> the plan's window shapes at it


@torch.no_grad()
def choose_margin(run: Run, model_map: np.ndarray, models: Sequence[nn.Module], frames: np.ndarray,
                  shapes_for: ShapesFor | None = None, tolerance: float = TOLERANCE) -> dict:
    """{margin, receptive_radius, tolerance, checks: [{margin, mse_vs_exact}]} for the plan of these models over the
    RUN's decoded LR `frames` whose window shapes at a margin are `shapes_for(margin)` (default: one window per
    patch)."""
    hr, lr, grid, scale = run.hr, run.lr, run.grid, run.scale
    shapes_for = shapes_for or (lambda m: (base_shape(grid, m),))

    def frames_at(margin: int) -> torch.Tensor:
        """SR frames (float, 0..255) of `frames` with the plan of window shapes `shapes_for(margin)`."""
        plan = make_plan(model_map[frames], grid, margin, shapes_for(margin))
        out = []
        for i, t in enumerate(frames):
            x = as_nchw(lr[t : t + 1]).float().div_(255)
            out.append(upscale_planned(x, plan.frame_runs(i), plan.shapes, scale, models, first_frame=i).mul_(PEAK))
        return torch.cat(out)

    radius = max(m.receptive_radius for m in models)
    exact = frames_at(radius)
    own = float(mse(exact.round(), as_nchw(hr[frames]).float(), shave=scale).mean())
    checks = []
    margin = radius
    for m in range(radius):
        error = float(mse(frames_at(m), exact).mean())
        checks.append({"margin": m, "mse_vs_exact": error})
        if error <= tolerance * own:
            margin = m
            break
    return {"margin": margin, "receptive_radius": radius, "tolerance": tolerance, "mse_exact_vs_hr": own,
            "checks": checks}
