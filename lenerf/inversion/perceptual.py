"""Perceptual distances for inversion, best available first: LPIPS (VGG), CLIP ViT-B/32 image features, MiniCLIP.

LPIPS needs the ``lpips`` package and torchvision's VGG16 weights (a download); ViT-B/32 needs open_clip's
OpenAI weights (a download, or HF_HUB_OFFLINE=1 with a filled cache). MiniCLIP ships with this repository, so the
fallback works with no network - it is a weak prior for real photos (it was trained on the synthetic world) and
the inversion result says which distance was used.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)


class Perceptual:
    """``features(images in [-1, 1])`` once per image; ``distance(fa, fb)`` -> scalar (0 = identical)."""

    name = "none"

    def features(self, images: Tensor):
        raise NotImplementedError

    def distance(self, fa, fb) -> Tensor:
        raise NotImplementedError


class LPIPSPerceptual(Perceptual):
    name = "lpips-vgg"

    def __init__(self, device: str = "cpu"):
        import lpips  # noqa: F401  (optional dependency)
        self.net = lpips.LPIPS(net="vgg", verbose=False).to(device).eval().requires_grad_(False)

    def features(self, images: Tensor):
        return F.interpolate(images, size=(256, 256), mode="area") if images.shape[-1] > 256 else images

    def distance(self, fa, fb) -> Tensor:
        return self.net(fa, fb).mean()


class ClipPerceptual(Perceptual):
    """1 - cosine similarity of CLIP image embeddings, averaged over the full image and its four quadrants (so
    that local detail counts, not only the global content)."""

    def __init__(self, clip, name: str):
        self.clip, self.name = clip, f"clip-image-features ({name})"
        self.clip.model.eval().requires_grad_(False)

    def features(self, images: Tensor):
        h = images.shape[-1] // 2
        views = [images, images[..., :h, :h], images[..., :h, h:], images[..., h:, :h], images[..., h:, h:]]
        return torch.stack([F.normalize(self.clip.encode_image(v), dim=-1) for v in views], 1)

    def distance(self, fa, fb) -> Tensor:
        return (1 - (fa * fb).sum(-1)).mean()


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import scan_cache_dir
        return any(r.repo_id == repo_id for r in scan_cache_dir().repos)
    except Exception:
        return False


def load_perceptual(kind: str = "auto", device: str = "cpu") -> Perceptual:
    """``kind``: "auto" (first that loads of lpips, vit-b-32, miniclip), or one of them."""
    from ..clip import load_clip
    order = ["lpips", "vit-b-32", "miniclip"] if kind == "auto" else [kind]
    errors = []
    for k in order:
        try:
            if k == "lpips":
                return LPIPSPerceptual(device)
            if k == "vit-b-32":
                from ..hub import hub_reachable
                if kind == "auto" and not _in_hf_cache("timm/vit_base_patch32_clip_224.openai") and not hub_reachable():
                    raise ConnectionError("offline and not cached")
                return ClipPerceptual(load_clip("ViT-B-32", "openai", device=device), "ViT-B-32 openai")
            if k == "miniclip":
                return ClipPerceptual(load_clip("miniclip", device=device), "MiniCLIP")
            raise ValueError(f"unknown perceptual loss {k!r}")
        except Exception as e:  # not installed / weights not downloadable: try the next one
            errors.append(f"{k}: {type(e).__name__}")
            if kind != "auto":
                from ..errors import InputError
                raise InputError(f"perceptual loss {k} is not available ({type(e).__name__}: {e})") from None
    raise RuntimeError("no perceptual loss available: " + "; ".join(errors))
