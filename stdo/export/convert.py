"""What stdo-export converts: the variants (format x precision), their int8 calibration windows, the carried
prior files an update is coded against, and the coding of one file as an update."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stdo import bundle as bundle_format
from stdo.errors import StdoError
from stdo.fileio import sha256_of, write_bytes
from stdo.grid import Grid
from stdo.runtimes import FORMATS as RUNTIME_FORMATS


@dataclass
class Variant:
    format: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.format} {self.precision}"

    @property
    def signatures(self) -> bool:
        """A signature per plan window shape (TFLite); the other formats take any window."""
        return RUNTIME_FORMATS[self.format].signatures

    def filename(self, model_index: int) -> str:
        return RUNTIME_FORMATS[self.format].filename(model_index, self.precision)


def variants(formats: tuple[str, ...], quantize: tuple[str, ...]) -> list[Variant]:
    out = []
    for f in formats:
        base, *extra = RUNTIME_FORMATS[f].precisions
        out.append(Variant(f, base))
        out += [Variant(f, p) for p in extra if p in quantize]
    return out


def calibration_windows(lr: np.ndarray, grid: Grid, model_map: np.ndarray, model_index: int, count: int,
                 shape: tuple[int, int]) -> list[np.ndarray]:
    """Up to `count` LR windows [N, 3, h, w] in [0, 1] of `shape`, centred on patches model `model_index` serves."""
    where = np.argwhere(model_map == model_index)
    picks = where[np.linspace(0, len(where) - 1, min(count, len(where))).round().astype(int)]
    (sh, sw), (re_, ce) = shape, (grid.row_edges, grid.col_edges)
    windows = []
    for t, r, c in picks:
        y = int(np.clip((re_[r] + re_[r + 1] - sh) // 2, 0, grid.height - sh))
        x = int(np.clip((ce[c] + ce[c + 1] - sw) // 2, 0, grid.width - sw))
        windows.append(np.asarray(lr[t, y : y + sh, x : x + sw]))
    batch = np.stack(windows).transpose(0, 3, 1, 2).astype(np.float32) / 255
    return [batch[i : i + 16] for i in range(0, len(batch), 16)]


def carried_bases(update: str, priors: Path | None, train_report: dict) -> dict[tuple[str, str], dict]:
    """(format, precision) -> the carried prior file's entry (priors.json under `priors`, its path resolved) an
    update of that variant is coded against; {} for whole files (`update` off, or no carried prior)."""
    from stdo.priors import PRIORS_DIR, prior_bases

    if update == "off":
        return {}
    root = Path(priors) if priors else PRIORS_DIR
    prior = train_report.get("prior")
    bases = {(b["format"], b["precision"]): {**b, "path": root / b["path"]} for b in prior_bases(prior, root)
             } if prior else {}
    if update == "on" and not bases:
        raise StdoError("`update` on needs models trained from a prior that clients carry: train with `init='prior'` "
                        "(the default where stdo ships a prior for the model and scale), or export with `update` auto")
    return bases


def code_update(root: Path, path: Path, base: Path | None) -> dict:
    """{'update': entry} of `path` coded against `base` (the file stays until verified), or {} when there is no
    base or the update would not be smaller than the file."""
    from stdo.updates import CODING, encode_update

    if base is None:
        return {}
    data = path.read_bytes()
    update, ops = encode_update(data, base.read_bytes())
    if len(update) >= len(data):
        return {}
    update_path = path.with_name(path.name + ".update")
    write_bytes(update_path, update)
    return {"update": bundle_format.file_entry(root, update_path, coding=CODING, base=sha256_of(base), ops=ops)}
