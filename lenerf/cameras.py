"""Cameras in EG3D's conventions (eg3d.md §11): look-at poses, FOV intrinsics, the 25-d label, turntables.

Angles follow the official ``LookAtPoseSampler``: ``yaw = pi/2`` and ``pitch = pi/2`` is the frontal camera;
the public helpers here take *offsets* from frontal (``yaw=0, pitch=0`` = frontal; positive yaw moves the camera
to +x, positive pitch raises it). Nothing here draws random numbers unless asked to.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: EG3D's FFHQ field of view (degrees, effectively diagonal) and the focal the official videos use
FFHQ_FOV_DEG = 18.837
FFHQ_FOCAL = 4.2647


def fov_to_intrinsics(fov_deg: float = FFHQ_FOV_DEG) -> Tensor:
    """Normalised intrinsics [3, 3] (official ``FOV_to_intrinsics``, truncated constants included)."""
    f = float(1 / (math.tan(fov_deg * 3.14159 / 360) * 1.414))
    return focal_to_intrinsics(f)


def focal_to_intrinsics(focal: float) -> Tensor:
    return torch.tensor([[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]])


def wider_view(c: Tensor, scale: float) -> Tensor:
    """Camera labels [N, 25] whose view is ``scale`` times wider (focal lengths / scale, principal point and pose
    kept): the tangent of every ray's angle off the axis grows by ``scale``. ``scale`` 1 returns ``c`` itself."""
    if scale == 1:
        return c
    c = c.clone()
    c[:, [16, 20]] = c[:, [16, 20]] / scale
    return c


def look_at_cam2world(origin: Tensor, target: Tensor) -> Tensor:
    """OpenCV camera-to-world [N, 4, 4] for cameras at ``origin`` [N, 3] looking at ``target`` [N, 3] (y up)."""
    forward = F.normalize(target - origin, dim=-1)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=origin.dtype, device=origin.device).expand_as(forward)
    right = -F.normalize(torch.cross(up, forward, dim=-1), dim=-1)
    down = F.normalize(torch.cross(forward, right, dim=-1), dim=-1)
    m = torch.eye(4, dtype=origin.dtype, device=origin.device).repeat(origin.shape[0], 1, 1)
    m[:, :3, :3] = torch.stack([right, down, forward], dim=-1)
    m[:, :3, 3] = origin
    return m


def orbit_cam2world(horizontal: Tensor | float, vertical: Tensor | float, radius: float = 2.7,
                    lookat=(0.0, 0.0, 0.2)) -> Tensor:
    """Official angle convention: camera on the sphere of ``radius`` around the world origin, looking at
    ``lookat``; ``horizontal = vertical = pi/2`` is frontal. Vertical angles are remapped area-preservingly
    (phi = arccos(1 - 2 v / pi)) exactly like ``LookAtPoseSampler``."""
    h = torch.as_tensor(horizontal, dtype=torch.float32).reshape(-1)
    v = torch.as_tensor(vertical, dtype=torch.float32).reshape(-1)
    h, v = torch.broadcast_tensors(h, v)
    v = v.clamp(1e-5, math.pi - 1e-5)
    phi = torch.arccos(1 - 2 * v / math.pi)
    origin = torch.stack([radius * torch.sin(phi) * torch.cos(math.pi - h),
                          radius * torch.cos(phi),
                          radius * torch.sin(phi) * torch.sin(math.pi - h)], dim=-1)
    target = torch.tensor(lookat, dtype=torch.float32).expand_as(origin)
    return look_at_cam2world(origin, target)


def camera_label(cam2world: Tensor, intrinsics: Tensor) -> Tensor:
    """[N, 4, 4] + [3, 3] or [N, 3, 3] -> the 25-d label [N, 25] (row-major flattening)."""
    n = cam2world.shape[0]
    k = intrinsics.reshape(-1, 9).to(cam2world).expand(n, 9)
    return torch.cat([cam2world.reshape(n, 16), k], dim=1)


def camera(yaw: float | Tensor = 0.0, pitch: float | Tensor = 0.0, radius: float = 2.7,
           lookat=(0.0, 0.0, 0.2), fov_deg: float | None = FFHQ_FOV_DEG, focal: float | None = None) -> Tensor:
    """Labels [N, 25] for yaw/pitch offsets (radians) from the frontal view. ``focal`` overrides ``fov_deg``."""
    k = focal_to_intrinsics(focal) if focal is not None else fov_to_intrinsics(fov_deg)
    yaw_t = torch.as_tensor(yaw, dtype=torch.float32)
    pitch_t = torch.as_tensor(pitch, dtype=torch.float32)
    c2w = orbit_cam2world(math.pi / 2 + yaw_t, math.pi / 2 - pitch_t, radius, lookat)
    return camera_label(c2w, k)


def turntable(frames: int, yaw_range: float = 0.35, pitch_range: float = 0.25, pitch_offset: float = 0.05,
              **kw) -> Tensor:
    """Labels [frames, 25] of the official video path: yaw = 0.35 sin(2 pi k / F), pitch = -(-0.05 + 0.25 cos)
    in our offset convention (pitch argument pi/2 - 0.05 + 0.25 cos(2 pi k / F) in the official one)."""
    if frames < 1:
        raise ValueError("a turntable needs at least one frame")
    t = torch.arange(frames, dtype=torch.float32) * (2 * math.pi / frames)
    yaw = yaw_range * torch.sin(t)
    pitch = pitch_offset - pitch_range * torch.cos(t)
    return camera(yaw, pitch, **kw)


def sample_cameras(n: int, yaw_std: float = 0.3, pitch_std: float = 0.15, yaw_max: float = 0.6,
                   pitch_max: float = 0.3, generator: torch.Generator | None = None, **kw) -> Tensor:
    """Random labels [n, 25] around the frontal view (clipped normal yaw/pitch offsets)."""
    yaw = (torch.randn(n, generator=generator) * yaw_std).clamp(-yaw_max, yaw_max)
    pitch = (torch.randn(n, generator=generator) * pitch_std).clamp(-pitch_max, pitch_max)
    return camera(yaw, pitch, **kw)
