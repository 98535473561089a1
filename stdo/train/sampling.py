"""Which patches a training batch comes from: one group, or several chunks mixed.

`ChunkSampler` draws each batch from a list of groups (one PatchSampler per chunk),
choosing how many samples each group gives:

- uniform: in proportion to the group's patch count (every patch equally likely);
- error (jSTDO's data-aware rule): in proportion to count x current error, where a
  group's error is an exponential moving average (0.9) of the L1 loss of its samples,
  mixed with `floor` (10%) of the uniform rule so no chunk is ever starved. Hard chunks
  whose loss stays high get more of the budget; chunks the model has learnt get less.
  Until a chunk has been seen it counts as the hardest; before any, sampling is uniform.

It also returns the group id of every sample (the chunk id a CaFM model modulates by).
"""

from __future__ import annotations

import numpy as np
import torch

from stdo.train.data import PatchSampler

WEIGHTINGS = ("uniform", "error")


class ChunkSampler:
    def __init__(self, groups: list[PatchSampler], weighting: str = "uniform", ids: list[int] | None = None,
                 floor: float = 0.1, momentum: float = 0.9) -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}")
        self.groups, self.weighting = groups, weighting
        self.ids = np.array(ids if ids is not None else range(len(groups)), np.int64)
        self.sizes = np.array([len(g) for g in groups], np.float64)
        self.errors = np.full(len(groups), np.nan)  # unknown until a group's first samples come back
        self.floor, self.momentum = floor, momentum

    def probabilities(self) -> np.ndarray:
        uniform = self.sizes / self.sizes.sum()
        if self.weighting == "uniform":
            return uniform
        if np.isnan(self.errors).all():
            return uniform
        known = np.where(np.isnan(self.errors), np.nanmax(self.errors), self.errors)  # unseen: as the hardest
        weighted = self.sizes * known
        return (1 - self.floor) * weighted / weighted.sum() + self.floor * uniform

    def draw(self, batch: int, rng: np.random.Generator, evaluation: bool = False) -> tuple[torch.Tensor, ...]:
        """(inputs, hr, loss mask, group id of each sample); inputs is the LR batch, or a tuple of a video model's
        arguments. `evaluation`: the samples that decide the kept state (each group's evaluation_sample)."""
        counts = rng.multinomial(batch, self.probabilities()) if len(self.groups) > 1 else np.array([batch])
        parts, ids = [], []
        for group, n, gid in zip(self.groups, counts, self.ids):
            if n:
                parts.append((group.evaluation_sample if evaluation else group.sample)(int(n), rng))
                ids.append(torch.full((int(n),), int(gid), dtype=torch.long))
        if len(parts) == 1:  # one group: its samples as they come (a video model's inputs may be a tuple)
            return (*parts[0], ids[0])
        lr, hr, mask = (torch.cat(x) for x in zip(*parts))
        return lr, hr, mask, torch.cat(ids)

    def totals(self, losses: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """[groups, 2]: the loss sum and sample count of each group in a batch (summable over ranks)."""
        out = torch.zeros(len(self.groups), 2, dtype=torch.float64)
        for i, gid in enumerate(self.ids):
            mask = ids == int(gid)
            out[i, 0], out[i, 1] = float(losses[mask].sum()), float(mask.sum())
        return out

    def observe(self, totals: torch.Tensor) -> None:
        """Update each group's error from `totals` of the last batch (over all ranks under DDP, so every
        rank keeps the same errors and draws by the same probabilities)."""
        for i, (loss_sum, count) in enumerate(totals.tolist()):
            if count:
                loss = loss_sum / count
                old = self.errors[i]
                self.errors[i] = loss if np.isnan(old) else self.momentum * old + (1 - self.momentum) * loss

    def state_dict(self) -> dict:
        return {"errors": self.errors.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.errors = np.array(state["errors"], np.float64)
