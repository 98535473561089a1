"""The JOBS file of stdo-fleet: one video per row (CSV with a header, or JSONL), with its own options.

Every column but `video` and `name` is a stage's option: the column is that stage's field, with its default and its
parser (stdo-cluster's `grid`, stdo-export's `format`, ...), declared there once. Every row is checked before
anything starts, so a typo in row 9,000 does not surface hours into a run. Relative video paths are read from the
JOBS file's folder.

A row with a `budget` (bytes or a bitrate, as stdo-deliver --budget) is delivered by stdo-deliver: its `crf` and
`method` may then list several values ("23,27,31", "stdo,jstdo"; default stdo-deliver's), each tried, and the
point of best played PSNR within the budget is kept (its points in runs/NAME/points.md).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from stdo.clip import Crop
from stdo.cluster.pipeline import ClusterOptions
from stdo.deliver.pipeline import Budget, DeliverOptions
from stdo.errors import StdoError
from stdo.export.pipeline import ExportOptions
from stdo.fileio import JSONUnreadable, parse_json
from stdo.options import CommaList, Parsed, flag, same_as
from stdo.runtimes import EXPORT_FORMATS
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import METHODS, ON_DEVICE_METHODS, REGISTRY, MethodOptions
from stdo.train.pipeline import TrainOptions

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
OLD_COLUMNS = {"formats": "format"}  # earlier spellings, still read (and kept in options_key, so rows stay done)


@dataclass(frozen=True)
class VideoJob:
    """One row: a video and what to make of it. `name` names its RUN folder and its catalogue row."""

    video: Path
    name: str
    scale: int = same_as(ClusterOptions, "scale")
    grid: tuple[int, int] = same_as(ClusterOptions, "grid")
    chunks: int = same_as(ClusterOptions, "chunks")
    start: int = same_as(ClusterOptions, "start")
    frames: int | None = same_as(ClusterOptions, "frames")
    crop: Crop | None = same_as(ClusterOptions, "crop")
    codec: str = same_as(StreamOptions, "codec")
    crf: tuple[int, ...] | None = same_as(DeliverOptions, "crf", default=None)  # None: the stage's default
    method: tuple[str, ...] = flag((TrainOptions.method,), "The method (with a budget: the methods stdo-deliver "
                                   "tries).", type=CommaList(METHODS))
    model: str = same_as(MethodOptions, "model")
    steps: int = same_as(TrainConfig, "steps")
    batch: int = same_as(TrainConfig, "batch")
    seed: int = same_as(TrainConfig, "seed")
    checkpoint_every: int = same_as(TrainConfig, "checkpoint_every")
    workers: int = flag(1, "Training processes (torchrun inside the training task).")
    format: tuple[str, ...] = same_as(ExportOptions, "format")
    quantize: tuple[str, ...] = same_as(ExportOptions, "quantize")  # with a budget, int8 is always made: it is played
    budget: Budget | None = same_as(DeliverOptions, "budget")  # None: the stages as given; else stdo-deliver

    @property
    def crfs(self) -> tuple[int, ...]:
        """The CRFs a budget row tries."""
        return DeliverOptions.crf if self.crf is None else self.crf

    def options_key(self) -> str:
        """What the results depend on: a finished row is reused only while this is unchanged."""
        # an empty budget is left out, and columns keep their earlier names, so that rows written before stay done
        stored = {new: old for old, new in OLD_COLUMNS.items()}
        options = {stored.get(f.name, f.name): _text(getattr(self, f.name), f) for f in fields(self)
                   if not (f.name == "budget" and not self.budget)}
        text = json.dumps(options, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def stream(self) -> StreamOptions:
        return StreamOptions(codec=self.codec, crf=self.crf[0] if self.crf is not None and len(self.crf) == 1 else None)


def _text(value: Any, f: dataclasses.Field) -> str:
    """A value as a row writes it (what options_key hashes)."""
    kind = f.metadata["flag"].type if "flag" in f.metadata else None
    if isinstance(kind, Parsed) and value is not None:
        return kind.show(value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


COLUMNS = tuple(f.name for f in fields(VideoJob))
_FIELDS = {f.name: f for f in fields(VideoJob)}


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
    unknown = [c for c in columns if c not in COLUMNS and c not in OLD_COLUMNS]
    if unknown:
        raise StdoError(f"{path}:{line}: unknown column {unknown[0]!r}: use {', '.join(COLUMNS)}")


def _parse(name: str, value: Any) -> Any:
    """A column's value read by its field's parser (the stage's ParamType, or a whole number)."""
    if isinstance(value, list):  # JSONL may list values: [23, 27] reads as "23,27"
        value = ",".join(str(v) for v in value)
    f = _FIELDS[name]
    kind = f.metadata["flag"].type if "flag" in f.metadata else None
    if isinstance(kind, click.Choice):
        if str(value) not in kind.choices:
            raise StdoError(f"{name} {value!r} is unknown: use one of {', '.join(kind.choices)}")
        return str(value)
    if isinstance(kind, click.ParamType):  # stdo's own ParamTypes raise StdoError naming the column
        return kind.convert(str(value), SimpleNamespace(name=name), None)
    if kind is int or isinstance(f.default, int):
        try:
            return int(str(value))
        except ValueError:
            raise StdoError(f"{name} {value!r} is not a whole number: write it like 4") from None
    return str(value)


def _job(path: Path, line: int, row: dict) -> VideoJob:
    where = f"{path}:{line}"
    _check_columns(path, line, row)
    if "video" not in row:
        raise StdoError(f"{where}: no video: give the video's path in the `video` column")
    try:
        values = {OLD_COLUMNS.get(k, k): _parse(OLD_COLUMNS.get(k, k), v) for k, v in row.items()
                  if k not in ("video", "name")}
    except StdoError as e:  # the options' fields are this file's columns
        raise StdoError(f"{where}: {e.plain()}") from None
    video = Path(str(row["video"])).expanduser()
    video = video if video.is_absolute() else path.parent / video
    name = str(row.get("name") or video.stem)
    if not NAME_PATTERN.fullmatch(name):
        raise StdoError(f"{where}: name {name!r} cannot name a folder: use letters, digits, '.', '_' and '-'")
    job = VideoJob(video=video, name=name, **values)
    try:
        _check_values(job)
    except StdoError as e:
        raise StdoError(f"{where}: {e.plain()}") from None
    return job


def _check_values(job: VideoJob) -> None:
    """The stage commands' own checks, made before anything runs (their messages name the column)."""
    if job.scale < 2:
        raise StdoError(f"scale {job.scale} is below 2: super-resolution needs a scale of 2 or more")
    for key in ("chunks", "steps", "batch", "checkpoint_every", "workers"):
        if getattr(job, key) < 1:
            raise StdoError(f"{key} {getattr(job, key)} is below 1: give 1 or more")
    if job.start < 0 or (job.frames is not None and job.frames < 1):
        raise StdoError("start must be 0 or more and frames 1 or more: fix the frame range")
    if not job.budget and ((job.crf is not None and len(job.crf) != 1) or len(job.method) != 1):
        raise StdoError("several crf or method values are tried only within a budget: give one of each, or a "
                        "budget column (as stdo-deliver's `budget`)")
    for crf in job.crfs if job.budget else (job.stream().crf,):
        StreamOptions(codec=job.codec, crf=crf).check()
    shippable = [name for name, m in REGISTRY.items() if not m.video]
    for method in job.method:
        if method not in shippable:
            raise StdoError(f"method {method!r} cannot make a bundle: use one of {', '.join(shippable)}")
    if job.budget and any(m not in ON_DEVICE_METHODS for m in job.method):
        raise StdoError(f"method {','.join(job.method)!r}: a budget row ships on-device models "
                        f"({', '.join(ON_DEVICE_METHODS)})")
    if len(set(job.crfs)) != len(job.crfs):
        raise StdoError("crf lists each value once: drop the repeats")
    if not job.format:
        raise StdoError(f"format is empty: give one or more of {', '.join(EXPORT_FORMATS)}")
