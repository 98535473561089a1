"""The bundle reader treats a bundle as untrusted: every check, and a fuzzer."""

import copy
import functools
import json
import math
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stdo.bundle import (MANIFEST, BundleContents, BundleError, decode_model_map, encode_model_map, file_entry,
                         read_bundle, write_manifest, write_plain_bundle)
from stdo.grid import Grid
from stdo.plan import base_shape, digest, make_plan
from stdo.stream import encode_stream


GRID = Grid(48, 80, 2, 4)
VIDEO = {"codec": "h264", "profile": "High", "pix_fmt": "yuv420p", "matrix": "bt709", "range": "limited",
         "width": 80, "height": 48, "frames": 6, "fps": 25.0, "duration_s": 0.24, "bitrate_kbps": 0.4}


@functools.cache
def _video_bytes() -> bytes:
    """A real 80x48 H.264 stream of 6 frames: the reader probes the video before trusting any size."""
    with tempfile.TemporaryDirectory() as tmp:
        frames = np.random.default_rng(1).integers(0, 256, (6, 48, 80, 3), dtype=np.uint8)
        encode_stream(Path(tmp) / "v.mp4", frames)
        return (Path(tmp) / "v.mp4").read_bytes()


def make_bundle(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    model_map = np.random.default_rng(0).integers(0, 2, (6, 2, 4)).astype(np.uint8)
    (root / "lr.mp4").write_bytes(_video_bytes())
    (root / "models").mkdir(exist_ok=True)
    files = []
    for i in range(2):
        path = root / "models" / f"model{i}.onnx"
        path.write_bytes(os.urandom(64))
        files.append([file_entry(root, path, format="onnx", precision="fp32", input_shape=[None, 3, None, None])])
    plan = make_plan(model_map, GRID, 6, (base_shape(GRID, 6), (48, 80)))
    write_manifest(root, BundleContents(method="stdo", joint=False, scale=2, grid=GRID, frames=6, fps=25.0,
                                        model_map=model_map, plan=plan, video=root / "lr.mp4", files=files,
                                        receptive_radius=6))
    return json.loads((root / MANIFEST).read_text())


def rewrite(root: Path, manifest: dict) -> None:
    (root / MANIFEST).write_text(json.dumps(manifest))


def test_a_good_bundle_reads(tmp_path):
    manifest = make_bundle(tmp_path)
    bundle = read_bundle(tmp_path)
    assert bundle.model_map.shape == (6, 2, 4) and bundle.manifest == manifest
    assert bundle.file(manifest["models"][1]["files"][0]).name == "model1.onnx"


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(version=1), "version"),
    (lambda m: m["video"].update(codec="mjpeg"), "codec must be"),
    (lambda m: m.pop("plan"), "plan must be"),
    (lambda m: m["plan"].update(shapes=[[30, 26]]), "bad plan: no shape holds one patch"),
    (lambda m: m["plan"].update(shapes=[[49, 80]]), "bad plan: a shape is larger than the frame"),
    (lambda m: m["plan"].update(shapes=[]), "bad plan: shapes must be"),
    (lambda m: m["plan"].update(margin=-1), "bad plan: margin must be"),
    (lambda m: m["model_map"].update(coding="zlib"), "coding must be by-patch-zlib"),
    (lambda m: m["plan"].update(margin=7), "plan derived from the model map is not the one export made"),
    (lambda m: m["plan"].update(shapes=[[36, 32]]), "plan derived from the model map is not the one"),
    (lambda m: m.update(scale=3), "plan derived from the model map is not the one"),
    (lambda m: m["video"].update(matrix="bt999"), "matrix and range"),
    (lambda m: m["video"].update(width=81), "does not match lr_size"),
    (lambda m: m["video"].update(frames=5), "frames, the manifest says 6"),
    (lambda m: m.update(format="other"), "not a stdo-bundle"),
    (lambda m: m["models"][0]["files"][0].update(path="../outside.onnx"), "must not use"),
    (lambda m: m["models"][0]["files"][0].update(path="/etc/passwd"), "must be relative"),
    (lambda m: m["models"][0]["files"][0].update(sha256="0" * 64), "sha256"),
    (lambda m: m["models"][0]["files"][0].update(bytes=63), "manifest says 63"),
    (lambda m: m["video"].update(bytes=-1), "bytes must be"),
    (lambda m: m.update(models=m["models"][:1]), "names model 1"),
    (lambda m: m["models"][1].update(model=0), "must be model 1"),
    (lambda m: m.update(frames=7), "frames, the manifest says 7"),
    (lambda m: m["grid"].update(cols=100), "cols must be"),
    (lambda m: m.pop("video"), "video must be"),
    (lambda m: m["models"][0]["files"][0].update(format="exe"), "format must be"),
    (lambda m: m.update(recommended={"format": "onnx", "precision": "fp16"}), "recommended must name"),
    (lambda m: m.update(recommended="onnx int8"), "recommended must name"),
])
def test_malformed_or_tampered_manifests_are_refused(tmp_path, change, message):
    manifest = make_bundle(tmp_path)
    change(manifest)
    rewrite(tmp_path, manifest)
    with pytest.raises(BundleError, match=message):
        read_bundle(tmp_path)


def test_tampered_file_and_links_are_refused(tmp_path):
    make_bundle(tmp_path / "a")
    (tmp_path / "a/models/model0.onnx").write_bytes(os.urandom(64))
    with pytest.raises(BundleError, match="sha256"):
        read_bundle(tmp_path / "a")
    manifest = make_bundle(tmp_path / "b")
    secret = tmp_path / "secret.onnx"
    secret.write_bytes((tmp_path / "b/models/model0.onnx").read_bytes())
    (tmp_path / "b/models/model0.onnx").unlink()
    (tmp_path / "b/models/model0.onnx").symlink_to(secret)
    rewrite(tmp_path / "b", manifest)
    with pytest.raises(BundleError, match="link"):
        read_bundle(tmp_path / "b")


def test_sizes_are_trusted_only_after_the_video_confirms_them(tmp_path):
    """A small manifest claiming a huge frame, grid and clip is refused by probing the video, before any
    model map or plan is inflated or any coverage array allocated from the claim."""
    manifest = make_bundle(tmp_path)
    (tmp_path / "modelmap.bin").write_bytes(zlib.compress(bytes(4096 * 4096), 9))  # ~4 KB, inflates to 16 MB
    manifest.update(lr_size=[4096, 4096], frames=1024, grid={"cols": 512, "rows": 512, "margin": 6})
    manifest["model_map"] = file_entry(tmp_path, tmp_path / "modelmap.bin", shape=[1024, 512, 512], coding="by-patch-zlib")
    manifest["video"].update(width=4096, height=4096, frames=1024)
    rewrite(tmp_path, manifest)
    with pytest.raises(BundleError, match="the file is 80x48 with 6 frames, the manifest says 4096x4096 with 1024"):
        read_bundle(tmp_path)
    manifest = make_bundle(tmp_path / "other")
    (tmp_path / "other/lr.mp4").write_bytes(b"x" * 11)
    manifest["video"] = file_entry(tmp_path / "other", tmp_path / "other/lr.mp4", **VIDEO)
    rewrite(tmp_path / "other", manifest)
    with pytest.raises(BundleError, match="video: not a readable video"):
        read_bundle(tmp_path / "other")


def test_the_model_map_codes_what_holds_over_time_in_little_and_reads_back_exactly():
    rng = np.random.default_rng(3)
    steady = np.repeat(rng.integers(0, 3, (1, 10, 20)), 250, 0).astype(np.uint8)
    steady[100:, :, 5:9] = 2  # a region changes model once
    flicker = rng.integers(0, 3, steady.shape).astype(np.uint8)
    for labels in (steady, flicker, rng.integers(0, 256, (7, 3, 5)).astype(np.uint8)):
        np.testing.assert_array_equal(decode_model_map(encode_model_map(labels), labels.shape), labels)
    # 250 frames whose labels hold, but for one change, cost about what two frames do
    assert len(encode_model_map(steady)) < 3 * len(encode_model_map(steady[:2]))


def test_the_plan_is_derived_from_the_model_map_not_shipped(tmp_path):
    manifest = make_bundle(tmp_path)
    bundle = read_bundle(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.mp4", "manifest.json", "modelmap.bin", "models"]
    assert manifest["plan"] == {"shapes": [[36, 32], [48, 80]], "margin": 6, "sha256": digest(bundle.plan, 2)}
    expected = make_plan(bundle.model_map, GRID, 6, ((36, 32), (48, 80)))
    np.testing.assert_array_equal(bundle.plan.runs, expected.runs)
    np.testing.assert_array_equal(bundle.plan.frame_plan, expected.frame_plan)


def test_a_model_map_bomb_is_refused_without_inflating_it(tmp_path):
    manifest = make_bundle(tmp_path)
    (tmp_path / "modelmap.bin").write_bytes(zlib.compress(bytes(50_000_000), 9))
    manifest["model_map"] = file_entry(tmp_path, tmp_path / "modelmap.bin", shape=[6, 2, 4], coding="by-patch-zlib")
    rewrite(tmp_path, manifest)
    with pytest.raises(BundleError, match="expected 48"):
        read_bundle(tmp_path)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)


NAMES = ("h264", "hevc", "av1", "High", "Main", "yuv420p", "yuv444p", "bt601", "bt709", "full", "limited", "onnx",
         "tflite", "torch", "coreml", "fp32", "fp16", "int8", "models/model0.onnx", "models/model1.onnx", "lr.mp4")


def plausible(value):
    """Values of the same kind as `value` that a careless or hostile writer could put in its place."""
    if isinstance(value, bool) or value is None:
        return st.sampled_from([True, False, None, 0, 1])
    if isinstance(value, int):
        return st.sampled_from([value - 1, value + 1, 2 * value, 0, 1])
    if isinstance(value, float):  # an earlier draw may have put NaN or infinity here: no round() of those
        return st.sampled_from([value * 1.2, value / 2, round(value), value + 1e-9] if math.isfinite(value)
                               else [value, 0.0, 1.0])
    if isinstance(value, str):
        return st.sampled_from(NAMES + (value[::-1], value.upper()))
    if isinstance(value, list):
        return st.sampled_from([value[:-1], value + value[-1:], value[::-1]] if value else [[None], [0]])
    return st.just({})


MUTATIONS = {
    "fps": lambda m: m.update(fps=30.0),
    "video fps": lambda m: m["video"].update(fps=30.0),
    "colour matrix": lambda m: m["video"].update(matrix="bt601"),
    "colour range": lambda m: m["video"].update(range="full"),
    "codec": lambda m: m["video"].update(codec="hevc"),
    "profile": lambda m: m["video"].update(profile="Main"),
    "duration": lambda m: m["video"].update(duration_s=9.0),
    "bitrate": lambda m: m["video"].update(bitrate_kbps=9.0),
    "input shape of a dynamic file": lambda m: m["models"][0]["files"][0].update(input_shape=[1, 3, 20, 20]),
    "one file for two models": lambda m: m["models"][1]["files"].__setitem__(0, copy.deepcopy(m["models"][0]["files"][0])),
    "a model file that is the video": lambda m: m["models"][0]["files"][0].update(
        {k: m["video"][k] for k in ("path", "sha256", "bytes")}),
    "a grid finer than a patch can be": lambda m: m["grid"].update(cols=40, rows=24),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_manifest_that_lies_about_what_a_client_plays_is_refused(tmp_path, name):
    manifest = make_bundle(tmp_path)
    MUTATIONS[name](manifest)
    rewrite(tmp_path, manifest)
    with pytest.raises(BundleError):
        read_bundle(tmp_path)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


FILE = ("path", "sha256", "bytes")
UPDATE = (*FILE, "coding", "base", "ops")


def _pick(obj, keys):
    return {k: obj.get(k) for k in keys} if isinstance(obj, dict) else obj


def _numbers_as_floats(obj):
    """25 and 25.0 are one value to every client (JSON has one number type)."""
    if isinstance(obj, dict):
        return {k: _numbers_as_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_numbers_as_floats(v) for v in obj]
    return float(obj) if isinstance(obj, (int, float)) and not isinstance(obj, bool) else obj


def client_view(bundle) -> tuple:
    """Everything a client plays from: the manifest fields the players read (not when the tool ran, nor which
    method made the models), the model map and the plan derived from it (its runs: the margin is what derived
    them)."""
    m = bundle.manifest
    manifest = {
        **{k: m.get(k) for k in ("format", "version", "scale", "lr_size", "frames", "fps")},
        "grid": _pick(m["grid"], ("cols", "rows")),
        "video": _pick(m["video"], (*FILE, *VIDEO)),
        "model_map": _pick(m.get("model_map"), (*FILE, "shape", "coding")),
        "models": [[{**_pick(f, (*FILE, "format", "precision", "input_shape")), "update": _pick(f.get("update"), UPDATE)}
                    for f in model["files"]] for model in m["models"]],
    }
    plan = bundle.plan
    if plan is None:  # a plain bundle: the stream alone
        return json.dumps(_numbers_as_floats(manifest), sort_keys=True), None
    return (json.dumps(_numbers_as_floats(manifest), sort_keys=True), bundle.model_map.tobytes(), plan.runs.tobytes(),
            plan.frame_plan.tobytes(), tuple(map(tuple, plan.shapes)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_bundles_are_refused_or_change_nothing_a_client_plays(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("fuzz")
    manifest = make_bundle(root)
    original = client_view(read_bundle(root))
    mutated = copy.deepcopy(manifest)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(mutated) if p]
        path = data.draw(st.sampled_from(paths))
        parent = mutated
        for key in path[:-1]:
            parent = parent[key]
        choice = data.draw(st.integers(0, 2))
        if choice == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        elif choice == 1:
            parent[path[-1]] = data.draw(JSON)
        else:  # a value a client would take for a real one: a neighbour of the number, another known name
            parent[path[-1]] = data.draw(plausible(parent[path[-1]]))
    rewrite(root, mutated)
    if data.draw(st.booleans()):
        (root / "modelmap.bin").write_bytes(data.draw(st.binary(max_size=64)))
    try:
        accepted = read_bundle(root)
    except BundleError:
        return
    assert client_view(accepted) == original, "a mutation that changes what a client plays was accepted"


def test_only_a_single_model_bundle_may_leave_out_the_model_map(tmp_path):
    manifest = make_bundle(tmp_path)
    manifest["model_map"] = None
    rewrite(tmp_path, manifest)
    with pytest.raises(BundleError, match="model_map must be an object"):
        read_bundle(tmp_path)
    manifest.update(models=manifest["models"][:1])
    manifest["plan"]["sha256"] = digest(make_plan(np.zeros((6, 2, 4), np.uint8), GRID, 6, ((36, 32), (48, 80))), 2)
    rewrite(tmp_path, manifest)
    bundle = read_bundle(tmp_path)
    assert bundle.model_map.shape == (6, 2, 4) and not bundle.model_map.any()


@pytest.mark.parametrize("scale", [1, 2])
def test_a_plain_bundle_is_the_stream_alone(tmp_path, scale):
    """No model, no model map, no plan: the stream a client plays by bicubic upsampling (at x1, as it decodes)."""
    (tmp_path / "v.mp4").write_bytes(_video_bytes())
    manifest = write_plain_bundle(tmp_path / "b", tmp_path / "v.mp4", scale=scale)
    bundle = read_bundle(tmp_path / "b")
    assert bundle.plain and bundle.plan is None and bundle.model_map is None and bundle.scale == scale
    assert manifest["models"] == [] and manifest["video"]["bytes"] == len(_video_bytes()) and bundle.frames == 6


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(scale=0), "scale must be an integer in 1..8"),
    (lambda m: m.update(plan={"shapes": [[48, 80]], "margin": 0, "sha256": "0" * 64}), "has no model_map, plan"),
    (lambda m: m.update(prior="0" * 64), "has no model_map, plan or prior"),
    (lambda m: m["grid"].update(cols=2), "grid"),
    (lambda m: m["video"].update(sha256="0" * 64), "sha256"),
])
def test_a_plain_bundle_that_claims_more_is_refused(tmp_path, change, message):
    (tmp_path / "v.mp4").write_bytes(_video_bytes())
    manifest = write_plain_bundle(tmp_path / "b", tmp_path / "v.mp4", scale=1)
    change(manifest)
    rewrite(tmp_path / "b", manifest)
    with pytest.raises(BundleError, match=message):
        read_bundle(tmp_path / "b")


def test_a_bundle_with_models_needs_a_scale_of_2_or_more(tmp_path):
    manifest = make_bundle(tmp_path)
    manifest["scale"] = 1
    rewrite(tmp_path, manifest)
    with pytest.raises(BundleError, match="scale must be an integer in 2..8"):
        read_bundle(tmp_path)
