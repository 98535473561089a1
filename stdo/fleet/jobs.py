"""The JOBS file of stdo-fleet: one video per row (CSV with a header, or JSONL), with its own options.

Every row is checked before anything starts, with the same checks the stage commands make, so a
typo in row 9,000 does not surface hours into a run. Relative video paths are read from the JOBS
file's folder.

Columns (only `video` is required; the rest default to the stage commands' defaults):
  video, name, scale, grid, chunks, start, frames, crop, codec, crf,
  method, model, steps, batch, seed, checkpoint_every, workers, formats, quantize, budget

A row with a `budget` (bytes or a bitrate, as stdo-deliver --budget) is delivered by stdo-deliver: its `crf` and
`method` may then list several values ("23,27,31", "stdo,jstdo"; default stdo-deliver's), each tried, and the
point of best played PSNR within the budget is kept (its points in runs/NAME/points.md).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from stdo.deliver.pipeline import DeliverOptions, parse_budget
from stdo.errors import StdoError
from stdo.fileio import JSONUnreadable, parse_json
from stdo.grid import parse_grid
from stdo.models import list_models
from stdo.runtimes import EXPORT_FORMATS, QUANTIZE, parse_list
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import ON_DEVICE_METHODS, REGISTRY
from stdo.clip import Crop

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class VideoJob:
    """One row: a video and what to make of it. `name` names its RUN folder and its catalogue row."""

    video: Path
    name: str
    scale: int = 4
    grid: str = "10x5"
    chunks: int = 2
    start: int = 0
    frames: int | None = None
    crop: str | None = None
    codec: str = "h264"
    crf: int | tuple[int, ...] | None = None  # with a budget: the CRFs stdo-deliver tries
    method: str = "stdo"  # with a budget: comma-separated, the methods stdo-deliver tries
    model: str = "wdsr_a_mobile"
    steps: int = TrainConfig.steps
    batch: int = TrainConfig.batch
    seed: int = 0
    checkpoint_every: int = TrainConfig.checkpoint_every
    workers: int = 1  # training processes (torchrun inside the training task)
    formats: str = "onnx"  # comma-separated, as stdo-export --format
    quantize: str = ""  # comma-separated, as stdo-export --quantize (with a budget, int8 is always made: it is played)
    budget: str = ""  # what a client may download, as stdo-deliver --budget; empty: the stages as given

    @property
    def crfs(self) -> tuple[int, ...]:
        """The CRFs a budget row tries."""
        if self.crf is None:
            return DeliverOptions.crf
        return self.crf if isinstance(self.crf, tuple) else (self.crf,)

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(m for m in self.method.split(",") if m)

    def options_key(self) -> str:
        """What the results depend on: a finished row is reused only while this is unchanged."""
        # an empty budget is left out, so that rows written before the column existed keep their key
        options = {k: str(v) for k, v in asdict(self).items() if not (k == "budget" and not v)}
        text = json.dumps(options, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def stream(self) -> StreamOptions:
        return StreamOptions(codec=self.codec, crf=None if isinstance(self.crf, tuple) else self.crf)


COLUMNS = tuple(f.name for f in fields(VideoJob))
_INTS = {"scale", "chunks", "start", "frames", "crf", "steps", "batch", "seed", "checkpoint_every", "workers"}


def read_jobs(path: Path) -> list[VideoJob]:
    """Parse and check every row of a JOBS file (.csv or .jsonl); StdoError names the row and the fix."""
    path = Path(path)
    if not path.is_file():
        raise StdoError(f"JOBS file {path} does not exist: give a .csv or .jsonl with a `video` column")
    rows = _read_rows(path)
    if not rows:
        raise StdoError(f"{path} has no videos: give one row per video")
    jobs = [_job(path, line, row) for line, row in rows]
    seen: dict[str, int] = {}
    for (line, _), job in zip(rows, jobs):
        if job.name in seen:
            raise StdoError(f"{path}:{line}: name {job.name!r} is also on line {seen[job.name]}: "
                            "give each row its own `name`")
        seen[job.name] = line
    return jobs


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, {column: value}) for each row; empty values are dropped (they mean the default)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise StdoError(f"cannot read {path} ({e.__class__.__name__}): give a UTF-8 .csv or .jsonl file") from None
    if path.suffix.lower() == ".jsonl":
        rows = []
        for line, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                row = parse_json(raw)
            except JSONUnreadable as e:
                raise StdoError(f"{path}:{line}: not JSON ({e}): write one JSON object per line") from None
            if not isinstance(row, dict):
                raise StdoError(f"{path}:{line}: not a JSON object: write one object per line, e.g. {{\"video\": \"a.mp4\"}}")
            rows.append((line, {k: v for k, v in row.items() if v is not None and v != ""}))
        return rows
    if path.suffix.lower() != ".csv":
        raise StdoError(f"{path} is neither .csv nor .jsonl: name the JOBS file by its format")
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    _check_columns(path, 1, header)
    rows = []
    for row in reader:
        if None in row:
            raise StdoError(f"{path}:{reader.line_num}: more values than columns: quote values that hold commas")
        values = {k: v.strip() for k, v in row.items() if v is not None and v.strip() != ""}
        if values:
            rows.append((reader.line_num, values))
    return rows


def _check_columns(path: Path, line: int, columns) -> None:
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise StdoError(f"{path}:{line}: unknown column {unknown[0]!r}: use {', '.join(COLUMNS)}")


def _job(path: Path, line: int, row: dict) -> VideoJob:
    where = f"{path}:{line}"
    _check_columns(path, line, row)
    if "video" not in row:
        raise StdoError(f"{where}: no video: give the video's path in the `video` column")
    values: dict = {}
    for key, value in row.items():
        if isinstance(value, list):  # JSONL may list values: [23, 27] reads as "23,27"
            value = ",".join(str(v) for v in value)
        if key == "crf" and "," in str(value):
            try:
                values[key] = tuple(int(v) for v in str(value).split(","))
            except ValueError:
                raise StdoError(f"{where}: crf {value!r} is not whole numbers: write it like 23,27,31") from None
        elif key in _INTS:
            try:
                values[key] = int(str(value))
            except ValueError:
                raise StdoError(f"{where}: {key} {value!r} is not a whole number: write it like 4") from None
        else:
            values[key] = str(value)
    video = Path(values.pop("video")).expanduser()
    video = video if video.is_absolute() else path.parent / video
    name = values.pop("name", None) or video.stem
    if not NAME_PATTERN.fullmatch(name):
        raise StdoError(f"{where}: name {name!r} cannot name a folder: use letters, digits, '.', '_' and '-'")
    job = VideoJob(video=video, name=name, **values)
    try:
        _check_values(job)
    except StdoError as e:  # the options' fields are this file's columns
        raise StdoError(f"{where}: {e.plain()}") from None
    return job


def _check_values(job: VideoJob) -> None:
    """The stage commands' own checks, made before anything runs (their messages name the column)."""
    if job.scale < 2:
        raise StdoError(f"scale {job.scale} is below 2: super-resolution needs a scale of 2 or more")
    parse_grid(job.grid)
    if job.crop:
        Crop.parse(job.crop)
    for key in ("chunks", "steps", "batch", "checkpoint_every", "workers"):
        if getattr(job, key) < 1:
            raise StdoError(f"{key} {getattr(job, key)} is below 1: give 1 or more")
    if job.start < 0 or (job.frames is not None and job.frames < 1):
        raise StdoError("start must be 0 or more and frames 1 or more: fix the frame range")
    if not job.budget and (isinstance(job.crf, tuple) or len(job.methods) != 1):
        raise StdoError("several crf or method values are tried only within a budget: give one of each, or a "
                        "budget column (as stdo-deliver --budget)")
    if job.budget:
        parse_budget(job.budget)
    for crf in job.crfs if job.budget else (job.crf,):
        StreamOptions(codec=job.codec, crf=crf).check()
    shippable = [name for name, m in REGISTRY.items() if not m.video]
    for method in job.methods or ("",):
        if method not in shippable:
            raise StdoError(f"method {method!r} cannot make a bundle: use one of {', '.join(shippable)}")
    if job.budget and any(m not in ON_DEVICE_METHODS for m in job.methods):
        raise StdoError(f"method {job.method!r}: a budget row ships on-device models "
                        f"({', '.join(ON_DEVICE_METHODS)})")
    if len(set(job.crfs)) != len(job.crfs) or len(set(job.methods)) != len(job.methods):
        raise StdoError("crf and method list each value once: drop the repeats")
    patch_models = list_models(patch=True)
    if job.model not in patch_models:
        raise StdoError(f"model {job.model!r} is unknown: use one of {', '.join(patch_models)}")
    parse_list(job.formats, EXPORT_FORMATS, "formats")
    if job.quantize:
        parse_list(job.quantize, QUANTIZE, "quantize")
