"""stdo-train on a small real RUN (6 frames of bikes.mp4, 160x96 at x2) with a tiny WDSR."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import copy_run
from stdo.cluster.chunkmap import load_chunkmap
from stdo.errors import StdoError
from stdo.grid import Grid
from stdo.train.cli import train_command
from stdo.train.data import ClipFrames, PatchSampler, patches_of
from stdo.train.loop import Precision, TrainConfig, cpu_supports_bf16, resolve_amp
from stdo.rundir import CLUSTERS, grid_of, load_frames, read_run_info
from stdo.train.methods import REGISTRY, MethodOptions, build_training_plan
from stdo.train.pipeline import TrainOptions, train
from stdo.train.sampling import ChunkSampler

TINY = ["--blocks", "2", "--units", "8", "--batch", "8", "--crop-size", "16", "-q"]
BIN = Path(sys.executable).parent


def options(run: Path, method: str, steps: int, **kw) -> TrainOptions:
    cfg = TrainConfig(steps=steps, batch=8, crop_size=16, checkpoint_every=kw.pop("every", 50),
                      learning_rate=kw.pop("lr", 1e-3), amp=kw.pop("amp", "auto"))
    return TrainOptions(run=run, method=method, config=cfg, method_options=MethodOptions(blocks=2, units=8, **kw))


# ---------------------------------------------------------------------------- sampling


def test_sampler_windows_are_aligned_and_cover_the_patch():
    t, h, w, s = 3, 40, 60, 2
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    lr = np.stack([np.stack([yy, xx, np.full_like(yy, f)], -1) for f in range(t)]).astype(np.uint8)
    hr = np.repeat(np.repeat(lr, s, 1), s, 2)  # HR pixel (Y, X) carries LR coordinates (Y//s, X//s)
    grid = Grid(h, w, 2, 3, margin=4)
    sampler = PatchSampler(ClipFrames(hr, lr, grid, s), patches_of(np.zeros((t, 2, 3), np.uint8)), crop=8, augment=False)
    picked = np.array([[1, 0, 0], [2, 1, 2], [0, 1, 1]])
    lr_b, hr_b, mask = sampler.gather(picked, np.random.default_rng(0))
    assert lr_b.shape == (3, 3, 16, 16) and hr_b.shape == (3, 3, 32, 32) and mask.shape == (3, 1, 32, 32)
    torch.testing.assert_close(hr_b[:, :, ::2, ::2], lr_b)  # aligned
    for i, (f, r, c) in enumerate(picked):
        assert (lr_b[i, 2] * 255).round().eq(f).all()  # the right frame
        ys = (hr_b[i, 0] * 255).round()[mask[i, 0] > 0]
        xs = (hr_b[i, 1] * 255).round()[mask[i, 0] > 0]
        assert mask[i].sum() == 8 * 8 * s * s  # the loss covers exactly the crop
        y0, y1, x0, x1 = grid.row_edges[r], grid.row_edges[r + 1], grid.col_edges[c], grid.col_edges[c + 1]
        assert ys.min() >= y0 and ys.max() < y1 and xs.min() >= x0 and xs.max() < x1  # crop inside its patch


@pytest.mark.parametrize("method", ["jstdo", "stdo", "mfwdsr", "brvsr"])
def test_the_crop_and_augmentation_a_library_caller_sets_are_the_ones_sampled(small_run, method):
    """TrainConfig holds crop and augment once: the samplers of every method draw what it says."""
    hr, lr = load_frames(small_run)
    config = TrainConfig(steps=8, crop_size=12, augment=False)
    plan = build_training_plan(method, ClipFrames(hr, lr, grid_of(read_run_info(small_run)), 2),
                               load_chunkmap(small_run / CLUSTERS).chunks, config, MethodOptions(init="scratch"))
    for job in plan.jobs:
        for group in job.sampler.groups:
            assert (group.crop, group.augment) == (12, False)
        _, hr_batch, mask, _ = job.sampler.draw(4, np.random.default_rng(0))
        per_frame = mask.reshape(4, -1, *mask.shape[-2:]).sum((-2, -1))  # a video model's mask: one per frame
        assert per_frame.eq(12 * 2 * 12 * 2).all()  # the loss covers a 12-pixel LR crop, at x2


def test_augmentation_moves_inputs_targets_and_masks_together():
    rng = np.random.default_rng(3)
    lr = rng.integers(0, 256, (2, 30, 30, 3), dtype=np.uint8)
    hr = np.repeat(np.repeat(lr, 2, 1), 2, 2)
    sampler = PatchSampler(ClipFrames(hr, lr, Grid(30, 30, 2, 2, margin=3), 2), patches_of(np.zeros((2, 2, 2), np.uint8)), crop=9)
    lr_b, hr_b, mask = sampler.sample(64, rng)
    torch.testing.assert_close(hr_b[:, :, ::2, ::2], lr_b)
    assert torch.equal(mask[:, :, ::2, ::2].sum((1, 2, 3)), torch.full((64,), 81.0))


def test_error_weighting_favours_the_chunk_with_higher_loss():
    lr = np.zeros((2, 20, 20, 3), np.uint8)
    chunks = np.array([[[0, 1]], [[0, 1]]], np.uint8)
    groups = [PatchSampler(ClipFrames(lr.repeat(2, 1).repeat(2, 2), lr, Grid(20, 20, 1, 2), 2), patches_of(chunks, i)) for i in (0, 1)]
    sampler = ChunkSampler(groups, weighting="error")
    np.testing.assert_allclose(sampler.probabilities(), [0.5, 0.5])
    for _ in range(20):
        sampler.observe(sampler.totals(torch.tensor([0.3, 0.1]), torch.tensor([0, 1])))
    p = sampler.probabilities()
    assert p[0] > 0.65 and p[1] >= 0.05  # more of the budget to the harder chunk, none starved
    assert ChunkSampler(groups, weighting="uniform").probabilities().tolist() == [0.5, 0.5]


def test_amp_modes_and_apex_aliases():
    assert resolve_amp("off", "cpu") == Precision(None, False, "fp32")
    assert resolve_amp("O0", "cpu").label == "fp32"
    assert resolve_amp("bf16", "cpu").dtype == torch.bfloat16
    assert resolve_amp("auto", "cuda") == Precision(torch.float16, True, "fp16+GradScaler")
    assert resolve_amp("fp16", "cpu") == Precision(torch.float16, True, "fp16+GradScaler")
    assert resolve_amp("O1", "cpu").label == ("bf16" if cpu_supports_bf16() else "fp32")
    with pytest.raises(StdoError, match="unknown"):
        resolve_amp("O3", "cpu")


# ---------------------------------------------------------------------------- training


@pytest.mark.slow  # every method 480 steps / subprocesses / torchrun
@pytest.mark.parametrize("method", [name for name, m in REGISTRY.items() if m.trains])
def test_every_method_overfits_and_beats_bicubic(small_run, tmp_path, method):
    run = copy_run(small_run, tmp_path / "run")
    report = train(options(run, method, 480))
    out = run / "models" / method
    assert json.loads((out / "report.json").read_text())["psnr_video"] == report["psnr_video"]
    for key in ("psnr_video", "psnr_y_video", "psnr_stdo", "ssim", "chunks"):  # the models' and bicubic's
        assert key in report and key in report["bicubic"], key
    for key in ("params", "bytes_fp32", "steps", "train_seconds", "wall_seconds", "device", "amp"):
        assert key in report, key
    assert report["steps"] == 480 and len(report["chunks"]) == 2
    assert report["psnr_video"] > report["bicubic"]["psnr_video"] + 0.3, report
    assert report["psnr_stdo"] > report["bicubic"]["psnr_stdo"] + 0.3
    n = report["num_models"]
    assert sorted(p.name for p in out.glob("model*.pt")) == [f"model{i}.pt" for i in range(n)]
    assert np.load(out / "model_map.npz")["model_map"].max() == n - 1
    state = torch.load(out / "model0.pt", weights_only=True)
    state = state["state"] if "arch" in state else state  # a video model's checkpoint carries its config
    assert all(torch.isfinite(v).all() for v in state.values())


def test_the_prior_method_serves_the_carried_prior_untrained(small_run, tmp_path):
    from stdo.priors import PRIORS_DIR

    run = copy_run(small_run, tmp_path / "run")
    report = train(TrainOptions(run=run, method="prior", config=TrainConfig(steps=50, batch=8, crop_size=16)))
    assert report["steps"] == 0 and report["num_models"] == 1
    prior = torch.load(PRIORS_DIR / f"wdsr_a_mobile_x{report['scale']}.pt", weights_only=True)
    prior = prior.get("model", prior)
    served = torch.load(run / "models/prior/model0.pt", weights_only=True)
    assert served.keys() == prior.keys() and all(torch.equal(served[k], prior[k]) for k in prior)
    with pytest.raises(StdoError, match="`init` prior"):
        train(TrainOptions(run=run, method="prior", method_options=MethodOptions(init="scratch")))


def test_jstdo_uniform_sampling_option(small_run, tmp_path):
    run = copy_run(small_run, tmp_path / "run")
    report = train(options(run, "jstdo", 40, sampling="uniform"))
    assert report["method_options"]["sampling"] == "uniform"


def test_rerun_resumes_and_finished_training_is_not_repeated(small_run, tmp_path):
    run = copy_run(small_run, tmp_path / "run")
    first = train(options(run, "awdnn", 60, every=20))
    steps = []
    again = train(options(run, "awdnn", 60, every=20), progress=lambda job, step, *_: steps.append(step))
    assert steps == []  # no step trained again (a restart from step 0 would report 60)
    assert again["psnr_video"] == first["psnr_video"]
    assert again["train_seconds"] == pytest.approx(first["train_seconds"], abs=0.5)


def _state_step(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["step"]
    except Exception:  # noqa: BLE001 - not written yet
        return -1


@pytest.mark.slow  # every method 480 steps / subprocesses / torchrun
@pytest.mark.parametrize("method, job", [("stdo", "joint-start"), ("mfwdsr", "joint")])
def test_sigkill_then_resume_ends_where_an_uninterrupted_run_ends(small_run, tmp_path, method, job):
    args = ["--method", method, "--steps", "400", "--checkpoint-every", "20", *TINY]
    whole, killed = copy_run(small_run, tmp_path / "whole"), copy_run(small_run, tmp_path / "killed")
    subprocess.run([BIN / "stdo-train", whole, *args], check=True, capture_output=True)
    proc = subprocess.Popen([BIN / "stdo-train", killed, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / f"models/{method}/state/{job}.pt"
    deadline = time.time() + 120
    while _state_step(state) < 60 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / f"models/{method}/report.json").exists()
    saved = _state_step(state)
    done = subprocess.run([BIN / "stdo-train", killed, *args, "-v"], check=True, capture_output=True, text=True)
    assert f"{job}: resuming at step {saved} of" in done.stderr  # not a restart from step 0, which also ends there
    a = json.loads((whole / f"models/{method}/report.json").read_text())
    b = json.loads((killed / f"models/{method}/report.json").read_text())
    assert abs(a["psnr_video"] - b["psnr_video"]) <= 0.05 and abs(a["psnr_stdo"] - b["psnr_stdo"]) <= 0.05


def test_fp16_with_grad_scaler_trains_like_fp32(small_run, tmp_path):
    """The CUDA default (fp16 + GradScaler), run on CPU: the same code path, slower."""
    reports = {amp: train(options(copy_run(small_run, tmp_path / amp), "awdnn", 60, every=30, amp=amp, lr=3e-3))
               for amp in ("fp16", "off")}
    fp16, fp32 = reports["fp16"], reports["off"]
    assert fp16["amp"] == "fp16+GradScaler"
    assert fp16["psnr_video"] > fp16["bicubic"]["psnr_video"] + 0.01, fp16
    assert abs(fp16["psnr_video"] - fp32["psnr_video"]) < 0.01, (fp16["psnr_video"], fp32["psnr_video"])
    scaler = torch.load(tmp_path / "fp16/models/awdnn/state/joint.pt", weights_only=True)["scaler"]
    assert scaler["scale"] > 1  # the scaler's state is kept (a disabled scaler's is empty) to resume with


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(small_run, tmp_path):
    run = copy_run(small_run, tmp_path / "run")
    with pytest.raises(StdoError, match="loss became .* checkpoint of step"):
        train(options(run, "awdnn", 200, every=1, lr=1e12))
    state = torch.load(run / "models/awdnn/state/joint.pt", weights_only=True)
    assert 0 < state["step"] < 200
    assert all(torch.isfinite(v).all() for v in state["model"].values())


# ---------------------------------------------------------------------------- bad input


def test_a_crop_larger_than_the_frames_is_said(small_run, tmp_path, caplog):
    run = copy_run(small_run, tmp_path / "run")
    with caplog.at_level("WARNING"):
        train(options(run, "awdnn", 2))
        assert "larger than" not in caplog.text
        train(TrainOptions(run=run, method="awdnn", restart=True, config=TrainConfig(steps=2, batch=2, crop_size=100000),
                           method_options=MethodOptions(blocks=1, units=8)))
    assert "crop 100000 is larger than the 80x48 LR frames: crops of 48 are trained" in caplog.text


def test_bad_input_is_one_line_exit_2(cli, small_run, tmp_path):
    def check(args, message):
        code, out, err, exc = cli(train_command, args)
        assert code == 2, (out, err, exc)
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err

    check([tmp_path / "nope"], "does not exist")
    (tmp_path / "empty").mkdir()
    check([tmp_path / "empty"], "not a stdo RUN")
    old = copy_run(small_run, tmp_path / "old")
    info = json.loads((old / "run.json").read_text())
    (old / "run.json").write_text(json.dumps({**info, "format": 0}))
    check([old], "format 0")
    no_chunks = copy_run(small_run, tmp_path / "no_chunks")
    (no_chunks / "clusters.npz").unlink()
    check([no_chunks, *TINY], "no chunk map")
    check([small_run, "--steps", "0"], "must be above 0")
    check([small_run, "--steps", "1", "--joint-start", "0", *TINY], "fewer than the 2 models")

    run = copy_run(small_run, tmp_path / "run")
    assert cli(train_command, [run, "--method", "awdnn", "--steps", "20", *TINY])[0] == 0
    before = (run / "models/awdnn/state/joint.pt").read_bytes()
    check([run, "--method", "awdnn", "--steps", "20", "--blocks", "3", *TINY[2:]], "other options")
    assert (run / "models/awdnn/state/joint.pt").read_bytes() == before  # not overwritten
    assert cli(train_command, [run, "--method", "awdnn", "--steps", "20", "--blocks", "3", *TINY[2:], "--restart"])[0] == 0
    (run / "models/awdnn/state/joint.pt").write_bytes(b"garbage")
    check([run, "--method", "awdnn", "--steps", "20", "--blocks", "3", *TINY[2:]], "unreadable")


# ---------------------------------------------------------------------------- torchrun


@pytest.mark.slow  # every method 480 steps / subprocesses / torchrun
@pytest.mark.parametrize("method", ["awdnn", "stdo", "brvsr", "vinr"])
def test_torchrun_two_cpu_processes(small_run, tmp_path, method):
    run = copy_run(small_run, tmp_path / "run")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "stdo.train.cli", str(run), "--method", method, "--steps", "40", "--checkpoint-every", "20", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run / "models" / method / "report.json").read_text())
    assert report["world_size"] == 2 and report["steps"] == 40
    states = sorted(p.name for p in (run / "models" / method / "state").iterdir())
    assert states == (["joint-start.pt", "model0.pt", "model1.pt"] if method == "stdo" else ["joint.pt"])
    if method != "stdo":  # both ranks' sampler RNG states are kept, for an exact resume
        assert len(torch.load(run / f"models/{method}/state/joint.pt", weights_only=True)["rng"]) == 2


def _torchrun(run: Path, *args: str) -> list:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "stdo.train.cli", str(run), *args]


def _kill_all_naming(path: Path) -> None:
    """SIGKILL every process whose command line names `path`."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(path).encode() in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


@pytest.mark.slow  # every method 480 steps / subprocesses / torchrun
def test_torchrun_joint_model_killed_and_resumed_ends_exactly_where_an_uninterrupted_run_ends(small_run, tmp_path):
    """jstdo's data-aware sampler state is all-reduced, so every rank holds the same one and resume is exact."""
    args = ["--method", "jstdo", "--steps", "160", "--checkpoint-every", "20", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, killed = copy_run(small_run, tmp_path / "whole"), copy_run(small_run, tmp_path / "killed")
    done = subprocess.run(_torchrun(whole, *args), capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    proc = subprocess.Popen(_torchrun(killed, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    state = killed / "models/jstdo/state/joint.pt"
    deadline = time.time() + 120
    while _state_step(state) < 40 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    _kill_all_naming(killed)  # the launcher and both ranks (torchrun starts the ranks in sessions of their own)
    proc.wait()
    time.sleep(1)
    saved = _state_step(state)
    assert 40 <= saved < 160
    done = subprocess.run(_torchrun(killed, *args, "-v"), capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"joint: resuming at step {saved} of" in done.stderr  # not a restart from step 0
    a, b = (torch.load(r / "models/jstdo/state/joint.pt", weights_only=True) for r in (whole, killed))
    assert a["sampler"] == b["sampler"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
