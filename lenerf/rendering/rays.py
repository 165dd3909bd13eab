"""Camera rays for a pinhole camera given as an EG3D label (eg3d.md §7, OpenCV convention)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sample_rays(cam2world: Tensor, intrinsics: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
    """One ray through the centre of every pixel.

    Args:
        cam2world: [N, 4, 4] OpenCV camera-to-world (+x right, +y down, +z forward).
        intrinsics: [N, 3, 3] normalised by image size (principal point ~0.5).
        resolution: R, rays form an R x R image; pixel (row i, col j) is ray m = i * R + j.
    Returns:
        origins [N, R*R, 3] and unit directions [N, R*R, 3], world space.
    """
    n = cam2world.shape[0]
    dev, dt = cam2world.device, cam2world.dtype
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy, sk = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None], intrinsics[:, 0, 1, None]
    centers = (torch.arange(resolution, device=dev, dtype=dt) + 0.5) / resolution
    v, u = torch.meshgrid(centers, centers, indexing="ij")  # v: row, u: column
    u, v = u.reshape(1, -1), v.reshape(1, -1)
    x = (u - cx + cy * sk / fy - sk * v / fy) / fx
    y = (v - cy) / fy
    cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # [N, M, 3] (points at z = 1)
    world = cam @ cam2world[:, :3, :3].transpose(1, 2)  # rotation only: direction before normalising
    directions = F.normalize(world, dim=-1)
    origins = cam2world[:, None, :3, 3].expand(n, resolution * resolution, 3)
    return origins, directions


def ray_box_limits(origins: Tensor, directions: Tensor, side: float) -> tuple[Tensor, Tensor]:
    """Entry/exit distances of rays through the axis-aligned cube [-side/2, side/2]^3 (slab method).

    Returns start, end [..., 1]; rays that miss get start -1 and end -2 (eg3d.md §8).
    """
    inv = 1.0 / directions
    t0 = (-side / 2 - origins) * inv
    t1 = (side / 2 - origins) * inv
    tmin, tmax = torch.minimum(t0, t1), torch.maximum(t0, t1)
    start = tmin.amax(dim=-1, keepdim=True)
    end = tmax.amin(dim=-1, keepdim=True)
    hit = end > start
    # a ray that misses gets start -1, end -2 (as the official slab test)
    start = torch.where(hit, start, torch.full_like(start, -1.0))
    end = torch.where(hit, end, torch.full_like(end, -2.0))
    return start, end
