"""stdo-views as library calls: synth (a scene with exact geometry), order, upscale and eval of multi-view sets,
one module each in stdo.views.stages.

The path from views to a 3D trainer, as SequenceMatters takes it, with stdo's models as upscalers:

  order SCENE -> ORDER/      sequences.json (the sequences, and which output is kept for each view)
                             frames/ (every sequence's views one after another: a frame folder)
  stdo-cluster ORDER/frames RUN --lossless ...; stdo-train RUN --method M      (any method; brvsr = VSR)
  upscale ORDER --run RUN --method M -> OUT/   the SR views in SCENE's own layout, intrinsics scaled
  eval OUT --reference HR_SCENE               per-view PSNR/SSIM and multi-view consistency

Each output folder is written whole in a temp folder beside it and moved in place at the end; an
existing one is replaced only with --overwrite and only if stdo-views wrote it (a marker file).
"""

from stdo.views.stages import read_order
from stdo.views.stages.evaluate import EvalOptions, evaluate_views
from stdo.views.stages.order import OrderOptions, order_scene
from stdo.views.stages.synth import SynthOptions, make_synthetic
from stdo.views.stages.upscale import UpscaleViewsOptions, upscale_views

__all__ = ["EvalOptions", "OrderOptions", "SynthOptions", "UpscaleViewsOptions", "evaluate_views", "make_synthetic",
           "order_scene", "read_order", "upscale_views"]
