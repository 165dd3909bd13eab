"""Loading CLIP models through open_clip: the project's MiniCLIP and real open_clip models share one path.

``load_clip("miniclip")`` builds open_clip's ``CLIP`` class from ``checkpoints/miniclip/open_clip_config.json`` and
loads ``model.safetensors``; ``load_clip("ViT-B-32", pretrained="openai")`` goes through
``open_clip.create_model`` (needs the weights in the Hub cache when offline). Both come back as a
:class:`ClipModel`: the open_clip model, its tokenizer and its normalisation, frozen and in eval mode.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import CheckpointError, NotAvailableError

ROOT = Path(__file__).resolve().parents[2]
MINICLIP_DIR = ROOT / "checkpoints" / "miniclip"
#: the project's shipped MiniCLIPs by name: "miniclip" (the default; every texture edit is trained against it) and
#: "miniclip-length" (trained also on in-between hair lengths with the graded and ranking terms, so that "long
#: hair" rises with the length: hair_long is trained against it; README, synthetic world section)
MINICLIPS = {"miniclip": MINICLIP_DIR, "miniclip-length": ROOT / "checkpoints" / "miniclip_length"}


@dataclass
class ClipModel:
    model: open_clip.CLIP
    tokenizer: object
    image_size: int
    mean: Tensor
    std: Tensor
    name: str
    _text_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> "ClipModel":
        self.model.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def preprocess(self, images: Tensor) -> Tensor:
        """Differentiable: images [N, 3, H, W] in [-1, 1] -> resized (bilinear, no antialias) and normalised."""
        x = (images + 1) / 2
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return (x - self.mean.view(1, 3, 1, 1)) / self.std.view(1, 3, 1, 1)

    def tokenize(self, texts: list[str]) -> Tensor:
        return self.tokenizer(texts).to(self.device)

    def encode_text(self, texts: list[str], normalize: bool = False) -> Tensor:
        return self.model.encode_text(self.tokenize(texts), normalize=normalize)

    TEXT_CACHE_SIZE = 256

    def text_features(self, texts: list[str]) -> Tensor:
        """Raw text embeddings [K, D] of ``texts``, no gradient, remembered per list of texts (and device): an
        edit's prompts are the same on every training step, so they are encoded once. Only for a frozen model
        (what ``load_clip`` returns); training code calls ``model.encode_text`` directly."""
        key = (tuple(texts), str(self.device))
        hit = self._text_cache.get(key)
        if hit is None:
            with torch.no_grad():
                hit = self.model.encode_text(self.tokenize(list(texts)))
            if len(self._text_cache) >= self.TEXT_CACHE_SIZE:  # bounded: the app sees arbitrary prompts
                self._text_cache.pop(next(iter(self._text_cache)))
            self._text_cache[key] = hit
        return hit

    def encode_image(self, images: Tensor, normalize: bool = False) -> Tensor:
        """images in [-1, 1] (any size) -> embeddings [N, D]."""
        return self.model.encode_image(self.preprocess(images), normalize=normalize)


def miniclip_model(config: dict) -> open_clip.CLIP:
    cfg = dict(config)
    return open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
                          quick_gelu=cfg.get("quick_gelu", False))


def _wrap(model, tokenizer, name: str) -> ClipModel:
    model.eval().requires_grad_(False)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    mean = torch.tensor(getattr(model.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
    std = torch.tensor(getattr(model.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
    return ClipModel(model, tokenizer, int(size), mean, std, name)


def load_clip(name: str = "miniclip", pretrained: str | None = None, device: str | None = None) -> ClipModel:
    """``name``: a shipped MiniCLIP ('miniclip', 'miniclip-length': :data:`MINICLIPS`), a folder holding
    open_clip_config.json + model.safetensors, or an open_clip model name such as 'ViT-B-32' with ``pretrained``
    ('openai', a local file, or None for random weights)."""
    folder = MINICLIPS.get(name, Path(name))
    if name in MINICLIPS or folder.is_dir():
        cfg_path, weights = folder / "open_clip_config.json", folder / "model.safetensors"
        if not cfg_path.is_file() or not weights.is_file():
            raise CheckpointError(f"MiniCLIP weights not found in {folder}; create them with "
                                  "`python -m lenerf.synthetic train-clip`")
        cfg = json.loads(cfg_path.read_text())
        model = miniclip_model(cfg["model_cfg"])
        from safetensors.torch import load_file
        state = {k: v.float() for k, v in load_file(weights).items()}
        model.load_state_dict(state, strict=True)
        tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=cfg["model_cfg"]["text_cfg"]["context_length"])
        clip = _wrap(model, tokenizer, name if name in MINICLIPS else str(folder))
    else:
        try:
            model = open_clip.create_model(name, pretrained=pretrained)
        except RuntimeError as e:
            raise NotAvailableError(f"could not load open_clip model {name} ({pretrained}): {e}") from None
        except Exception as e:
            raise NotAvailableError(f"could not load open_clip model {name} ({pretrained}): {type(e).__name__}: "
                                    f"{e}. Without network, use HF_HUB_OFFLINE=1 with a filled cache.") from None
        clip = _wrap(model, open_clip.get_tokenizer(name), name)
    return clip.to(device) if device else clip
