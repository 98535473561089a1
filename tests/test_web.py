"""The web player (android_demo/web) in headless Chromium on a real bundle: the same SR frames as the
Python player, its own decoding, and a tampered bundle refused in the page.

Needs node, Debian's chromium and android_demo/web/node_modules (make android-deps); skipped
without them, except under CI=true, where a missing tool is a failure.
"""

import base64
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from stdo.bundle import write_plain_bundle
from stdo.export.pipeline import ExportOptions, export
from stdo.play.player import Player
from tampering import flip_update_bit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "android_demo" / "web"))
from stdo_web import drive, missing_tools, serve  # noqa: E402 - the page's own harness, beside it

# headless Chromium; a module fixture's setup (the shared trained RUN, an export, the page's jobs) counts in its first
# test's time, so the hang guard here is above drive()'s own timeout plus that preparation on a loaded 2-core machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

MISSING = missing_tools()
if MISSING and os.environ.get("CI") != "true":
    pytest.skip(f"web player tools missing: {', '.join(MISSING)} (make android-deps)", allow_module_level=True)

VARIANTS = [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("litert", "fp32"), ("litert", "int8")]


@pytest.fixture(scope="module")
def page(trained_run, tmp_path_factory):
    """One Chromium session over a bundle (ONNX + TFLite, fp32 + int8): every variant on the Python player's
    own RGB frames, onnxruntime fp32 on the frames the page decodes itself, a tampered copy, the page."""
    assert not MISSING, f"web player tools missing under CI: {', '.join(MISSING)}"
    work = tmp_path_factory.mktemp("web")
    run = work / "run"
    shutil.copytree(trained_run, run)
    export(ExportOptions(run=run, format=("onnx", "tflite"), quantize=("int8",), calibration=16, verify_frames=1))
    lr = np.load(run / "frames/lr.npy")
    (work / "rgb").mkdir()
    (work / "rgb/lr.rgb").write_bytes(np.ascontiguousarray(lr).tobytes())
    tampered = work / "tampered"
    shutil.copytree(run / "bundle", tampered)
    for model in (tampered / "models/model1.onnx", tampered / "models/model1_int8.onnx"):  # the page opens on int8
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
    claims = work / "claims"  # a manifest that claims a huge clip, with the model map to match
    shutil.copytree(run / "bundle", claims)
    manifest = json.loads((claims / "manifest.json").read_text())
    manifest.update(lr_size=[4096, 4096], frames=1024, grid={**manifest["grid"], "cols": 512, "rows": 512})
    manifest["video"].update(width=4096, height=4096, frames=1024)
    manifest["model_map"]["shape"] = [1024, 512, 512]
    (claims / "manifest.json").write_text(json.dumps(manifest))
    lies = {}  # manifests that lie about what a client plays, each refused as the Python reader refuses it
    for name, change in LIES.items():
        lies[name] = work / f"lie-{name}"
        shutil.copytree(run / "bundle", lies[name])
        manifest = json.loads((lies[name] / "manifest.json").read_text())
        change[0](manifest)
        (lies[name] / "manifest.json").write_text(json.dumps(manifest))
    elsewhere = work / "recommend-coreml"  # a bundle whose headline variant a browser cannot play
    shutil.copytree(run / "bundle", elsewhere)
    manifest = json.loads((elsewhere / "manifest.json").read_text())
    manifest["recommended"] = {"format": "coreml", "precision": "int8"}
    (elsewhere / "manifest.json").write_text(json.dumps(manifest))
    for scale in (1, 2):  # the stream alone: at x1 the HR stream as it decodes, at x2 upsampled by bicubic
        write_plain_bundle(work / f"plain{scale}", run / "bundle/lr.mp4", scale=scale)
    jobs = [{"bundle": "/bundle/", "kind": "play", "backend": b, "precision": p, "keep": True, "rgb": "/rgb/lr.rgb"}
            for b, p in VARIANTS]
    jobs += [{"bundle": "/bundle/", "kind": "play", "backend": "onnxruntime", "precision": "fp32", "keep": True},
             {"bundle": "/tampered/", "kind": "play", "backend": "onnxruntime", "precision": "fp32"},
             {"kind": "page", "url": "index.html?bundle=/tampered/"},
             {"kind": "page", "url": "index.html?bundle=/bundle/"},
             {"kind": "page", "url": "index.html?bundle=/bundle/", "play": True, "backend": "litert", "precision": "int8"},
             {"bundle": "/claims/", "kind": "play", "backend": "onnxruntime", "precision": "fp32"},
             {"kind": "page", "url": "index.html?bundle=/bundle/&sr_delay_ms=150", "play": True},  # a slow model
             {"bundle": "/bundle/", "kind": "play", "backend": "webgpu", "precision": "fp32", "keep": True,
              "rgb": "/rgb/lr.rgb"},
             {"bundle": "/bundle/", "kind": "play", "backend": "litert", "precision": "fp32", "rgb": "/rgb/lr.rgb",
              "frames": 1},  # a second LiteRT.js runner of the same files in the page
             {"kind": "derive", "cases": [case for case, _ in DERIVE_CASES]}]
    jobs += [{"bundle": f"/lie-{name}/", "kind": "play", "backend": "onnxruntime", "precision": "fp32"} for name in LIES]
    jobs += [{"bundle": f"/plain{scale}/", "kind": "play", "backend": backend, "precision": "int8", "keep": True,
              "rgb": "/rgb/lr.rgb"} for scale, backend in ((1, "onnxruntime"), (2, "litert"))]
    jobs += [{"kind": "page", "url": "index.html?bundle=/plain1/", "play": True},
             {"kind": "page", "url": "index.html?bundle=/recommend-coreml/"}]
    with serve({"bundle": run / "bundle", "rgb": work / "rgb", "tampered": tampered, "claims": claims,
                "plain1": work / "plain1", "plain2": work / "plain2", "recommend-coreml": elsewhere,
                **{f"lie-{name}": folder for name, folder in lies.items()}}) as base:
        out = drive(base + "web/index.html?test=1", jobs)
    return run, lr, dict(zip(["rgb " + " ".join(v) for v in VARIANTS] + ["decoded", "tampered", "tampered page",
                                                                       "page", "played", "claims", "slow", "webgpu",
                                                                       "litert again", "derive"]
                             + [f"lie {n}" for n in LIES] + ["plain 1", "plain 2", "plain page", "coreml page"],
                             out["results"]))


def _relabel(manifest: dict) -> None:
    """The ONNX int8 file of model 0 listed as fp32 (its own path kept)."""
    entry = next(f for f in manifest["models"][0]["files"] if f["format"] == "onnx" and f["precision"] == "int8")
    manifest["models"][0]["files"] = [f for f in manifest["models"][0]["files"]
                                      if not (f["format"] == "onnx" and f["precision"] == "fp32")]
    entry["precision"] = "fp32"


def _derive_cases() -> list[tuple[dict, object]]:
    """Model maps over uneven grids, margins and shape sets (the whole frame among them, and a base shape alone,
    where rectangles are halved), each with the plan stdo.plan.make_plan makes, or the refusal of shapes that hold
    no patch."""
    from stdo.grid import Grid
    from stdo.plan import PlanError, base_shape, check_parameters, choose_shapes, make_plan

    rng = np.random.default_rng(7)
    cases = []
    for height, width, rows, cols, margin, count, models in [(54, 90, 4, 6, 4, 3, 3), (48, 80, 5, 10, 0, 1, 2),
                                                             (48, 80, 5, 10, 10, 3, 2), (270, 480, 5, 10, 4, 3, 4),
                                                             (37, 61, 3, 7, 2, 2, 255), (64, 64, 1, 1, 6, 1, 1)]:
        grid = Grid(height, width, rows, cols)
        maps = rng.integers(0, models, (6, rows, cols)).astype(np.uint8)
        maps[2], maps[4] = maps[1], maps[0]  # frames that repeat a frame plan
        maps[5] = (np.arange(cols)[None] >= cols // 2) * (models > 1)  # two large regions
        for shapes in {choose_shapes(maps, grid, margin, count), (base_shape(grid, margin),),
                       (base_shape(grid, margin), (height, width))}:
            case = {"map": base64.b64encode(maps.tobytes()).decode(), "frames": 6, "rows": rows, "cols": cols,
                    "width": width, "height": height, "shapes": [list(v) for v in shapes], "margin": margin}
            cases.append((case, make_plan(maps, grid, margin, shapes)))
    case = {**cases[0][0], "shapes": [[4, 4]]}
    with pytest.raises(PlanError) as refused:
        check_parameters(case["shapes"], case["margin"], Grid(54, 90, 4, 6))
    return cases + [(case, str(refused.value))]


DERIVE_CASES = _derive_cases()


def test_the_page_derives_the_python_plan_run_for_run(page):
    """The plan both players derive from a bundle's model map is the same, run for run, on every case; shapes
    that hold no patch are refused with the same words."""
    _, _, results = page
    derived = results["derive"]
    assert derived["ok"], derived
    for (case, expected), got in zip(DERIVE_CASES, derived["plans"], strict=True):
        if isinstance(expected, str):
            assert got.get("error") == expected, (case["shapes"], got)
            continue
        assert "error" not in got, got
        assert got["framePlan"] == expected.frame_plan.tolist()
        assert got["runs"] == expected.runs.reshape(-1).tolist(), (case["shapes"], case["margin"])


LIES = {  # name -> (change, what the refusal says)
    "fps": (lambda m: m.update(fps=30.0), "is not the video's"),
    "relabelled": (_relabel, "file of model 0 is"),
    "grid finer than a patch": (lambda m: m["grid"].update(cols=40, rows=24), "cols must be"),
    "input shape": (lambda m: m["models"][0]["files"][0].update(input_shape=[1, 3, 20, 20]), "input_shape"),
    "plan shapes": (lambda m: m["plan"].update(shapes=[[2, 2]]), "no shape holds one patch"),
}


def _frames(encoded: list[str], dtype, shape) -> np.ndarray:
    return np.stack([np.frombuffer(base64.b64decode(s), dtype).reshape(shape) for s in encoded])


@pytest.mark.parametrize("backend, precision", VARIANTS)
def test_web_player_gives_the_python_players_frames(page, backend, precision):
    run, lr, results = page
    result = results[f"rgb {backend} {precision}"]
    assert result["ok"], result
    player = Player(run / "bundle", backend, precision)
    expected = player.upscale(lr, 0).numpy()
    web = _frames(result["sr"], np.float32, expected.shape[1:])
    assert web.shape == expected.shape and result["fps"] > 0
    difference = np.abs(web - expected)
    print(f"{backend} {precision}: web vs Python player, mean {difference.mean() * 255:.4f}, max {difference.max() * 255:.3f}"
          " (of 255)")
    if precision == "fp32":  # float rounding
        assert difference.max() <= 1e-4
    else:  # the int8 kernels of ONNX Runtime Web and LiteRT.js (WASM SIMD, whose relaxed int8 dot products are
        # the CPU's own) round a few activations one step apart from the native runtimes: a few pixels move by up to
        # a few grey levels, the frame as a whole by a fraction of one (seen on an AMD EPYC: max 2.5, mean 0.29)
        assert difference.max() <= 4 / 255 and difference.mean() <= 0.5 / 255


def test_web_player_decodes_the_stream_itself(page):
    run, lr, results = page
    result = results["decoded"]
    assert result["ok"] and result["isolated"] and result["threads"] >= 1, result
    decoded = _frames(result["decoded"], np.uint8, lr.shape[1:])
    assert decoded.shape == lr.shape  # every frame, in order, WebCodecs + the stream's own BT.709 limited matrix
    assert np.abs(decoded.astype(int) - lr).mean() <= 0.01 and np.abs(decoded.astype(int) - lr).max() <= 2
    expected = Player(run / "bundle", "onnxruntime").upscale(lr, 0).numpy()
    web = _frames(result["sr"], np.float32, expected.shape[1:])
    difference = np.abs(web - expected)
    print(f"web player, own decoding, vs Python player: mean {difference.mean():.2e}, max {difference.max():.2e}")
    assert difference.mean() <= 2 / 255


@pytest.mark.parametrize("scale", [1, 2])
def test_a_bundle_without_models_plays_the_python_players_frames(page, scale):
    """The stream alone: the page plays the HR stream as it decodes (x1), or upsamples it as stdo.resample does
    (x2), with no model fetched."""
    run, lr, results = page
    result = results[f"plain {scale}"]
    assert result["ok"], result
    expected = Player(run.parent / f"plain{scale}", "onnxruntime", "int8").upscale(lr, 0).numpy()
    web = _frames(result["sr"], np.float32, expected.shape[1:])
    assert web.shape == expected.shape and np.abs(web - expected).max() <= 1e-6
    shown = results["plain page"]
    assert shown["ok"] and "frame 6/6" in shown["stats"] and "no model: the HR stream" in shown["stats"], shown


def test_the_page_first_fetches_the_variant_the_bundle_recommends(page):
    """The page opens on the bundle's recommended variant (the one its report counts: ONNX int8 here) and fetches
    only its files; each precision says what it downloads. A recommended variant the browser cannot play (CoreML)
    falls back to the next the bundle has, and the page says so."""
    run, _, results = page
    manifest = json.loads((run / "bundle/manifest.json").read_text())
    assert manifest["recommended"] == {"format": "onnx", "precision": "int8"}
    shown = results["page"]
    assert (shown["backend"], shown["precision"]) == ("onnxruntime", "int8")
    assert sorted(set(shown["fetched"])) == ["model0_int8.onnx", "model1_int8.onnx"], shown["fetched"]
    int8 = sum(f["bytes"] for m in manifest["models"] for f in m["files"] if (f["format"], f["precision"]) ==
               ("onnx", "int8"))
    assert f"int8 ({int8 / 1024:.1f} KB)" in shown["precisions"] and "fp16 (not in the bundle)" in shown["precisions"]
    fallback = results["coreml page"]
    assert fallback["ok"] and (fallback["backend"], fallback["precision"]) == ("onnxruntime", "int8")
    assert "recommended coreml int8 is not playable in a browser: playing onnx int8" in fallback["stats"]


def test_a_tampered_bundle_is_refused_in_the_page(page):
    _, _, results = page
    assert not results["tampered"]["ok"] and "fails its sha256 check" in results["tampered"]["error"]
    shown = results["tampered page"]
    assert not shown["ok"] and "model1_int8.onnx" in shown["error"]
    assert "sha256" in shown["error"] and not shown["canPlay"]
    ready = results["page"]
    assert ready["ok"] and ready["canPlay"] and "6 frames, 80x48 -> x2" in ready["stats"]


def test_sizes_claimed_by_the_manifest_are_checked_against_the_video_before_any_allocation(page):
    """1024 frames of 4096x4096 on a 1024x1024 grid claimed for a 6-frame 80x48 video: refused by the video's own
    size and frame count, before the 1 GB model map or the plan is allocated."""
    _, _, results = page
    refused = results["claims"]
    assert not refused["ok"] and "the file is 80x48 with 6 frames, the manifest says 4096x4096 with 1024" in \
        refused["error"], refused


@pytest.mark.parametrize("name", LIES)
def test_a_manifest_that_lies_is_refused_in_the_page_as_in_python(page, name):
    from stdo.bundle import BundleError, read_bundle

    run, _, results = page
    refused = results[f"lie {name}"]
    assert not refused["ok"] and LIES[name][1] in refused["error"], refused
    bundle = run.parent / f"lie-{name}"
    with pytest.raises(BundleError, match=LIES[name][1]):
        read_bundle(bundle)


def test_the_page_plays_the_bundle_with_the_chosen_runtime(page):
    """LiteRT.js downloads one TFLite file per model, whatever the plan's window shapes (a signature each)."""
    run, _, results = page
    played = results["played"]  # Play pressed with LiteRT.js int8 chosen in the page's switch
    assert played["ok"] and played["stats"].startswith("frame 6/6 ") and "litert int8" in played["stats"], played
    assert len(json.loads((run / "bundle/manifest.json").read_text())["plan"]["shapes"]) > 1
    assert sorted(set(played["fetched"]) - {"model0_int8.onnx", "model1_int8.onnx"}) == [
        "model0_int8.tflite", "model1_int8.tflite"], played["fetched"]


def test_litert_threads_stay_with_the_files_however_often_the_page_opens_them(page):
    """LiteRT.js's threaded build has a fixed set of worker threads for the page (runtimes.js): a second runner of
    the same files reuses the compiled models, so it runs on as many threads as the first, not on one."""
    _, _, results = page
    first, again = results["rgb litert fp32"], results["litert again"]
    if first["threads"] == 1:
        pytest.skip("one core: the page runs LiteRT.js on one thread")
    assert first["threaded"]["withThreads"] >= 1, first["threaded"]
    assert again["ok"] and again["threaded"] == first["threaded"], (first["threaded"], again["threaded"])


@pytest.fixture(scope="module")
def coded(tmp_path_factory, bikes):
    """A bundle of coded model updates (stdo from the shipped x4 prior, --tune channels; ONNX + TFLite int8) played
    in the page on the Python player's frames, and a copy with one update byte flipped."""
    from stdo.cluster.pipeline import ClusterOptions, cluster
    from stdo.fileio import sha256_of
    from stdo.train.loop import TrainConfig
    from stdo.train.methods import MethodOptions
    from stdo.train.pipeline import TrainOptions, train
    from stdo.clip import Crop

    assert not MISSING, f"web player tools missing under CI: {', '.join(MISSING)}"
    work = tmp_path_factory.mktemp("coded")
    run = work / "run"
    cluster(ClusterOptions(source=bikes, run=run, scale=4, grid=(2, 2), chunks=2, margin=8, frames=3,
                           crop=Crop(160, 96, 240, 96)))
    train(TrainOptions(run=run, method="stdo", config=TrainConfig(steps=20, batch=8, crop_size=16),
                       method_options=MethodOptions(tune="channels")))
    export(ExportOptions(run=run, format=("onnx", "tflite"), quantize=("int8",), update="on", verify_frames=1))
    lr = np.load(run / "frames/lr.npy")
    (work / "rgb").mkdir()
    (work / "rgb/lr.rgb").write_bytes(np.ascontiguousarray(lr).tobytes())
    flipped = work / "flipped"
    shutil.copytree(run / "bundle", flipped)
    manifest = json.loads((flipped / "manifest.json").read_text())
    entry = next(e for m in manifest["models"] for e in m["files"] if e["format"] == "onnx" and e["precision"] == "int8")
    update = flipped / entry["update"]["path"]
    data = bytearray(update.read_bytes())
    flip_update_bit(data)
    update.write_bytes(bytes(data))
    entry["update"]["sha256"] = sha256_of(update)  # the update's own check passes: the rebuild must catch it
    (flipped / "manifest.json").write_text(json.dumps(manifest))
    jobs = [{"bundle": "/coded/", "kind": "play", "backend": b, "precision": "int8", "keep": True, "rgb": "/rgb/lr.rgb"}
            for b in ("onnxruntime", "litert")]
    jobs += [{"bundle": "/flipped/", "kind": "play", "backend": "onnxruntime", "precision": "int8"},
             {"kind": "page", "url": "index.html?bundle=/flipped/", "play": True, "backend": "onnxruntime",
              "precision": "int8"}]  # the page checks its default variant (fp32) on load, int8 when chosen
    with serve({"coded": run / "bundle", "rgb": work / "rgb", "flipped": flipped}) as base:
        out = drive(base + "web/index.html?test=1", jobs)
    return run, lr, dict(zip(["onnxruntime", "litert", "flipped", "flipped page"], out["results"]))


@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_the_page_rebuilds_coded_updates_and_plays_the_python_players_frames(coded, backend):
    run, lr, results = coded
    assert results[backend]["ok"], results[backend]
    expected = Player(run / "bundle", backend, "int8").upscale(lr, 0).numpy()
    web = _frames(results[backend]["sr"], np.float32, expected.shape[1:])
    assert web.shape == expected.shape and np.abs(web - expected).max() <= 2 / 255


def test_a_flipped_update_byte_is_refused_in_the_page(coded):
    _, _, results = coded
    refused = results["flipped"]
    assert not refused["ok"] and any(m in refused["error"] for m in ("does not rebuild", "not zlib data")), refused
    assert not results["flipped page"]["ok"] and "update" in results["flipped page"]["error"]


def test_a_model_slower_than_the_clock_drops_frames_and_keeps_time(page):
    """150 ms of SR per frame at 25 fps: the clock does not wait, late frames are dropped and counted, the last
    frame is shown."""
    _, _, results = page
    slow = results["slow"]
    assert slow["ok"] and slow["stats"].startswith("frame 6/6 "), slow
    dropped = int(slow["stats"].split("dropped ")[1].split()[0])
    assert 1 <= dropped <= 4, slow["stats"]  # frames 2-5 of 6 fall behind; the first and the last are shown


@pytest.fixture(scope="module")
def frames80x48(bikes) -> np.ndarray:
    """120 real frames at 80x48 (the test bundle's LR size): bikes cropped and downscaled x4."""
    from stdo.resample import downscale_bicubic
    from stdo.video import read_video

    return downscale_bicubic(read_video(bikes, count=120, box=(160, 40, 320, 192))[0], 4)


@pytest.fixture(scope="module")
def long_stream(frames80x48, tmp_path_factory):
    """120 frames (80x48 H.264 with B-frames, a keyframe every 30) streamed from frame 0 and sought to 47 and 90,
    each against the page's whole-clip decode."""
    from stdo.stream import StreamOptions, encode_stream

    assert not MISSING, f"web player tools missing under CI: {', '.join(MISSING)}"
    work = tmp_path_factory.mktemp("stream")
    encode_stream(work / "lr.mp4", frames80x48, 25.0, StreamOptions(crf=30, gop=30))
    job = {"kind": "stream", "video": "/clip/lr.mp4", "width": 80, "height": 48, "matrix": "bt709",
           "range": "limited", "starts": [0, 47, 90], "ahead": 4}
    with serve({"clip": work}) as base:
        return drive(base + "web/index.html?test=1", [job])["results"][0]


def test_streamed_decoding_equals_the_whole_clip_decode_and_seeks_to_the_frame(long_stream):
    assert long_stream["ok"] and long_stream["frames"] == 120, long_stream
    for run in long_stream["runs"]:
        assert run["equal"] and run["frames"] == 120 - run["start"], run  # frame N shown at N, identical pixels
        # the first frame is out long before the clip is decoded: after at most the frames back to its keyframe
        # (a GOP: 30), the window ahead (4) and the B-frame reordering (4)
        assert run["firstDecoded"] <= (4 + 4 if run["start"] == 0 else 30 + 4 + 4), run


def test_webgpu_gives_the_python_players_frames(page):
    """ONNX Runtime Web's WebGPU execution provider, on Chromium's SwiftShader adapter here (no GPU): the fp32
    models give the Python player's frames within the fp32 bound."""
    run, lr, results = page
    result = results["webgpu"]
    assert result["ok"], result
    expected = Player(run / "bundle", "onnxruntime", "fp32").upscale(lr, 0).numpy()
    web = _frames(result["sr"], np.float32, expected.shape[1:])
    assert web.shape == expected.shape and np.abs(web - expected).max() <= 1e-4


@pytest.fixture(scope="module")
def long_play(page, frames80x48, tmp_path_factory):
    """The page's bundle playing clips of 250 and 1,000 frames (80x48, its LR size: 120 real frames looped back and
    forth; frame t by the bundle's plan t mod 6) with ONNX Runtime Web int8, the JS heap read after a collection at
    250 frames and at the end; and the 120-frame clip cut at 60% of its bytes, streamed."""
    from stdo.stream import StreamOptions, encode_stream

    run, _, _ = page
    work = tmp_path_factory.mktemp("long")
    frames = frames80x48
    loop = np.concatenate([frames, frames[::-1]])
    for count in (250, 1000):
        encode_stream(work / f"long{count}.mp4", np.resize(loop, (count, *frames.shape[1:])), 25.0,
                      StreamOptions(crf=30, gop=50))
    encode_stream(work / "clip.mp4", frames, 25.0, StreamOptions(crf=30, gop=30))
    data = (work / "clip.mp4").read_bytes()
    (work / "cut.mp4").write_bytes(data[: int(0.6 * len(data))])
    long = {"bundle": "/bundle/", "kind": "long", "backend": "onnxruntime", "precision": "int8", "ahead": 8,
            "matrix": "bt709", "range": "limited"}
    jobs = [{**long, "video": "/clip/long250.mp4", "at": [250]}, {**long, "video": "/clip/long1000.mp4",
                                                                  "at": [250, 1000]},
            {"kind": "truncated", "video": "/clip/cut.mp4", "intact": "/clip/clip.mp4", "width": 80, "height": 48,
             "matrix": "bt709", "range": "limited"}]
    with serve({"bundle": run / "bundle", "clip": work}) as base:
        return drive(base + "web/index.html?test=1", jobs)["results"]


def test_a_long_clip_plays_in_bounded_memory(long_play):
    """1,000 frames hold no more decoded frames than the window does and leave the JS heap where 250 left it; the
    first frame comes as soon on the long clip as on the short one (nothing is decoded ahead of the window)."""
    short, long, _ = long_play
    assert short["ok"] and long["ok"] and short["frames"] == 250 and long["frames"] == 1000, (short, long)
    assert 1 <= long["held"] <= 8 and 1 <= short["held"] <= 8, (short, long)  # never more than the window (8)
    at250, at_end = long["samples"]
    assert at_end["heap"] <= 1.2 * at250["heap"] + (1 << 20), long["samples"]
    assert long["first_ms"] < 2 * short["first_ms"] + 200, (short["first_ms"], long["first_ms"])


def test_a_truncated_stream_plays_what_it_holds_then_says_why(long_play):
    cut = long_play[2]
    assert cut["ok"] and 0 < cut["frames"] < cut["total"] and cut["differ"] == [], cut  # the frames before the cut
    assert cut["error"] and "cut short" in cut["error"] and "download the bundle again" in cut["error"], cut
    assert cut["ms"] < 30000, cut  # no hang
