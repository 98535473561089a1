"""Training samples for the video models: short sequences of crops (brvsr) and frame pairs at any scale (vinr).

Both draw a patch (frame, row, col) of the RUN, then a crop around it as PatchSampler does (a
window of crop + context LR pixels inside the frame, the loss on the crop only), taken from
several frames at once:

- SequenceSampler: the same crop of `length` consecutive frames around the patch's frame, with
  the crops of the optical flows between them (stdo.flow, computed once over the whole clip).
  Augmented by the square's 8 symmetries, applied to the flows too (a mirrored flow changes
  sign, a transposed one swaps its components), and by playing the sequence backwards (the
  forward and backward flows swap).
- PairSampler: frames t0 and t0+g (g = 1, or 2 to learn the frame between), queried at the time
  of frame t0+k (t = k/g), augmented by the two mirror flips and by swapping the frames (t -> 1 - t),
  never transposed (the clip's motion keeps its axes). Three batches in four ask for the RUN's own
  scale, one for a scale drawn in [1, scale] with the HR crop resized to it (bicubic, antialiased):
  what teaches the decoder to answer at any scale. One scale per batch (a batch is one tensor). Its
  evaluation samples (what decides the kept state) are the clip's own frames at the RUN's scale.

Each returns (inputs, hr, mask) with inputs the model's arguments, as the training loop expects.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stdo.train.data import ClipFrames, _orient, crop_and_window, place_windows


def _to_float(a: np.ndarray) -> torch.Tensor:
    """uint8 [..., h, w, c] -> float [..., c, h, w] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(a)).movedim(-1, -3).float().div_(255).contiguous()


class _Windows:
    """Where the crops of a batch sit: the shared geometry of both samplers."""

    def __init__(self, frames: ClipFrames, patches: np.ndarray, crop: int, augment: bool, transpose: bool = True) -> None:
        if len(patches) == 0:
            raise ValueError("no patches to sample from")
        self.hr, self.lr, self.grid, self.scale = frames.hr, frames.lr, frames.grid, frames.scale
        self.patches = np.asarray(patches, np.int64)
        self.crop, self.window = crop_and_window(frames.grid, crop, frames.grid.margin)
        self.augment, self.transpose = augment, transpose

    def __len__(self) -> int:
        return len(self.patches)

    def place(self, batch: int, rng: np.random.Generator):
        """(frames, window top-left y/x, crop offset in the HR window y/x, symmetry flags) of `batch` samples."""
        t, r, c = self.patches[rng.integers(0, len(self.patches), batch)].T
        wy, wx, oy, ox = place_windows(self.grid, r, c, self.crop, self.window, self.scale, rng)
        flags = rng.integers(0, 2, (batch, 4)).astype(bool) if self.augment else np.zeros((batch, 4), bool)
        flags[:, 2] &= self.transpose
        return t, wy, wx, oy, ox, flags

    def mask(self, oy: int, ox: int, flags: np.ndarray) -> np.ndarray:
        ws, ps = self.window * self.scale, self.crop * self.scale
        inside = np.zeros((ws, ws), np.float32)
        inside[oy : oy + ps, ox : ox + ps] = 1
        return _orient(inside, flags)


def _orient_flow(flow: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """A flow field [h, w, 2] (dx, dy) under the symmetry `flags` (as _orient): its vectors turn with the image."""
    out = _orient(flow, flags).copy()
    if flags[0]:
        out[..., 0] *= -1
    if flags[1]:
        out[..., 1] *= -1
    if flags[2]:
        out = out[..., ::-1]
    return out


class SequenceSampler(_Windows):
    """((frames [B,L,3,w,w], forward flows [B,L-1,2,w,w], backward flows), hr [B,L,3,ws,ws], mask [B,L,1,ws,ws])."""

    def __init__(self, frames: ClipFrames, flows: tuple[np.ndarray, np.ndarray], patches: np.ndarray, length: int = 5,
                 crop: int = 32, augment: bool = True) -> None:
        super().__init__(frames, patches, crop, augment)
        self.forward_flows, self.backward_flows = flows
        self.length = min(length, len(frames.lr))

    def sample(self, batch: int, rng: np.random.Generator):
        t, wy, wx, oy, ox, flags = self.place(batch, rng)
        n, w, s = self.length, self.window, self.scale
        first = np.clip(t - rng.integers(0, n, batch), 0, len(self.lr) - n)  # the patch's frame is in the sequence
        lr = np.empty((batch, n, w, w, 3), np.uint8)
        hr = np.empty((batch, n, w * s, w * s, 3), np.uint8)
        mask = np.empty((batch, n, w * s, w * s, 1), np.float32)
        fwd = np.zeros((batch, max(n - 1, 1), w, w, 2), np.float32)
        bwd = np.zeros_like(fwd)
        for i in range(batch):
            f = flags[i]
            frames = range(first[i], first[i] + n)
            ys, xs = slice(wy[i], wy[i] + w), slice(wx[i], wx[i] + w)
            hys, hxs = slice(wy[i] * s, (wy[i] + w) * s), slice(wx[i] * s, (wx[i] + w) * s)
            for k, tk in enumerate(frames):
                lr[i, k] = _orient(self.lr[tk, ys, xs], f)
                hr[i, k] = _orient(self.hr[tk, hys, hxs], f)
            mask[i, :, ..., 0] = self.mask(oy[i], ox[i], f)
            for k in range(n - 1):
                fwd[i, k] = _orient_flow(self.forward_flows[first[i] + k, ys, xs], f)
                bwd[i, k] = _orient_flow(self.backward_flows[first[i] + k, ys, xs], f)
            if f[3] and n > 1:  # played backwards: frame order reversed, forward and backward flows swapped
                lr[i], hr[i] = lr[i, ::-1].copy(), hr[i, ::-1].copy()
                fwd[i, : n - 1], bwd[i, : n - 1] = bwd[i, n - 2 :: -1].copy(), fwd[i, n - 2 :: -1].copy()
        flow = lambda a: torch.from_numpy(a[:, : max(n - 1, 0)]).movedim(-1, -3).contiguous()  # noqa: E731
        return (_to_float(lr), flow(fwd), flow(bwd)), _to_float(hr), torch.from_numpy(mask).movedim(-1, -3).contiguous()

    evaluation_sample = sample  # brvsr's task is its training task


class PairSampler(_Windows):
    """((pairs [B,6,w,w], times [B], out_h, out_w), hr [B,3,out_h,out_w], mask [B,1,out_h,out_w])."""

    def __init__(self, frames: ClipFrames, patches: np.ndarray, crop: int = 32, augment: bool = True) -> None:
        # never transposed: a clip's motion has its axes (a pan along x), and the sub-pixel detail a pair of
        # frames gives is learnt for one axis at a time; with transposed crops half of a short budget went to an
        # orientation the clip never plays in (one seed of the tests' 480 steps learnt +5.3 dB on transposed frames
        # and +0.14 dB on the clip itself)
        super().__init__(frames, patches, crop, augment, transpose=False)

    def sample(self, batch: int, rng: np.random.Generator):
        return self._sample(batch, rng, training=True)

    def evaluation_sample(self, batch: int, rng: np.random.Generator):
        """Frames at their own time (t = 0 or 1) at the RUN's scale: what the report scores, so what decides the
        kept state (the training mix's in-between frames and other scales are a harder, other task)."""
        return self._sample(batch, rng, training=False)

    def _sample(self, batch: int, rng: np.random.Generator, training: bool):
        t, wy, wx, oy, ox, flags = self.place(batch, rng)
        w, s, last = self.window, self.scale, len(self.lr) - 1
        between = 0.25 if training else 0.0
        gap = np.where(rng.random(batch) < between, 2, 1) if last >= 2 else np.ones(batch, np.int64)
        gap = np.minimum(gap, max(last, 0))
        step = rng.integers(0, gap + 1)  # the target is frame first + step, at time step / gap
        first = np.clip(t - step, 0, last - gap)
        pairs = np.empty((batch, w, w, 6), np.uint8)
        hr = np.empty((batch, w * s, w * s, 3), np.uint8)
        mask = np.empty((batch, w * s, w * s), np.float32)
        for i in range(batch):
            f = flags[i]
            ys, xs = slice(wy[i], wy[i] + w), slice(wx[i], wx[i] + w)
            pairs[i, ..., :3] = _orient(self.lr[first[i], ys, xs], f)
            pairs[i, ..., 3:] = _orient(self.lr[first[i] + gap[i], ys, xs], f)
            hr[i] = _orient(self.hr[first[i] + step[i], wy[i] * s : (wy[i] + w) * s, wx[i] * s : (wx[i] + w) * s], f)
            mask[i] = self.mask(oy[i], ox[i], f)
            if f[3]:  # played backwards: the frames swap, the target's time is 1 - t
                pairs[i] = np.concatenate((pairs[i, ..., 3:], pairs[i, ..., :3]), -1)
        times = step / np.maximum(gap, 1)
        times = torch.from_numpy(np.where(flags[:, 3], 1 - times, times)).float()
        target, target_mask = _to_float(hr), torch.from_numpy(mask)[:, None]
        size = w * s
        if training and rng.random() < 0.25 and s > 1:  # another scale in [1, s]: HR resized to it (one scale per batch)
            size = max(w, int(round(w * rng.uniform(1.0, s))))
            target = F.interpolate(target, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
            target = target.clamp_(0, 1)
            target_mask = F.interpolate(target_mask, size=(size, size), mode="area").ge_(0.999).float()
        return (_to_float(pairs), times, size, size), target, target_mask
