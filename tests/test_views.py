"""stdo-views: SequenceMatters' orderings, the synthetic scenes' exact geometry, upscaling views, consistency."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import tree
from stdo.errors import StdoError
from stdo.views import geometry, order as ordering, synth
from stdo.views.pipeline import (EvalOptions, OrderOptions, SynthOptions, UpscaleViewsOptions, evaluate_views,
                                 make_synthetic, order_scene, upscale_views)
from stdo.views.scene import read_views

cv2 = pytest.importorskip("cv2", reason="the views extra (opencv-python-headless)")


@pytest.fixture(scope="module")
def room():
    return synth.room_from_clips()


@pytest.fixture(scope="module")
def orbit_scene(tmp_path_factory):
    """16 views of 96x72 on an orbit, NeRF layout with depth."""
    out = tmp_path_factory.mktemp("scene") / "orbit"
    make_synthetic(SynthOptions(out=out, path="orbit", views=16, size=(96, 72)))
    return out


def _camera(width=160, height=120, fov=70.0):
    f = geometry.focal_from_fov(width, np.radians(fov))
    return geometry.intrinsics(f, f, width / 2, height / 2)


# ------------------------------------------------------------------------------------------------ geometry

def test_the_homography_of_a_face_maps_one_rendered_view_onto_another(room):
    """Exact geometry: for every face, the plane homography takes pixels of view j to view i, and view i sampled
    there equals view j within one grey level (mean, face interiors); the depth warp agrees."""
    k = _camera()
    poses = synth.orbit_poses(24)
    i, j = 0, 1
    rgb_i, depth_i, face_i = synth.render(room, k, poses[i], 160, 120)
    rgb_j, depth_j, face_j = synth.render(room, k, poses[j], 160, 120)
    v, u = np.mgrid[0:120, 0:160]
    checked = 0
    for face in range(6):
        mask = cv2.erode((face_j == face).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        if mask.sum() < 200:
            continue
        normal, offset = room.face_plane(face)
        h = geometry.plane_homography(k, poses[j], k, poses[i], normal, offset)
        pts = np.stack([u[mask], v[mask], np.ones(mask.sum())])
        mapped = h @ pts
        x, y = mapped[0] / mapped[2], mapped[1] / mapped[2]
        inside = (x >= 1) & (x <= 158) & (y >= 1) & (y <= 118)
        inside &= face_i[np.clip(np.round(y).astype(int), 0, 119), np.clip(np.round(x).astype(int), 0, 159)] == face
        if inside.sum() < 200:  # this face is (mostly) out of view i
            continue
        sampled = cv2.remap(rgb_i.astype(np.float32), x[inside].astype(np.float32)[None],
                            y[inside].astype(np.float32)[None], cv2.INTER_LINEAR)[0]
        diff = np.abs(sampled - rgb_j[mask][inside].astype(np.float32))
        assert diff.mean() < 1.0, f"face {face}: {diff.mean():.2f} grey levels"
        checked += 1
    assert checked >= 2
    warped, valid = geometry.warp_into(rgb_i.astype(np.float32), geometry.DepthView(depth_i, k, poses[i]),
                                       geometry.DepthView(depth_j, k, poses[j]))
    assert valid.mean() > 0.5
    assert np.abs(warped[valid] - rgb_j[valid]).mean() < 1.5  # all faces, edges included


def test_depth_is_the_z_distance_to_the_walls(room):
    k = _camera(64, 48)
    pose = synth.look_at(np.zeros(3), np.array([1.0, 0.0, 0.0]))  # from the centre towards +x
    _, depth, face = synth.render(room, k, pose, 64, 48)
    assert face[24, 32] == synth.FACES.index((0, 1))
    assert depth[24, 32] == pytest.approx(room.half_size[0], rel=1e-6)


# ------------------------------------------------------------------------------------------------ ordering

def test_pose_ordering_follows_a_known_camera_path():
    poses = synth.orbit_poses(20)
    shuffle = np.random.default_rng(3).permutation(20)
    centres = poses[shuffle, :3, 3]
    sequences, _ = ordering.order_views("s", "pose", centres, None, length=20)
    path = [int(shuffle[v]) for v in sequences[0].views]  # back to positions on the orbit
    steps = np.diff(path) % 20
    assert set(steps) <= {1} or set(steps) <= {19}, path  # one way round the circle, every view once


def test_feature_ordering_of_rendered_views_is_near_the_path(orbit_scene):
    views = read_views(orbit_scene)
    sequences, _ = ordering.order_views("s", "feature", None, [views.image(i) for i in range(len(views))], length=16)
    order = sequences[0].views
    neighbours = sum(min(abs(a - b), 16 - abs(a - b)) == 1 for a, b in zip(order[:-1], order[1:]))
    assert neighbours >= 0.75 * (len(order) - 1), order


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 30), st.integers(1, 10), st.integers(0, 10_000), st.sampled_from(["pose", "feature"]))
def test_s_and_als_write_every_view_exactly_once(n, length, seed, similarity):
    rng = np.random.default_rng(seed)
    order_rank = ordering.ranks(rng.random((n, n)))
    cut = rng.random((n, n)) * (60 if similarity == "feature" else n)
    for sequences in (ordering.order_s(order_rank, min(length, n)),
                      ordering.order_als(order_rank, cut, ordering.default_thresholds(similarity, n), length)):
        kept = [v for s in sequences for v, k in zip(s.views, s.keep) if k]
        assert sorted(kept) == list(range(n))  # every view, and none twice
        assert all(len(s.views) <= max(length, 1) for s in sequences)


def test_als_skips_short_chains_until_the_last_pass_and_keeps_interior_views_first():
    # two clusters of 4 views far apart: strict passes give chains inside a cluster
    centres = np.array([[1, 0.01 * i, 0] for i in range(4)] + [[-1, 0.01 * i, 0.5] for i in range(4)], float)
    pose = ordering.pose_distances(centres)
    cut = pose
    sequences = ordering.order_als(ordering.ranks(pose), cut, [5.0, 180.0], length=8)
    first = sequences[0]
    assert len(first.views) == 4 and first.keep == [False, True, True, False]  # ends wait for the last pass


def test_kendall_tau():
    assert ordering.kendall_tau([0, 1, 2, 3], [0, 1, 2, 3]) == 1.0
    assert ordering.kendall_tau([3, 2, 1, 0], [0, 1, 2, 3]) == -1.0


# ------------------------------------------------------------------------------------------------ the path through stdo

def test_order_upscale_eval_on_a_synthetic_scene(orbit_scene, tmp_path):
    from stdo.cluster.pipeline import ClusterOptions, cluster
    from stdo.stream import StreamOptions
    from stdo.train.loop import TrainConfig
    from stdo.train.methods import MethodOptions
    from stdo.train.pipeline import TrainOptions, train

    order = tmp_path / "order"
    record = order_scene(OrderOptions(scene=orbit_scene, out=order, strategy="als", similarity="pose", length=6))
    assert record["frames"] == sum(len(s["views"]) for s in record["sequences"]) >= 16
    run = tmp_path / "run"
    cluster(ClusterOptions(source=order / "frames", run=run, scale=4, grid=(2, 2), chunks=2,
                           stream=StreamOptions(lossless=True)))
    train(TrainOptions(run=run, method="awdnn", config=TrainConfig(steps=150, batch=8, crop_size=12),
                       method_options=MethodOptions(blocks=2)))
    reports = {}
    for method in ("bicubic", "awdnn"):
        out = tmp_path / f"sr-{method}"
        upscale_views(UpscaleViewsOptions(order=order, run=run, out=out, method=method))
        meta, source = (json.loads((p / "transforms_train.json").read_text()) for p in (out, orbit_scene))
        assert meta["camera_angle_x"] == source["camera_angle_x"]
        assert [f["transform_matrix"] for f in meta["frames"]] == [f["transform_matrix"] for f in source["frames"]]
        assert read_views(out).size == (96, 72)
        reports[method] = evaluate_views(EvalOptions(views=out, reference=orbit_scene))
    assert reports["awdnn"]["psnr"] > reports["bicubic"]["psnr"] + 0.3
    c = reports["awdnn"]["consistency"]
    assert c["pairs"] >= 16 and c["reference"]["mae"] < c["views"]["mae"] + 5

    # a one-model method trained elsewhere (--models-from) on another ordering: a single-image model gives the
    # same views whatever the order; a per-chunk method's model map belongs to its own RUN
    other, other_run = tmp_path / "order-s", tmp_path / "run-s"
    order_scene(OrderOptions(scene=orbit_scene, out=other, strategy="s", similarity="pose"))
    cluster(ClusterOptions(source=other / "frames", run=other_run, scale=4, grid=(2, 2), chunks=2,
                           stream=StreamOptions(lossless=True)))
    upscale_views(UpscaleViewsOptions(order=other, run=other_run, out=tmp_path / "sr-other", method="awdnn",
                                      models_from=run))
    views = read_views(tmp_path / "sr-awdnn")
    again = read_views(tmp_path / "sr-other")
    assert all(np.array_equal(views.image(i), again.image(i)) for i in range(len(views)))
    train(TrainOptions(run=run, method="stdo", config=TrainConfig(steps=20, batch=8, crop_size=12),
                       method_options=MethodOptions(blocks=2)))
    with pytest.raises(StdoError, match="stdo has 2 models"):
        upscale_views(UpscaleViewsOptions(order=other, run=other_run, out=tmp_path / "sr-x", method="stdo",
                                          models_from=run))


def test_written_views_refuse_to_replace_a_folder_they_did_not_write(orbit_scene, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(StdoError, match="not written by stdo-views"):
        order_scene(OrderOptions(scene=orbit_scene, out=precious, overwrite=True))
    assert (precious / "keep.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------------ bad input

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stdo.views.cli", *map(str, args)], capture_output=True, text=True)


def _bad_scenes(tmp: Path, good: Path) -> dict[str, tuple[Path, str]]:
    cases = {}
    missing = tmp / "no_transforms"
    missing.mkdir()
    (missing / "transforms_test.json").write_text("{}")
    cases["missing split"] = (missing, "transforms_train.json does not exist")
    malformed = tmp / "malformed"
    malformed.mkdir()
    (malformed / "transforms_train.json").write_text('{"frames": [{"file_path": "a"}]}')
    cases["malformed"] = (malformed, "is malformed")
    sizes = tmp / "sizes"
    sizes.mkdir()
    for name, size in (("a.png", (32, 24)), ("b.png", (40, 24))):
        cv2.imwrite(str(sizes / name), np.zeros((size[1], size[0], 3), np.uint8))
    cases["sizes"] = (sizes, "views of different sizes")
    one = tmp / "one"
    one.mkdir()
    cv2.imwrite(str(one / "a.png"), np.zeros((24, 32, 3), np.uint8))
    cases["one view"] = (one, "has 1 view")
    unreadable = tmp / "unreadable"
    unreadable.mkdir()
    cv2.imwrite(str(unreadable / "a.png"), np.zeros((24, 32, 3), np.uint8))
    (unreadable / "b.png").write_bytes(b"not a png")
    cases["unreadable"] = (unreadable, "is not a readable image")
    colmap = tmp / "colmap"
    (colmap / "sparse" / "0").mkdir(parents=True)
    (colmap / "sparse" / "0" / "cameras.txt").write_text("1 PINHOLE not numbers\n")
    cases["colmap"] = (colmap, "not a readable COLMAP model")
    return cases


def test_bad_scenes_get_one_line_exit_2_and_nothing_written(orbit_scene, tmp_path):
    pytest.importorskip("pycolmap")
    for label, (scene, message) in _bad_scenes(tmp_path, orbit_scene).items():
        out = tmp_path / f"out-{label.replace(' ', '_')}"
        before = tree(scene)
        done = _cli("order", scene, out)
        assert done.returncode == 2, (label, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], (label, lines)
        assert not out.exists() and tree(scene) == before, label


# ------------------------------------------------------------------------------------------------ COLMAP

def _rotation_to_quaternion(r: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of a rotation matrix (COLMAP's order)."""
    w = np.sqrt(max(0.0, 1 + np.trace(r))) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + r[0, 0] - r[1, 1] - r[2, 2])) / 2, r[2, 1] - r[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - r[0, 0] + r[1, 1] - r[2, 2])) / 2, r[0, 2] - r[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - r[0, 0] - r[1, 1] + r[2, 2])) / 2, r[1, 0] - r[0, 1])
    return np.array([w, x, y, z])


def test_a_colmap_project_reads_like_its_nerf_twin_and_is_written_rescaled(orbit_scene, tmp_path):
    """The orbit scene written as a COLMAP text model by hand: the same camera centres and intrinsics as the NeRF
    reading, and written back at 2x its cameras are rescaled (pycolmap reads the result)."""
    pycolmap = pytest.importorskip("pycolmap")
    nerf = read_views(orbit_scene)
    project = tmp_path / "colmap"
    (project / "sparse" / "0").mkdir(parents=True)
    (project / "images").mkdir()
    k = nerf.intrinsics[0]
    w, h = nerf.size
    (project / "sparse" / "0" / "cameras.txt").write_text(f"1 PINHOLE {w} {h} {k[0, 0]} {k[1, 1]} {k[0, 2] + 0.5} "
                                                          f"{k[1, 2] + 0.5}\n")
    lines = []
    for i, pose in enumerate(nerf.poses):
        r = pose[:3, :3].T  # world -> camera
        t = -r @ pose[:3, 3]
        q = _rotation_to_quaternion(r)
        name = f"v{i:02d}.png"
        (project / "images" / name).write_bytes(nerf.image_path(i).read_bytes())
        lines += [f"{i + 1} {' '.join(map(str, q))} {' '.join(map(str, t))} 1 {name}", ""]
    (project / "sparse" / "0" / "images.txt").write_text("\n".join(lines) + "\n")
    (project / "sparse" / "0" / "points3D.txt").write_text("")
    colmap = read_views(project)
    assert colmap.layout == "colmap" and len(colmap) == len(nerf)
    np.testing.assert_allclose(colmap.centres(), nerf.centres(), atol=1e-6)
    np.testing.assert_allclose(colmap.poses, nerf.poses, atol=1e-6)
    np.testing.assert_allclose(colmap.intrinsics[0], k)

    from stdo.views.scene import write_views
    bigger = [np.repeat(np.repeat(colmap.image(i), 2, 0), 2, 1) for i in range(len(colmap))]
    write_views(colmap, bigger, tmp_path / "x2")
    model = pycolmap.Reconstruction(str(tmp_path / "x2" / "sparse" / "0"))
    camera = model.cameras[1]
    assert (camera.width, camera.height) == (2 * w, 2 * h)
    assert camera.focal_length_x == pytest.approx(2 * k[0, 0])
    assert read_views(tmp_path / "x2").size == (2 * w, 2 * h)
