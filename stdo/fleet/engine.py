"""stdo-fleet's engine: every video of a JOBS file through cluster -> train -> export as Ray tasks.

Each stage of each video is one Ray task with its own resource request (cluster and export: CPUs;
training: GPUs when asked for, else CPUs), retried by Ray when its worker dies (the stage resumes
from the RUN's checkpoints). The driver keeps at most `max_in_flight` videos going, writes the
catalogue as stages finish, and on a rerun skips the videos already done with the same options and
goes on with the others from their first unfinished stage. Without an address it starts a local
Ray on this machine (session files in a temp folder, removed with it); with one it joins a cluster,
whose nodes must have stdo installed and see DIR and the videos at the same paths (shared storage).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from stdo.bundle import MANIFEST
from stdo.errors import StdoError
from stdo.fleet.catalogue import load_catalogue, make_row, save_catalogue, stages_to_keep, write_summary
from stdo.fleet.jobs import VideoJob, read_jobs
from stdo.fleet.stages import STAGES, bundle_dir, run_stage
from stdo.locks import stage_lock
from stdo.options import flag
from stdo.rundir import read_run_info

log = logging.getLogger(__name__)
Progress = Callable[[dict], None] | None  # called with each finished (or skipped) video's row


@dataclass
class FleetOptions:
    """What stdo-fleet does; each field but the two paths is the command's flag of the same name."""

    jobs: Path
    out: Path
    address: str | None = flag(None, "Join this Ray cluster (auto, host:6379, ray://host:10001) [default: start a "
                               "local Ray here].", type=str)
    num_cpus: int | None = flag(None, "CPUs of the local Ray [default: this machine's].", type=int)
    cpus_per_task: int = flag(1, "CPUs (torch threads) of each cluster and export task and each CPU training process.")
    train_gpus: float | None = flag(None, "GPUs per training process [default: 1 when the cluster has GPUs, else 0: "
                                    "train on CPUs].", type=float)
    max_in_flight: int | None = flag(None, "Videos worked on at once [default: the cluster's CPUs].", type=int)
    retries: int = flag(3, "Retries of a task whose worker dies; the stage resumes from the RUN's checkpoints.")


@dataclass
class FleetResult:
    rows: dict[str, dict]  # the whole catalogue (with rows of videos no longer in JOBS)
    names: list[str]  # the videos of this JOBS file
    skipped: list[str] = field(default_factory=list)  # done earlier with the same options: no work
    submitted: int = 0  # Ray tasks submitted in this run
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """Videos of this JOBS file with that status."""
        return sum(1 for n in self.names if self.rows[n]["status"] == status)


def run_fleet(o: FleetOptions, progress: Progress = None) -> FleetResult:
    """Run (or go on with) a catalogue; the JOBS file is checked whole before anything starts."""
    t0 = time.perf_counter()
    jobs = read_jobs(o.jobs)
    _check_options(o)
    out = Path(o.out)
    with stage_lock(out, f"fleet folder {out}"):
        rows = load_catalogue(out)
        result = FleetResult(rows=rows, names=[j.name for j in jobs])
        todo: deque[tuple[VideoJob, dict[str, dict]]] = deque()
        for job in jobs:
            kept = _still_valid(stages_to_keep(rows.get(job.name), job), run_dir(out, job))
            if len(kept) == len(STAGES):
                result.skipped.append(job.name)
                if progress:
                    progress(rows[job.name])
            else:
                todo.append((job, kept))
        if todo:
            with ray_session(o.address, o.num_cpus) as ray:
                _drive(ray, o, out, todo, result, progress)
        write_summary(out, result.rows)
    result.seconds = time.perf_counter() - t0
    return result


def run_dir(out: Path, job: VideoJob) -> Path:
    return Path(out) / "runs" / job.name


def _check_options(o: FleetOptions) -> None:
    if o.cpus_per_task < 1:
        raise StdoError(f"`cpus_per_task` {o.cpus_per_task} is below 1: give 1 or more")
    if o.retries < 0:
        raise StdoError(f"`retries` {o.retries} is negative: give 0 (no retry) or more")
    if o.max_in_flight is not None and o.max_in_flight < 1:
        raise StdoError(f"`max_in_flight` {o.max_in_flight} is below 1: give 1 or more videos")
    if o.train_gpus is not None and o.train_gpus < 0:
        raise StdoError(f"`train_gpus` {o.train_gpus} is negative: give 0 (CPU) or more")
    if o.num_cpus is not None and o.num_cpus < 1:
        raise StdoError(f"`num_cpus` {o.num_cpus} is below 1: give 1 or more")
    if o.address is not None and o.num_cpus is not None:
        raise StdoError("`num_cpus` sizes a local Ray; with `address` the cluster has its own: drop one")


def _still_valid(kept: dict[str, dict], run: Path) -> dict[str, dict]:
    """Earlier stage records, as far as the RUN on disk still holds them (same clustering, bundle in place)."""
    if not kept:
        return {}
    try:
        run_id = read_run_info(run)["run_id"]
    except StdoError:
        return {}
    if kept["cluster"].get("run_id") != run_id:
        return {}
    if "export" in kept:
        manifest = bundle_dir(run) / MANIFEST
        try:
            if json.loads(manifest.read_text()).get("run_id") != run_id:
                kept.pop("export")
        except (OSError, ValueError):
            kept.pop("export")
    return kept


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None) -> Iterator:
    """Ray, joined or started here; stopped on exit, with a local one's processes and session files."""
    try:
        import ray
    except ImportError:
        raise StdoError("stdo-fleet needs Ray: pip install 'stdo[fleet]'") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home (and none reachable here)
    temp = None if address else tempfile.mkdtemp(prefix="stdo-ray-")
    try:
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp, log_to_driver=False,
                         logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = (str(e).strip().splitlines() or [e.__class__.__name__])[0][:200]
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise StdoError(f"cannot start {where} ({first}): check the address, or drop `address`") from None
        yield ray
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


def _drive(ray, o: FleetOptions, out: Path, todo: deque, result: FleetResult, progress: Progress) -> None:
    resources = ray.cluster_resources()
    gpus = o.train_gpus if o.train_gpus is not None else (1.0 if resources.get("GPU", 0) > 0 else 0.0)
    limit = o.max_in_flight or max(1, int(resources.get("CPU", 1)))
    task = ray.remote(run_stage)
    in_flight: dict = {}  # ObjectRef -> (job, stage, records so far)

    def submit(job: VideoJob, stages: dict[str, dict]) -> None:
        stage = next(s for s in STAGES if s not in stages)
        cpus = o.cpus_per_task
        options: dict = {"num_cpus": cpus, "max_retries": o.retries}
        device = "cpu"
        if stage == "train":
            options.update(num_cpus=cpus * job.workers, num_gpus=gpus * job.workers)
            device = "cuda" if gpus > 0 else "cpu"
        ref = task.options(**options).remote(stage, job, run_dir(out, job), options["num_cpus"], device)
        in_flight[ref] = (job, stage, stages)
        result.submitted += 1

    while todo or in_flight:
        while todo and len(in_flight) < limit:
            submit(*todo.popleft())
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        job, stage, stages = in_flight.pop(ready[0])
        stages = {**stages, stage: _outcome(ray, ready[0], stage, o.retries)}
        row = make_row(job, stages)
        result.rows[job.name] = row
        save_catalogue(out, result.rows)  # as each stage finishes: a killed driver loses nothing finished
        if row["status"] == "partial":
            submit(job, stages)
        elif progress:
            progress(row)


def _outcome(ray, ref, stage: str, retries: int) -> dict:
    """The stage's record, or one whose `error` says why there is none (a bug's first line, a dead worker)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = e.cause if getattr(e, "cause", None) is not None else e
        first = (str(cause).strip().splitlines() or [cause.__class__.__name__])[0][:300]
        return {"stage": stage, "error": f"{cause.__class__.__name__}: {first}"}
    except ray.exceptions.RayError as e:  # the worker died more than `retries` times, or the node went away
        return {"stage": stage, "error": f"{e.__class__.__name__} after {retries} retries: "
                                         f"{(str(e).strip().splitlines() or ['?'])[0][:200]}"}
