"""Pinhole-camera geometry of multi-view sets: intrinsics, pose conventions, rays, and warping one view into another.

Conventions: a pose is a 4x4 camera-to-world matrix in OpenCV's camera frame (x right, y down, z
forward), as COLMAP uses; NeRF's transforms files hold OpenGL's frame (y up, z backward), converted by
`opengl_to_opencv`. Depth is z-depth (distance along the camera's forward axis), per pixel.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

GL_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL camera axes <-> OpenCV camera axes


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def focal_from_fov(width: int, camera_angle_x: float) -> float:
    """NeRF's focal length in pixels from the horizontal field of view (radians)."""
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def opengl_to_opencv(c2w: np.ndarray) -> np.ndarray:
    """A NeRF (OpenGL) camera-to-world matrix in OpenCV's camera frame; the same function converts back."""
    return np.asarray(c2w, dtype=np.float64) @ GL_FLIP


def pixel_rays(k: np.ndarray, c2w: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre [3] and world directions [H, W, 3] scaled so that the camera-frame z component is 1
    (a point at z-depth d along a ray is centre + d * direction)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], axis=-1)
    return c2w[:3, 3].copy(), cam @ c2w[:3, :3].T


def project(points: np.ndarray, k: np.ndarray, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates [..., 2] and z-depth [...] of world points [..., 3] in a camera."""
    cam = (points - c2w[:3, 3]) @ c2w[:3, :3]  # world -> camera: R^T (X - C)
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([k[0, 0] * cam[..., 0] / z + k[0, 2], k[1, 1] * cam[..., 1] / z + k[1, 2]], axis=-1)
    return uv, z


def plane_homography(k_from: np.ndarray, c2w_from: np.ndarray, k_to: np.ndarray, c2w_to: np.ndarray,
                     normal: np.ndarray, offset: float) -> np.ndarray:
    """3x3 homography taking pixels of view `from` to view `to` for points on the world plane n.X + offset = 0."""
    r_from, c_from = c2w_from[:3, :3], c2w_from[:3, 3]
    r_to, c_to = c2w_to[:3, :3], c2w_to[:3, 3]
    r = r_to.T @ r_from  # camera `from` -> camera `to`
    t = r_to.T @ (c_from - c_to)
    n_cam = r_from.T @ normal  # the plane in camera `from`'s frame: n_cam.Y + d_cam = 0
    d_cam = float(normal @ c_from + offset)
    h = k_to @ (r - np.outer(t, n_cam) / d_cam) @ np.linalg.inv(k_from)
    return h / h[2, 2]


class DepthView(NamedTuple):
    """Where a view was seen from and how far each of its pixels is: depth map [H, W], intrinsics K, camera-to-world."""

    depth: np.ndarray
    k: np.ndarray
    c2w: np.ndarray


def warp_into(image_from: np.ndarray, view_from: DepthView, view_to: DepthView,
              depth_tolerance: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """View `from` resampled at the pixels of view `to` (bilinear), and where it is valid: the pixel's
    surface point projects inside `from` at least one pixel from its border and is visible there (its
    depth agrees with `from`'s depth map within `depth_tolerance`, relative). float32 [H, W, 3], bool [H, W]."""
    (depth_from, k_from, c2w_from), (depth_to, k_to, c2w_to) = view_from, view_to
    height, width = depth_to.shape
    centre, rays = pixel_rays(k_to, c2w_to, width, height)
    points = centre + rays * depth_to[..., None]
    uv, z = project(points, k_from, c2w_from)
    hf, wf = depth_from.shape
    inside = (z > 0) & (uv[..., 0] >= 1) & (uv[..., 0] <= wf - 2) & (uv[..., 1] >= 1) & (uv[..., 1] <= hf - 2)
    uv = np.where(inside[..., None], uv, 0.0)
    grid = torch.from_numpy(np.stack([(uv[..., 0] + 0.5) / wf * 2 - 1, (uv[..., 1] + 0.5) / hf * 2 - 1], -1))[None]
    sample = (lambda a: F.grid_sample(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None],
                                      grid.float(), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy())
    warped = sample(image_from.astype(np.float32))
    seen_depth = sample(depth_from[..., None].astype(np.float32))[..., 0]
    valid = inside & (np.abs(seen_depth - z) <= depth_tolerance * np.maximum(z, 1e-6))
    return warped, valid
