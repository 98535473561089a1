"""Integrity at catalogue scale: one writer at a time, provenance of models and bundles, leftovers swept,
OS failures as one line, a RUN that moves between machines resumes."""

import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stdo.cluster.cli import cluster_command
from stdo.export.cli import export_command
from stdo.locks import stage_lock
from stdo.train.cli import train_command
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train

from conftest import tree

TINY = ["--blocks", "1", "--units", "8", "--batch", "4", "--crop-size", "16", "-q"]
BIN = Path(sys.executable).parent


@pytest.fixture
def run(trained_run, tmp_path):
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def _cluster_args(bikes, run, *extra):
    return [bikes, run, "--scale", "2", "--grid", "4x2", "--chunks", "2", "--margin", "6", "--frames", "6",
            "--crop", "160x96+240+96", "-q", *extra]


def test_a_second_writer_is_refused_naming_the_first(cli, run, bikes):
    with stage_lock(run / "models/stdo", "models"):  # as a stdo-train running on it would hold it
        before = tree(run / "models/stdo")
        code, _, err, _ = cli(train_command, [run, "--method", "stdo", "--steps", "20", "--restart", *TINY])
        assert code == 2 and "in use by another stdo process" in err and f"pid {os.getpid()}" in err, err
        assert len(err.strip().splitlines()) == 1 and tree(run / "models/stdo") == before
    with stage_lock(run, "RUN", name=".stdo-bundle.lock"):  # an export writing run/bundle
        code, _, err, _ = cli(export_command, [run, "--format", "onnx", "--verify-frames", "1"])
        assert code == 2 and "bundle" in err and "in use by another stdo process" in err, err
    with stage_lock(run, "RUN", shared=True):  # a training reading the RUN: no re-clustering under it
        code, _, err, _ = cli(cluster_command, _cluster_args(bikes, run))
        assert code == 2 and "in use by another stdo process" in err, err


def test_models_and_bundles_carry_the_clustering_they_come_from(run):
    run_id = json.loads((run / "run.json").read_text())["run_id"]
    report = json.loads((run / "models/stdo/report.json").read_text())
    assert len(run_id) == 32 and report["run_id"] == run_id and sorted(report["model_sha256"]) == ["model0.pt", "model1.pt"]


def test_a_model_set_of_two_trainings_is_refused(cli, run):
    """An interrupted retraining left model1.pt new and the rest old: export refuses to mix them."""
    state = torch.load(run / "models/stdo/model1.pt", weights_only=True)
    torch.save({k: v + 0.01 for k, v in state.items()}, run / "models/stdo/model1.pt")
    code, _, err, _ = cli(export_command, [run, "--format", "onnx", "--verify-frames", "1"])
    assert code == 2 and "model1.pt is not the model report.json describes" in err, err
    assert not (run / "bundle").exists()


def test_models_of_an_earlier_clustering_are_refused(cli, run):
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "run_id": "0" * 32}))  # as if clustered again since
    code, _, err, _ = cli(export_command, [run, "--format", "onnx", "--verify-frames", "1"])
    assert code == 2 and "trained on an earlier clustering" in err and "--restart" in err, err


def test_reclustering_removes_the_models_and_bundle_it_would_orphan(cli, run, bikes, caplog):
    (run / "bundle").mkdir()
    (run / "bundle/manifest.json").write_text("{}")
    old_id = json.loads((run / "run.json").read_text())["run_id"]
    with caplog.at_level(logging.WARNING):
        code, _, err, _ = cli(cluster_command, _cluster_args(bikes, run, "--overwrite"))
    assert code == 0, err
    assert not (run / "models").exists() and not (run / "bundle").exists()
    assert "removed models/ and bundle/" in caplog.text
    assert json.loads((run / "run.json").read_text())["run_id"] != old_id


def test_temp_files_of_a_killed_run_are_swept_by_the_next(cli, run):
    leftovers = [run / "models/stdo/.model0.pt.k3j2.tmp.pt", run / "models/stdo/state/.model1.pt.a8f0.tmp.pt"]
    for path in leftovers:
        path.write_bytes(b"x" * 1000)
    (run / ".bundle.q1w2.tmp").mkdir()
    (run / ".bundle.q1w2.tmp/model0.onnx").write_bytes(b"y")
    keep = run / "models/stdo/notes.tmp.txt"  # not one of ours: never touched
    keep.write_text("mine")
    code, _, err, _ = cli(train_command, [run, "--method", "stdo", "--steps", "20", "--restart", *TINY])
    assert code == 0, err
    assert not any(p.exists() for p in leftovers) and keep.read_text() == "mine"
    code, _, err, _ = cli(export_command, [run, "--format", "onnx", "--quantize", "", "--verify-frames", "1"])
    assert code == 0, err
    assert not (run / ".bundle.q1w2.tmp").exists()


def test_a_full_disk_is_one_line_and_leaves_the_earlier_bundle(run):
    """RLIMIT_FSIZE stands in for a full disk: writes past 30 KB fail (EFBIG; the tiny ONNX models are ~70 KB)."""
    first = subprocess.run([BIN / "stdo-export", run, "--format", "onnx", "--quantize", "", "--verify-frames", "1",
                            "-q"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = tree(run)

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead of failing write()
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))

    done = subprocess.run([BIN / "stdo-export", run, "--format", "onnx,tflite", "--verify-frames", "1", "-q"],
                          capture_output=True, text=True, preexec_fn=small_files)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "file too large" in done.stderr and "Traceback" not in done.stderr
    assert tree(run) == before and not [p for p in run.iterdir() if p.name.startswith(".bundle.") and "tmp" in p.name]


def test_a_run_moved_to_another_machine_resumes_with_a_warning(run, caplog):
    """Device and amp may change between a stop and a resume (a RUN copied elsewhere); other options may not."""
    def options(amp):
        return TrainOptions(run=run, method="awdnn", config=TrainConfig(steps=40, batch=4, crop_size=16, checkpoint_every=10,
                                                                        amp=amp),
                            method_options=MethodOptions(blocks=1, units=8))

    def stop_at_25(job, step, steps, loss, psnr):
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(options("off"), progress=stop_at_25)
    with caplog.at_level(logging.WARNING):
        report = train(options("fp16"))  # fp16 + GradScaler: a CUDA machine's default, run here on CPU
    assert report["steps"] == 40 and "resuming a training saved with" in caplog.text


@pytest.mark.parametrize("command, args", [(train_command, ["--method", "stdo", "--steps", "5", "--device", "cuda"]),
                                           (train_command, ["--method", "stdo", "--steps", "5", "--device", "tpu9"])])
def test_a_device_this_machine_lacks_is_one_line(cli, run, command, args):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err, _ = cli(command, [run, *args])
    assert code == 2 and "--device" in err and len(err.strip().splitlines()) == 1, err


def test_a_run_json_with_missing_keys_is_one_line(cli, run):
    info = json.loads((run / "run.json").read_text())
    del info["lr_size"]
    (run / "run.json").write_text(json.dumps(info))
    for command, args in ((train_command, ["--method", "stdo", "--steps", "5"]), (export_command, [])):
        code, _, err, _ = cli(command, [run, *args])
        assert code == 2 and "lacks lr_size" in err and len(err.strip().splitlines()) == 1, err


def test_a_model_file_the_runtime_rejects_is_one_line(cli, run, tmp_path):
    """A bundle whose manifest matches its files, but whose ONNX file is not a model: the runtime's error, one line."""
    from stdo.play.cli import play_command

    code, _, err, _ = cli(export_command, [run, "--format", "onnx", "--quantize", "", "--verify-frames", "1", "-q"])
    assert code == 0, err
    manifest_path = run / "bundle/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = next(f for f in manifest["models"][0]["files"] if f["format"] == "onnx")
    (run / "bundle" / entry["path"]).write_bytes(b"not a model" * 10)
    import hashlib

    entry["sha256"] = hashlib.sha256(b"not a model" * 10).hexdigest()
    entry["bytes"] = 110
    manifest_path.write_text(json.dumps(manifest))
    code, _, err, _ = cli(play_command, [run / "bundle", "--out", tmp_path / "sr.mp4", "-q"])
    assert code == 2 and "onnxruntime failed" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "sr.mp4").exists()


def _complete_files(folder: Path) -> None:
    """Every file under `folder` with a final name (not a hidden temp) reads whole: no reader sees a partial file."""
    import numpy as np

    from stdo.bundle import read_bundle

    for path in folder.rglob("*"):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.suffix == ".npy":
            np.load(path)
        elif path.suffix == ".npz":
            dict(np.load(path))
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)
    if (folder / "bundle/manifest.json").exists():
        read_bundle(folder / "bundle")


def _killed_then_rerun(command: list, folder: Path, delay: float) -> None:
    import time

    proc = subprocess.Popen([str(a) for a in command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if folder.exists():
        _complete_files(folder)
    done = subprocess.run([str(a) for a in command], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_ends_as_an_uninterrupted_run(bikes, tmp_path):
    """cluster -> train -> export -> play, each killed at a random moment (3 seeds) and run again: the results equal
    an uninterrupted run's, and after every kill each file with a final name reads whole."""
    import random

    import numpy as np

    def commands(run: Path, out: Path) -> dict:
        return {
            "cluster": [BIN / "stdo-cluster", bikes, run, "--scale", "2", "--grid", "4x2", "--chunks", "2", "--margin",
                        "6", "--frames", "6", "--crop", "160x96+240+96", "--overwrite", "-q"],
            "train": [BIN / "stdo-train", run, "--method", "stdo", "--steps", "200", "--checkpoint-every", "20",
                      "--amp", "off", *TINY],
            "export": [BIN / "stdo-export", run, "--format", "onnx", "--quantize", "int8", "--verify-frames", "2",
                       "--plan-margin", "4", "-q"],
            "play": [BIN / "stdo-play", run / "bundle", "--precision", "int8", "--out", out, "--overwrite", "--out-crf", "0",
                     "-q"],
        }

    ref_run, ref_out = tmp_path / "ref", tmp_path / "ref.mp4"
    timings = {}
    for stage, command in commands(ref_run, ref_out).items():
        import time

        t0 = time.perf_counter()
        subprocess.run([str(a) for a in command], check=True, capture_output=True)
        timings[stage] = time.perf_counter() - t0

    def signature(run: Path, out: Path) -> dict:
        import hashlib

        digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
        manifest = json.loads((run / "bundle/manifest.json").read_text())
        return {
            "frames": [digest(run / "frames" / n) for n in ("hr.npy", "lr.npy", "lr.mp4")],
            "chunks": np.load(run / "clusters.npz")["chunks"].tolist(),
            "psnr": round(json.loads((run / "models/stdo/report.json").read_text())["psnr_video"], 6),
            "models": [digest(run / "models/stdo" / f"model{i}.pt") for i in range(2)],
            "bundle": sorted((f["path"], f["sha256"]) for m in manifest["models"] for f in m["files"]),
            "plan": manifest["plan"]["sha256"],
            "played": digest(out),
        }

    expected = signature(ref_run, ref_out)
    for seed in range(3):
        rng = random.Random(seed)
        run, out = tmp_path / f"run{seed}", tmp_path / f"out{seed}.mp4"
        for stage, command in commands(run, out).items():
            _killed_then_rerun(command, run, rng.uniform(0.3, max(0.4, timings[stage])))
        assert signature(run, out) == expected, seed


@pytest.mark.parametrize("error, message", [(30, "read-only filesystem"), (13, "permission denied")])
def test_a_run_that_cannot_be_written_is_one_line(cli, run, monkeypatch, error, message):
    """A read-only RUN (EROFS) or one without write permission (EACCES): simulated at the write itself, since the
    tests run as root, which permissions do not stop."""
    import stdo.fileio

    def refuse(target, suffix=""):
        raise OSError(error, os.strerror(error), str(target))

    before = tree(run)
    monkeypatch.setattr(stdo.fileio, "temp_beside", refuse)
    code, _, err, _ = cli(train_command, [run, "--method", "awdnn", "--steps", "5", *TINY])
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert tree(run) == before
    code, _, err, _ = cli(train_command, [run, "--method", "awdnn", "--steps", "5", *TINY, "-v"])
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback (most recent call last)" in err and "in refuse" in err, err  # where it came from
    assert lines[-1].startswith("Error: ") and message in lines[-1]
    assert tree(run) == before


def test_run_json_is_read_once_into_what_stages_read_by_name(run):
    from stdo.rundir import RunInfo, grid_of, read_run_info

    info = read_run_info(run)
    raw = json.loads((run / "run.json").read_text())
    assert isinstance(info, RunInfo) and dict(info) == raw  # the file as written ...
    assert info.scale == raw["scale"] and info.frame_count == raw["frames"]["count"]  # ... and by name
    assert info.fps == (raw["frames"].get("fps") or 25.0) and info.duration_s == info.frame_count / info.fps
    assert info.grid == grid_of(raw)


def test_play_names_its_own_flags_and_refuses_what_it_cannot_use(cli, run, tmp_path):
    from stdo.play.cli import play_command

    code, _, err, _ = cli(export_command, [run, "--format", "onnx", "--quantize", "", "--verify-frames", "1", "-q"])
    assert code == 0, err
    bundle = run / "bundle"
    for args, message in ((["--out-crf", "99"], "--out-crf 99 is outside"), (["--threads", "-1"], "--threads"),
                          (["--threads", "0"], "--threads")):
        code, _, err, _ = cli(play_command, [bundle, *args, "-q"])
        assert code == 2 and message in err and "--crf" not in err.replace("--out-crf", ""), err
    manifest = (bundle / "manifest.json").read_text()
    (bundle / "manifest.json").write_text(manifest.replace('"frames": ', '"frames": ' + "9" * 5000 + ", \"x\": ", 1))
    code, _, err, _ = cli(play_command, [bundle, "-q"])
    assert code == 2 and "is not JSON" in err and len(err.strip().splitlines()) == 1, err
    (bundle / "real.json").write_text(manifest)
    (bundle / "manifest.json").unlink()
    (bundle / "manifest.json").symlink_to(bundle / "real.json")
    code, _, err, _ = cli(play_command, [bundle, "-q"])
    assert code == 2 and "is a link" in err, err


def test_a_json_integer_past_pythons_digit_limit_is_one_line(cli, run):
    info = (run / "run.json").read_text()
    (run / "run.json").write_text(info.replace('"scale": ', '"scale": ' + "9" * 5000 + ", \"x\": ", 1))
    code, _, err, _ = cli(train_command, [run, "--method", "stdo", "--steps", "20", "--restart", *TINY])
    assert code == 2 and "damaged" in err and len(err.strip().splitlines()) == 1, err


def test_a_killed_plays_temp_files_are_swept_by_the_next_play(cli, run, tmp_path):
    from stdo.play.cli import play_command

    code, _, err, _ = cli(export_command, [run, "--format", "onnx", "--quantize", "", "--verify-frames", "1", "-q"])
    assert code == 0, err
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    (tmp_path / ".frames.k1ll3d.tmp").mkdir()  # what a killed stdo-play --out frames leaves
    (tmp_path / ".frames.k1ll3d.tmp" / "000001.png").write_bytes(b"x" * 1000)
    (tmp_path / ".sr.mp4.k1ll3d.tmp.mp4").write_bytes(b"x" * 1000)
    (tmp_path / ".other.k1ll3d.tmp").mkdir()  # not this output's: kept
    for out in ("frames", "sr.mp4"):
        code, _, err, _ = cli(play_command, [run / "bundle", "--out", tmp_path / out, "-q"])
        assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.k1ll3d.tmp", "frames", "sr.mp4"]


def test_a_scale_its_models_do_not_make_is_refused_when_played(cli, run, tmp_path):
    from stdo.play.cli import play_command

    code, _, err, _ = cli(export_command, [run, "--format", "onnx", "--quantize", "", "--verify-frames", "1", "-q"])
    assert code == 0, err
    from stdo.bundle import read_bundle
    from stdo.plan import digest

    manifest = json.loads((run / "bundle/manifest.json").read_text())
    manifest["scale"] = 4  # the models make x2: the plan's digest names the scale, so the reader refuses it
    (run / "bundle/manifest.json").write_text(json.dumps(manifest))
    code, _, err, _ = cli(play_command, [run / "bundle", "--out", tmp_path / "sr.mp4", "-q"])
    assert code == 2 and "tampered map, scale or manifest" in err and len(err.strip().splitlines()) == 1, err
    manifest["scale"] = 2
    (run / "bundle/manifest.json").write_text(json.dumps(manifest))
    manifest.update(scale=4, plan={**manifest["plan"], "sha256": digest(read_bundle(run / "bundle").plan, 4)})
    (run / "bundle/manifest.json").write_text(json.dumps(manifest))  # consistent, as a faulty exporter would write
    code, _, err, _ = cli(play_command, [run / "bundle", "--out", tmp_path / "sr.mp4", "-q"])
    assert code == 2 and "disagree" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "sr.mp4").exists()
