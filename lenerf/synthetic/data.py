"""Rendered datasets of the synthetic world: images, attribute classes, part label images; cached as safetensors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm import tqdm

from ..cameras import sample_cameras
from .world import ATTRIBUTES, COLOR_PARTS, WORLD_VERSION, SyntheticHeads

ATTR_KEYS = tuple(ATTRIBUTES)  # column order of the attribute matrix
TRAIN_SEED_BASE, EVAL_SEED_BASE = 1_000_000, 2_000_000  # held-out heads never overlap the training heads
#: eye sizes MiniCLIP can be taught (``eye_jitter``): not an attribute of the world's latents (every head's eyes have
#: scale 1, "small"); a render with the eye radius scaled by more than BIG_EYES is captioned "big"
EYE_SIZES, BIG_EYES, MAX_EYE_SCALE = ("small", "big"), 1.35, 1.7


def latents(G: SyntheticHeads, seeds) -> Tensor:
    """ws [len(seeds), 14, 32]; z of seed s = numpy RandomState(s).randn(32) (as everywhere in the project)."""
    z = np.stack([np.random.RandomState(int(s)).randn(G.z_dim) for s in seeds])
    with torch.no_grad():
        return G.mapping(torch.from_numpy(z).float(), None)


def render_batch(G: SyntheticHeads, ws: Tensor, cams: Tensor, resolution: int = 64, seed: int = 0,
                 eye_scale: Tensor | None = None):
    """-> images [N, 3, R, R] in [-1, 1], label images [N, R, R] (0 = background, k = PARTS[k-1]). ``eye_scale``
    [N]: the eyes' radius scale of each head (None: the world's, 1)."""
    from ..generator import Preset
    preset = Preset("dataset", resolution, superresolution=False, output_resolution=resolution)
    with torch.no_grad():
        out = G.render_field(G.field(ws, eye_scale=eye_scale), ws, cams, preset=preset,
                             generator=torch.Generator(device=ws.device).manual_seed(seed))
    probs = (out["image_features"][:, 3:] + 1) / 2
    best, idx = probs.max(1)
    labels = torch.where(best > 0.5, idx + 1, torch.zeros_like(idx))
    return out["image"], labels


def make_dataset(n_heads: int, views: int, seed_base: int, resolution: int = 64, camera_seed: int = 0,
                 batch: int = 16, progress: bool = True, G: SyntheticHeads | None = None,
                 color_jitter: float = 0.0, length_jitter: float = 0.0, eye_jitter: float = 0.0) -> dict[str, Tensor]:
    """Render ``views`` random views of heads ``seed_base + i``. Returns uint8 images [M, 3, R, R], int64 attrs
    [M, 6] (columns ``ATTR_KEYS``), uint8 labels [M, R, R], int64 seeds [M], float cams [M, 25] and float
    hair_length [M] (the hair-length code, 0 or 1 in the world's latents).
    color_jitter > 0 moves every head's colours off the palette (``SyntheticHeads.jitter_colors``, seeded by the
    head's seed); the attribute classes are then those of the moved colours. length_jitter p > 0 gives each head,
    with probability p, a hair-length code drawn from U(0, 1) (seeded by the head's seed; class long iff > 0.5).
    eye_jitter p > 0 gives each head, with probability p, eyes whose radius is scaled by s ~ U(1, MAX_EYE_SCALE)
    (seeded by the head's seed; "big" iff s > BIG_EYES), and adds float eye_scale [M] (1 for the others)."""
    G = G or SyntheticHeads()
    seeds = np.repeat(np.arange(seed_base, seed_base + n_heads), views)
    cams = sample_cameras(len(seeds), generator=torch.Generator().manual_seed(camera_seed),
                          radius=G.camera_radius, lookat=G.camera_pivot)
    images, labels, attrs, lengths, eyes = [], [], [], [], []
    for a in tqdm(range(0, len(seeds), batch), desc="rendering", unit="batch", disable=not progress):
        ws = latents(G, seeds[a:a + batch])
        if color_jitter > 0:
            ws = torch.cat([G.jitter_colors(w[None], color_jitter, torch.Generator().manual_seed(int(s)))
                            for w, s in zip(ws, seeds[a:a + batch])])
        if length_jitter > 0:
            draws = [np.random.RandomState(int(s) + 99).rand(2) for s in seeds[a:a + batch]]
            h = torch.tensor([u[1] if u[0] < length_jitter else -1.0 for u in draws])
            ws = torch.where((h >= 0).view(-1, 1, 1), G.with_hair_length(ws, h.clamp_min(0)), ws)
        scale = None
        if eye_jitter > 0:
            draws = [np.random.RandomState(int(s) + 77).rand(2) for s in seeds[a:a + batch]]
            scale = torch.tensor([1 + u[1] * (MAX_EYE_SCALE - 1) if u[0] < eye_jitter else 1.0 for u in draws])
            eyes.append(scale.float())
        img, lab = render_batch(G, ws, cams[a:a + batch], resolution, seed=camera_seed + a, eye_scale=scale)
        images.append(((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
        labels.append(lab.to(torch.uint8))
        at = G.attributes(ws)
        attrs.append(torch.stack([at[k] for k in ATTR_KEYS], 1))
        lengths.append(G.params(ws).hair_length.detach().float())
    out = {"images": torch.cat(images), "labels": torch.cat(labels), "attrs": torch.cat(attrs),
           "seeds": torch.from_numpy(seeds).long(), "cams": cams, "hair_length": torch.cat(lengths)}
    if eyes:
        out["eye_scale"] = torch.cat(eyes)
    return out


def cached_dataset(path: Path, build=None, **kw) -> dict[str, Tensor]:
    """``build(**kw)`` (default ``make_dataset``), cached in ``path`` (safetensors): the same arguments always give
    the same file."""
    path = Path(path)
    if path.is_file():
        return load_file(path)
    data = (build or make_dataset)(**kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    save_file({k: v.contiguous() for k, v in data.items()}, tmp)
    tmp.replace(path)
    return data


def training_file(cfg: dict, work_dir: Path) -> Path:
    """Cache file of a training config's renders: heads, views, seed and colour jitter name it; renders of
    in-between hair lengths also carry the world's version (the world's own latents render the same in all)."""
    jitter, length = cfg.get("color_jitter", 0.0), cfg.get("length_jitter", 0.0)
    eyes = cfg.get("eye_jitter", 0.0)
    name = f"train_{cfg['heads']}x{cfg['views']}_s{cfg['seed']}" + (f"_j{jitter:g}" if jitter else "") \
        + (f"_l{length:g}_w{WORLD_VERSION}" if length else "") + (f"_e{eyes:g}" if eyes else "")
    return Path(work_dir) / f"{name}.safetensors"


def make_length_ladder(n_heads: int, seed_base: int, rungs: int = 4, resolution: int = 64, camera_seed: int = 0,
                       batch: int = 16, progress: bool = True, G: SyntheticHeads | None = None) -> dict[str, Tensor]:
    """Heads ``seed_base + i``, each seen from one random camera at ``rungs`` hair lengths that only grow: 0, then
    one drawn from each of ``rungs - 1`` equal bins of (0, 1] whose first bin is squeezed to (0, 0.15] (where an
    edit starts from short hair). Returns uint8 images [n_heads, rungs, 3, R, R], float lengths [n_heads, rungs]
    and int64 hair colour classes [n_heads]; everything else about a head is the same on every rung."""
    G = G or SyntheticHeads()
    seeds = np.arange(seed_base, seed_base + n_heads)
    cams = sample_cameras(n_heads, generator=torch.Generator().manual_seed(camera_seed + 1),
                          radius=G.camera_radius, lookat=G.camera_pivot)
    edges = np.concatenate([[0.0, 0.15], np.linspace(0.15, 1.0, rungs - 1)[1:]]) if rungs > 2 else np.array([0.0, 1.0])
    u = np.stack([np.random.RandomState(int(s) + 4242).rand(rungs - 1) for s in seeds])
    lengths = torch.from_numpy(np.concatenate([np.zeros((n_heads, 1)), edges[:-1] + u * np.diff(edges)], 1)).float()
    images, hair = [], []
    for a in tqdm(range(0, n_heads, batch), desc="rendering length ladders", unit="batch", disable=not progress):
        ws = latents(G, seeds[a:a + batch])
        hair.append(G.attributes(ws)["hair"])
        k = len(ws)
        ws = G.with_hair_length(ws.repeat_interleave(rungs, 0), lengths[a:a + batch].reshape(-1))
        img, _ = render_batch(G, ws, cams[a:a + batch].repeat_interleave(rungs, 0), resolution, seed=camera_seed + a)
        images.append(((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).reshape(k, rungs, *img.shape[1:]))
    return {"images": torch.cat(images), "lengths": lengths, "hair": torch.cat(hair)}


def make_color_ladder(n_heads: int, seed_base: int, rungs: int = 4, resolution: int = 64, camera_seed: int = 0,
                      max_shift: float = 0.35, batch: int = 16, progress: bool = True,
                      G: SyntheticHeads | None = None) -> dict[str, Tensor]:
    """Heads ``seed_base + i``, each seen from one random camera at ``rungs`` colourings that drift further and further
    from the head's own (palette) colours: every colour part moves along its own random direction (per head), rung
    r by a distance drawn from the r-th of ``rungs - 1`` equal bins of (0, max_shift] (rung 0 unmoved), clamped to
    [0, 1]. Returns uint8 images [n_heads, rungs, 3, R, R], float shifts [n_heads, rungs, 5] (each part's distance
    from its rung-0 colour after clamping; ``COLOR_PARTS`` order) and int64 classes [n_heads, 5] of the rung-0 colours;
    the geometry is the same on every rung."""
    G = G or SyntheticHeads()
    seeds = np.arange(seed_base, seed_base + n_heads)
    cams = sample_cameras(n_heads, generator=torch.Generator().manual_seed(camera_seed + 2),
                          radius=G.camera_radius, lookat=G.camera_pivot)
    edges = np.linspace(0.0, max_shift, rungs)
    images, shifts, classes = [], [], []
    for a in tqdm(range(0, n_heads, batch), desc="rendering colour ladders", unit="batch", disable=not progress):
        ws = latents(G, seeds[a:a + batch])
        k = len(ws)
        at = G.attributes(ws)
        classes.append(torch.stack([at[p] for p in COLOR_PARTS], 1))
        draws = [np.random.RandomState(int(s) + 5151) for s in seeds[a:a + batch]]
        dirs = torch.from_numpy(np.stack([d.randn(len(COLOR_PARTS), 3) for d in draws])).float()
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)  # [k, 5, 3]
        dist = torch.from_numpy(np.stack([np.concatenate([[0.0], edges[:-1] + d.rand(rungs - 1) * np.diff(edges)])
                                          for d in draws])).float()  # [k, rungs]
        base = G.params(ws).colors
        ws_r = ws.repeat_interleave(rungs, 0)
        moved = {p: (base[p].unsqueeze(1) + dist.unsqueeze(-1) * dirs[:, i].unsqueeze(1)).clamp(0, 1)
                 for i, p in enumerate(COLOR_PARTS)}  # each [k, rungs, 3]
        ws_r = G.with_colors(ws_r, {p: c.reshape(-1, 3) for p, c in moved.items()})
        shifts.append(torch.stack([(moved[p] - base[p].unsqueeze(1)).norm(dim=-1) for p in COLOR_PARTS], -1))
        img, _ = render_batch(G, ws_r, cams[a:a + batch].repeat_interleave(rungs, 0), resolution,
                              seed=camera_seed + a)
        images.append(((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).reshape(k, rungs, *img.shape[1:]))
    return {"images": torch.cat(images), "shifts": torch.cat(shifts), "classes": torch.cat(classes)}


def color_ladder_data(cfg: dict, work_dir: Path, progress: bool = True) -> dict[str, Tensor]:
    """The colour-ranking term's renders for a train-clip config (cached in ``work_dir``)."""
    n, k = min(cfg["ladder_heads"], cfg["heads"]), cfg["ladder_rungs"]
    path = Path(work_dir) / f"colour_ladder_{n}x{k}_s{cfg['seed']}_w{WORLD_VERSION}.safetensors"
    return cached_dataset(path, make_color_ladder, n_heads=n, seed_base=TRAIN_SEED_BASE, rungs=k,
                          resolution=cfg["resolution"], camera_seed=cfg["seed"], progress=progress)


def length_ladder_data(cfg: dict, work_dir: Path, progress: bool = True) -> dict[str, Tensor]:
    """The length-ranking term's renders for a train-clip config (cached in ``work_dir``, named by the world's
    version)."""
    n, k = min(cfg["ladder_heads"], cfg["heads"]), cfg["ladder_rungs"]
    path = Path(work_dir) / f"ladder_{n}x{k}_s{cfg['seed']}_w{WORLD_VERSION}.safetensors"
    return cached_dataset(path, make_length_ladder, n_heads=n, seed_base=TRAIN_SEED_BASE, rungs=k,
                          resolution=cfg["resolution"], camera_seed=cfg["seed"], progress=progress)


def clip_training_data(cfg: dict, work_dir: Path, progress: bool = True) -> dict[str, Tensor]:
    """MiniCLIP's training renders for a train-clip config (cached in ``work_dir``)."""
    jitter = cfg.get("color_jitter", 0.0)
    return cached_dataset(training_file(cfg, work_dir), n_heads=cfg["heads"], views=cfg["views"],
                          seed_base=TRAIN_SEED_BASE, resolution=cfg["resolution"], camera_seed=cfg["seed"],
                          progress=progress, color_jitter=jitter, length_jitter=cfg.get("length_jitter", 0.0),
                          eye_jitter=cfg.get("eye_jitter", 0.0))


def to_float(images_u8: Tensor) -> Tensor:
    return images_u8.float() / 127.5 - 1


def random_affine(x: Tensor, gen: torch.Generator, max_scale: float = 0.12, max_shift: float = 0.08,
                  max_rot: float = 0.14) -> Tensor:
    """Per-image random zoom/shift/rotation (border padding), differentiable in x."""
    n = x.shape[0]
    s = 1 + (torch.rand(n, generator=gen) * 2 - 1) * max_scale
    r = (torch.rand(n, generator=gen) * 2 - 1) * max_rot
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * max_shift
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = s * torch.cos(r), -s * torch.sin(r)
    theta[:, 1, 0], theta[:, 1, 1] = s * torch.sin(r), s * torch.cos(r)
    theta[:, :, 2] = t
    grid = torch.nn.functional.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)
