"""stdo-fleet: a catalogue of videos through cluster -> train -> export on a local Ray with 2 CPUs.

The Ray tests take one machine-wide lock (xdist workers run them one at a time): each starts and stops its own
local Ray, and checks that no Ray process or session folder is left behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import tree
from stdo.errors import StdoError
from stdo.fleet.engine import FleetOptions, run_fleet
from stdo.fleet.jobs import read_jobs
from stdo.fleet.stages import STAGES, run_stage
from stdo.rundir import REPORT, method_dir

ray = pytest.importorskip("ray", reason="the fleet extra (pip install 'stdo[fleet]')")
TINY = {"frames": 4, "steps": 30, "batch": 4, "chunks": 2, "grid": "2x2", "format": "onnx"}  # 64x64 HR crops at x4


def write_jobs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def stray_ray() -> list[str]:
    """Processes and session folders of a local Ray started by stdo (its temp folder is named stdo-ray-*)."""
    procs = subprocess.run(["pgrep", "-af", "stdo-ray-"], capture_output=True, text=True).stdout.splitlines()
    folders = [str(p) for p in Path(tempfile.gettempdir()).glob("stdo-ray-*")]
    return [p for p in procs if "pgrep" not in p] + folders


@pytest.fixture()
def clean_ray():
    """One local Ray at a time on this machine, none left over. An flock, not an xdist group: pytest-xdist 3.8's
    --dist loadgroup does nothing under pytest 9 (it renames item._nodeid, which pytest 9 no longer reads), so the
    two Ray tests ran side by side and one saw the other's Ray."""
    with open(Path(tempfile.gettempdir()) / "stdo-fleet-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert not stray_ray(), "a local Ray was left over before the test"
        yield
        deadline = time.time() + 20
        while stray_ray() and time.time() < deadline:
            time.sleep(0.5)
        assert not stray_ray(), f"left over after the fleet: {stray_ray()}"


# ------------------------------------------------------------------------------------------------ JOBS files

@pytest.mark.parametrize("line, message", [
    ({"video": "a.mp4", "stps": 10}, "unknown column 'stps'"),
    ({"video": "a.mp4", "steps": "ten"}, "steps 'ten' is not a whole number"),
    ({"steps": 10}, "no video"),
    ({"video": "a.mp4", "grid": "10by5"}, "grid '10by5' is not COLSxROWS"),
    ({"video": "a.mp4", "format": "onnx,gif"}, "format 'gif' is unknown"),
    ({"video": "a.mp4", "formats": "torch"}, "format 'torch' is unknown"),  # always written, never asked for
    ({"video": "a.mp4", "model": "wdsr_b"}, "model 'wdsr_b' is unknown: use one of wdsr_a"),
    ({"video": "a.mp4", "crop": "big"}, "crop 'big'"),
    ({"video": "a.mp4", "method": "brvsr"}, "method 'brvsr' cannot make a bundle"),
    ({"video": "a.mp4", "crf": 80}, r": crf 80 is outside"),  # the column, not a flag
    ({"video": "a.mp4", "name": "../up"}, "cannot name a folder"),
    ({"video": "a.mp4", "crf": "23,27"}, "tried only within a budget"),
    ({"video": "a.mp4", "budget": "lots"}, r": budget 'lots': give bytes"),
    ({"video": "a.mp4", "budget": "80KB", "method": "stdo,mfwdsr"}, "a budget row ships on-device models"),
    ({"video": "a.mp4", "budget": "80KB", "crf": "23,99"}, r": crf 99 is outside"),
])
def test_bad_jobs_rows_name_the_line_and_the_fix(tmp_path, line, message):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"video": "ok.mp4"}, line])
    with pytest.raises(StdoError, match=message) as e:
        read_jobs(jobs)
    assert str(e.value).startswith(f"{jobs}:2: ")


def test_csv_jobs_and_their_defaults(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text('video,name,steps,format,quantize,grid\nclips/a.mp4,,2000,"onnx,tflite",int8,8x4\n/abs/b.mp4,bee,,,,\n')
    a, b = read_jobs(jobs)
    assert (a.video, a.name, a.steps, a.format, a.quantize, a.grid) == (tmp_path / "clips/a.mp4", "a", 2000,
                                                                        ("onnx", "tflite"), ("int8",), (8, 4))
    assert (b.video, b.name, b.steps, b.scale, b.method, b.grid) == (Path("/abs/b.mp4"), "bee", 2000, 4, ("stdo",),
                                                                     (10, 5))  # stdo-cluster's defaults
    assert a.options_key() != b.options_key()
    jobs.write_text("video,name\na.mp4,x\nb.mp4,x\n")
    with pytest.raises(StdoError, match="name 'x' is also on line 2"):
        read_jobs(jobs)


def test_rows_written_before_the_columns_were_stage_fields_stay_done(tmp_path):
    """options_key decides whether a finished row is reused: the keys the earlier string columns gave (computed by
    the code of df9db67) still come out, so a fleet rerun after an upgrade does not redo its catalogue."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        {"video": "/videos/a.mp4"},
        {"video": "/videos/b.mp4", "name": "bee", "steps": 500, "formats": "onnx,tflite", "quantize": "int8", "grid": "8x4",
         "crf": 27, "crop": "160x96+240+96", "frames": 30},
        {"video": "/videos/c.mp4", "budget": "80KB", "method": "stdo,jstdo"}])
    assert [job.options_key() for job in read_jobs(jobs)] == ["d32f05a6dda988ee", "097ad10547e32db7", "cabf1930e00f74fd"]


def test_cli_refuses_a_bad_jobs_file_before_anything_starts(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("video,stepz\na.mp4,10\n")
    done = subprocess.run([sys.executable, "-m", "stdo.fleet.cli", str(jobs), str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"Error: {jobs}:1: unknown column 'stepz': use "
                                                 + done.stderr.split("use ", 1)[1].strip()]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # Ray / a whole delivery
def test_a_budget_row_is_delivered_at_its_best_point_and_reported_by_each_stage(tmp_path, bikes):
    row = {"video": str(bikes), "name": "b", "budget": "10MB", "crf": [23, 35], "method": "stdo,jstdo",
           "crop": "160x96+240+96", "frames": 4, "steps": 20, "grid": "2x2", "chunks": 2}
    job = read_jobs(write_jobs(tmp_path / "jobs.jsonl", [row]))[0]
    assert (job.crfs, job.method) == ((23, 35), ("stdo", "jstdo"))
    run = tmp_path / "runs" / "b"
    records = {stage: run_stage(stage, job, run) for stage in STAGES}
    assert not [r["error"] for r in records.values() if "error" in r]
    points = json.loads((run / "points.json").read_text())
    assert len(points["points"]) == records["cluster"]["points"] == 4  # every CRF x method measured
    chosen = points["chosen"]
    assert records["cluster"]["delivery"] == {k: chosen[k] for k in ("crf", "method", "total", "psnr", "bicubic_psnr")}
    assert records["cluster"]["budget"] == 10_000_000 and chosen["total"] <= 10_000_000
    report = json.loads((method_dir(run, chosen["method"]) / REPORT).read_text())
    manifest = json.loads((run / "bundle" / "manifest.json").read_text())
    assert records["train"]["psnr"] == report["psnr_video"] and manifest["method"] == chosen["method"]
    assert records["cluster"]["run_id"] == records["export"]["run_id"] == manifest["run_id"]
    assert records["export"]["bundle_bytes"] == sum(p.stat().st_size for p in (run / "bundle").rglob("*") if p.is_file())
    assert {(a["format"], a["precision"]) for a in records["export"]["artifacts"]} == {("onnx", "fp32"), ("onnx", "int8")}


def test_a_stage_reports_bad_input_as_its_error(tmp_path):
    job = read_jobs(write_jobs(tmp_path / "jobs.jsonl", [{"video": "missing.mp4"}]))[0]
    record = run_stage("cluster", job, tmp_path / "run")
    assert record["error"] == f"{tmp_path / 'missing.mp4'} does not exist: fix the row's video path"
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ on Ray

@pytest.mark.slow  # Ray / a whole delivery
def test_catalogue_completes_and_rerun_skips_finished_videos(tmp_path, bikes, bunny, clean_ray):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bikes.read_bytes()[:3000])
    rows = [{"video": str(bikes), "name": "bikes", "crop": "64x64+200+100", **TINY},
            {"video": str(bunny), "name": "bunny", "crop": "64x64+300+150", **TINY},
            {"video": str(bikes), "name": "bikes2", "crop": "64x64+0+0", **TINY, "workers": 2},
            {"video": str(corrupt), "name": "corrupt", **TINY},
            {"video": "missing.mp4", "name": "missing", **TINY}]
    jobs, out = write_jobs(tmp_path / "jobs.jsonl", rows), tmp_path / "fleet"
    seen = []
    result = run_fleet(FleetOptions(jobs=jobs, out=out, num_cpus=2), progress=lambda row: seen.append(row["name"]))
    assert sorted(seen) == sorted(r["name"] for r in rows)
    assert (result.count("done"), result.count("failed")) == (3, 2) and not result.skipped
    catalogue = {r["name"]: r for r in map(json.loads, (out / "catalogue.jsonl").read_text().splitlines())}
    assert {n: r["status"] for n, r in catalogue.items()} == {"bikes": "done", "bunny": "done", "bikes2": "done",
                                                             "corrupt": "failed", "missing": "failed"}
    for name in ("bikes", "bunny", "bikes2"):  # each row says what the video's own report and bundle say
        run, row = out / "runs" / name, catalogue[name]
        report = json.loads((method_dir(run, "stdo") / REPORT).read_text())
        manifest = json.loads((run / "bundle" / "manifest.json").read_text())
        assert row["psnr"] == report["psnr_video"] and row["psnr_bicubic"] == report["bicubic"]["psnr_video"]
        assert row["run_id"] == report["run_id"] == manifest["run_id"]
        assert row["bundle_bytes"] == sum(p.stat().st_size for p in (run / "bundle").rglob("*") if p.is_file())
        assert row["gain_db"] > 0 and all(row[f"{s}_s"] > 0 for s in ("cluster", "train", "export"))
    assert json.loads((method_dir(out / "runs" / "bikes2", "stdo") / REPORT).read_text())["world_size"] == 2
    assert catalogue["missing"]["stage"] == "cluster" and "missing.mp4 does not exist" in catalogue["missing"]["error"]
    assert catalogue["corrupt"]["stage"] == "cluster" and "\n" not in catalogue["corrupt"]["error"]
    assert (out / "catalogue.csv").read_text().count("\n") == 6
    assert (out / "summary.md").read_text().count("| done |") == 3 and (out / "summary.png").stat().st_size > 0

    finished = {n: tree(out / "runs" / n) for n in ("bikes", "bunny", "bikes2")}
    again = run_fleet(FleetOptions(jobs=jobs, out=out, num_cpus=2))
    assert sorted(again.skipped) == ["bikes", "bikes2", "bunny"]
    assert again.submitted == 2  # the two failed rows, retried (and failing again the same way)
    assert {n: tree(out / "runs" / n) for n in finished} == finished
    assert again.rows["missing"]["error"] == catalogue["missing"]["error"]


@pytest.mark.slow  # Ray / a whole delivery
def test_a_worker_killed_mid_training_is_retried_to_the_same_result(tmp_path, bikes, clean_ray):
    """Two rows of the same video: one has its training worker SIGKILLed after its first checkpoint. Ray retries
    the task, training resumes from the checkpoint, and both end with the same models."""
    row = {"video": str(bikes), "crop": "64x64+200+100", **TINY, "steps": 120, "checkpoint_every": 10}
    jobs, out = write_jobs(tmp_path / "jobs.jsonl", [{**row, "name": "killed"}, {**row, "name": "calm"}]), tmp_path / "f"
    killed = []

    def kill_after_first_checkpoint() -> None:
        method = method_dir(out / "runs" / "killed", "stdo")
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            if any((method / "state").glob("*.pt")) and (method / ".stdo.lock").exists():
                holder = (method / ".stdo.lock").read_text()
                if holder.startswith("pid "):
                    pid = int(holder.split()[1].rstrip(":"))
                    assert pid != os.getpid()
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    except ProcessLookupError:  # that holder is gone already: wait for the next
                        pass
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    watcher.start()
    result = run_fleet(FleetOptions(jobs=jobs, out=out, num_cpus=2))
    watcher.join()
    assert killed, "the training worker was never seen holding its lock"
    assert result.rows["killed"]["status"] == result.rows["calm"]["status"] == "done"
    reports = [json.loads((method_dir(out / "runs" / n, "stdo") / REPORT).read_text()) for n in ("killed", "calm")]
    assert reports[0]["model_sha256"] == reports[1]["model_sha256"]
    assert result.rows["killed"]["psnr"] == result.rows["calm"]["psnr"]
