"""Never worse than the start (the best evaluated state is kept) and chunk experts from a joint start."""

import shutil

import numpy as np
import pytest
import torch

from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.grid import Grid
from stdo.models import create_model
from stdo.train.data import ClipFrames, PatchSampler, patches_of
from stdo.cluster.chunkmap import load_chunkmap
from stdo.rundir import CLUSTERS, grid_of, load_frames, read_run_info
from stdo.train.loop import Evaluator, Job, TrainConfig, lr_factor, scheduled_lr_factor, train_job
from stdo.train.methods import MethodOptions, build_training_plan
from stdo.train.pipeline import TrainOptions, train
from stdo.train.sampling import ChunkSampler
from stdo.clip import Crop




def options(run, method, steps, keep_last=False, **method_options):
    return TrainOptions(run=run, method=method,
                        config=TrainConfig(steps=steps, batch=8, crop_size=16, checkpoint_every=50, keep_last=keep_last),
                        method_options=MethodOptions(blocks=2, units=8, **method_options))


class _GoesWrong:
    """A sampler whose targets turn to noise after `good` draws: a loss that goes bad late."""

    def __init__(self, sampler: ChunkSampler, good: int) -> None:
        self.sampler, self.good, self.draws = sampler, good, 0

    def draw(self, batch, rng, evaluation=False):
        lr, hr, mask, ids = self.sampler.draw(batch, rng)
        self.draws += 1
        if self.draws > self.good + 1:  # the first draw is the evaluation crops
            hr = torch.rand_like(hr)
        return lr, hr, mask, ids

    def __getattr__(self, name):
        return getattr(self.sampler, name)


def test_a_run_that_goes_wrong_late_keeps_its_best_state(tmp_path):
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (2, 12, 16, 3), dtype=np.uint8)
    hr = np.repeat(np.repeat(lr, 2, 1), 2, 2)  # blocky: far from bicubic, easy to learn
    grid = Grid(12, 16, 2, 2, 2)
    sampler = ChunkSampler([PatchSampler(ClipFrames(hr, lr, grid, 2), patches_of(np.zeros((2, 2, 2), np.uint8)), crop=8)])
    job = Job("joint", create_model("wdsr_a_mobile", scale=2, num_blocks=1, num_residual_units=8), 60,
              _GoesWrong(sampler, good=30))
    cfg = TrainConfig(steps=60, batch=8, crop_size=8, learning_rate=3e-3, amp="off", checkpoint_every=20)
    result = train_job(job, cfg, tmp_path / "state.pt", {"test": 1})
    scores = dict(result.evaluations)
    assert scores[0] < max(scores.values())  # training helped before it went wrong ...
    assert scores[60] < max(scores.values())  # ... and the noise made it worse
    assert result.kept_step <= 36 and scores[result.kept_step] == max(scores.values())
    evaluator = Evaluator(Job("joint", job.model, 60, sampler), cfg, 0, torch.device("cpu"))
    assert evaluator.psnr(job.model) == pytest.approx(scores[result.kept_step], abs=1e-6)  # the kept weights


def test_a_short_run_is_never_below_bicubic(small_run, tmp_path):
    run = shutil.copytree(small_run, tmp_path / "run")
    report = train(options(run, "awdnn", 10))
    assert report["psnr_video"] >= report["bicubic"]["psnr_video"] - 0.005, report["jobs"]
    chunked = train(options(run, "stdo", 10))  # the default: a joint start of 8 steps, then 1 step per chunk model
    assert chunked["psnr_video"] >= chunked["bicubic"]["psnr_video"] - 0.005, chunked["jobs"]
    last = train(options(shutil.copytree(small_run, tmp_path / "last"), "awdnn", 10, keep_last=True))
    assert last["psnr_video"] < report["psnr_video"]  # what keeping the last state would have shipped


def _weights(run, method, i):
    return torch.load(run / f"models/{method}/model{i}.pt", weights_only=True)


def _plan(run, method, steps, **method_options):
    hr, lr = load_frames(run)
    return build_training_plan(method, ClipFrames(hr, lr, grid_of(read_run_info(run)), 2), load_chunkmap(run / CLUSTERS).chunks,
                               TrainConfig(steps=steps), options(run, method, steps, **method_options).method_options)


def test_a_joint_start_of_0_is_plain_stdo_and_of_1_is_jstdo_copied_per_chunk(small_run, tmp_path):
    zero = _plan(small_run, "stdo", 40, joint_start=0.0)  # plain: k models from scratch, each its own schedule
    assert [(j.name, j.steps, j.init_from, j.schedule) for j in zero.jobs] == [("model0", 20, None, None),
                                                                               ("model1", 20, None, None)]
    runs = {name: shutil.copytree(small_run, tmp_path / name) for name in ("one", "jstdo")}
    one = train(options(runs["one"], "stdo", 40, joint_start=1.0))
    train(options(runs["jstdo"], "jstdo", 40))
    for i in range(2):
        c, j = _weights(runs["one"], "stdo", i), _weights(runs["jstdo"], "jstdo", 0)
        assert all(torch.equal(c[k], j[k]) for k in j)
    assert one["steps"] == 40 and one["num_models"] == 2
    assert one["params"] == 2 * sum(p.numel() for p in create_model(
        "wdsr_a_mobile", scale=2, num_blocks=2, num_residual_units=8).parameters())  # k models, not the start
    assert not (runs["one"] / "models/stdo/joint-start.pt").exists()


def test_stdo_starts_from_a_joint_model_by_default_and_its_experts_run_the_rest_of_its_schedule(small_run, tmp_path):
    plan = _plan(small_run, "stdo", 40)
    assert [(j.name, j.steps, j.init_from, j.schedule) for j in plan.jobs] == [
        ("joint-start", 30, None, (0, 30, 40)), ("model0", 5, "joint-start", (30, 40, 40)),
        ("model1", 5, "joint-start", (30, 40, 40))]
    whole = [lr_factor(step, 40) for step in range(40)]  # jstdo's schedule over the 40 steps
    assert [scheduled_lr_factor(step, 30, (0, 30, 40)) for step in range(30)] == whole[:30]
    tail = [scheduled_lr_factor(step, 5, (30, 40, 40)) for step in range(5)]
    assert tail == whole[30::2]  # each expert runs the whole tail in its 5 steps
    assert _plan(small_run, "cafm", 40).joint_start == 0.0  # cafm trains as CaFM does unless asked
    report = train(options(shutil.copytree(small_run, tmp_path / "run"), "stdo", 40))
    assert report["method_options"]["joint_start"] == 0.75 and report["steps"] == 40
    assert [j["name"] for j in report["jobs"]] == ["joint-start", "model0", "model1"]


def test_a_joint_start_share_out_of_range_is_refused(small_run, tmp_path):
    from stdo.errors import StdoError

    with pytest.raises(StdoError, match="`joint_start` 1.5 must be between 0 and 1"):
        train(options(shutil.copytree(small_run, tmp_path / "run"), "stdo", 40, joint_start=1.5))


def test_a_general_scorer_made_here_is_what_cluster_loads(cli, bikes, bunny, tmp_path):
    from stdo.cluster.pipeline import load_general_model
    from stdo.train.general_cli import general_command

    out = tmp_path / "general.pt"
    args = [bikes, bunny, "--out", out, "--scale", "4", "--model", "wdsr_a_mobile", "--frames", "3", "--steps", "30",
            "--batch", "4", "--crop-size", "16", "-q"]
    code, stdout, err, _ = cli(general_command, args)
    assert code == 0, err
    assert "over 2 clip(s), 6 frames" in stdout and "--scorer general --checkpoint" in stdout
    model = load_general_model(out, 4)
    assert model.config.scale == 4 and model.config.num_blocks == 4
    assert not list(tmp_path.glob(".general.pt.state*"))  # its resume state is gone once the model is written
    code, _, err, _ = cli(general_command, args)  # written once: not overwritten without --overwrite
    assert code == 2 and "exists" in err and len(err.strip().splitlines()) == 1
    run = tmp_path / "run"
    cluster(ClusterOptions(source=bikes, run=run, scale=4, grid=(4, 2), chunks=2, frames=3, scorer="general",
                           checkpoint=out, crop=Crop(160, 96, 240, 96)))
    assert (run / "clusters.npz").is_file()


def test_cafm_from_a_joint_start(small_run, tmp_path):
    """cafm's backbone starts from jstdo's model: at 0% it is plain cafm; at 100% every folded chunk model is
    jstdo's model (the modulation starts as the identity)."""
    from stdo.train.methods import load_models

    runs = {name: shutil.copytree(small_run, tmp_path / name) for name in ("plain", "zero", "one", "jstdo")}
    train(options(runs["plain"], "cafm", 40))
    train(options(runs["zero"], "cafm", 40, joint_start=0.0))
    half = train(options(shutil.copytree(small_run, tmp_path / "half"), "cafm", 40, joint_start=0.5))
    train(options(runs["one"], "cafm", 40, joint_start=1.0))
    train(options(runs["jstdo"], "jstdo", 40))
    a, b = (torch.load(runs[n] / "models/cafm/cafm.pt", weights_only=True) for n in ("plain", "zero"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(1, 3, 12, 16)
    (joint,) = load_models(runs["jstdo"] / "models/jstdo", 1)
    for model in load_models(runs["one"] / "models/cafm", 2):
        torch.testing.assert_close(model(x), joint(x), rtol=0, atol=1e-6)
    assert [j["steps"] for j in half["jobs"]] == [20, 20] and half["steps"] == 40


def test_a_general_model_trains_over_clips_smaller_than_the_crop(cli, bikes, tmp_path):
    """carphone's LR frame at x4 is 44x36, under the 48-pixel crop: every batch takes the smallest clip's size."""
    from stdo.clips import clip_path
    from stdo.train.general_cli import general_command

    args = [bikes, clip_path("carphone"), "--out", tmp_path / "g.pt", "--scale", "4", "--model", "wdsr_a_mobile",
            "--frames", "2", "--steps", "5", "--batch", "4", "--crop-size", "48", "-q"]
    code, _, err, exception = cli(general_command, args)
    assert code == 0, (err, exception)
