"""Loading CLIP models through open_clip: the project's MiniCLIP and real open_clip models share one path.

``load_clip("miniclip")`` builds open_clip's ``CLIP`` class from ``checkpoints/miniclip/open_clip_config.json`` and
loads ``model.safetensors`` (plus the frozen token table the shipped MiniCLIPs share, ``checkpoints/miniclip_tokens``);
``load_clip("ViT-B-32", pretrained="openai")`` goes through
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
#: the project's shipped MiniCLIPs by name: "miniclip" (the default; every texture edit is trained against it),
#: "miniclip-length" (trained also on in-between hair lengths with the graded and ranking terms, so that "long
#: hair" rises with the length: hair_long is trained against it; docs/synthetic-world.md),
#: "miniclip-color" (trained on colours moved off the palette: it guides the mappers of the colour edits eyes_blue and
#: lips_green, and of new edits trained in the app, not their masks),
#: "miniclip-palette" (miniclip-color's data with a colour-ranking term, so that each colour text scores its palette
#: colour above colours further off it: "red hair" peaks at a red, not at a magenta; it guides hair_red's mapper) and
#: "miniclip-eyes" (trained also on heads with enlarged eyes, which no latent reaches: "big eyes" rises with the eye
#: size; it guides eyes_big's deformation network)
MINICLIPS = {"miniclip": MINICLIP_DIR, "miniclip-length": ROOT / "checkpoints" / "miniclip_length",
             "miniclip-color": ROOT / "checkpoints" / "miniclip_color",
             "miniclip-palette": ROOT / "checkpoints" / "miniclip_palette",
             "miniclip-eyes": ROOT / "checkpoints" / "miniclip_eyes"}
#: a MiniCLIP's 49408 x 96 token table is never trained (it stays at the seeded init of ``train-clip``), so every
#: MiniCLIP trained from the same seed holds the same table: the shipped ones share this one file (9.5 MB) instead of
#: a copy each. A MiniCLIP folder whose model.safetensors lacks ``token_embedding.weight`` reads it from its own
#: ``token_embedding.safetensors`` or, failing that, from here; the SHA-256 in its open_clip_config.json must match.
TOKEN_FILE = "token_embedding.safetensors"
SHARED_TOKEN_TABLE = ROOT / "checkpoints" / "miniclip_tokens" / TOKEN_FILE
TOKEN_KEY = "token_embedding.weight"


def table_sha256(table: Tensor) -> str:
    """SHA-256 of a token table as stored (float16, row-major bytes)."""
    import hashlib
    return hashlib.sha256(table.detach().to("cpu", torch.float16).contiguous().numpy().tobytes()).hexdigest()


def load_token_table(folder: Path, sha256: str | None) -> Tensor:
    """The token table a MiniCLIP folder refers to: its own ``token_embedding.safetensors``, else the shared one
    (:data:`SHARED_TOKEN_TABLE`); raises CheckpointError when neither holds the table with ``sha256``."""
    from safetensors.torch import load_file
    if not sha256:
        raise CheckpointError(f"{folder}/model.safetensors has no {TOKEN_KEY} and its open_clip_config.json names "
                              "no token_embedding_sha256")
    tried = []
    for path in (Path(folder) / TOKEN_FILE, SHARED_TOKEN_TABLE):
        if path.is_file():
            table = load_file(path)[TOKEN_KEY]
            if table_sha256(table) == sha256:
                return table
            tried.append(f"{path} (another table)")
        else:
            tried.append(f"{path} (missing)")
    raise CheckpointError(f"the token table of the MiniCLIP in {folder} (sha256 {sha256[:12]}...) was not found: "
                          f"tried {', '.join(tried)}. Re-create it with `python -m lenerf.synthetic train-clip`.")


def save_token_table(table: Tensor, folder: Path, shipped: bool = False) -> str:
    """Store a MiniCLIP's token table next to ``folder``'s model.safetensors unless the shared table already is
    this table (then no copy, and a stale local copy is removed). ``shipped``: the folder is one of
    :data:`MINICLIPS`, so a missing shared table is written there. Returns the table's SHA-256."""
    from safetensors.torch import load_file, save_file
    sha = table_sha256(table)
    table = table.detach().to("cpu", torch.float16).contiguous()
    if shipped and not SHARED_TOKEN_TABLE.is_file():
        SHARED_TOKEN_TABLE.parent.mkdir(parents=True, exist_ok=True)
        save_file({TOKEN_KEY: table}, SHARED_TOKEN_TABLE)
        (SHARED_TOKEN_TABLE.parent / "card.json").write_text(json.dumps({
            "name": "MiniCLIP token table (shared)", "made_by": "python -m lenerf.synthetic train-clip",
            "what": f"open_clip's {tuple(table.shape)} token embedding at the seeded init of train-clip; never "
                    "trained, so every MiniCLIP trained from the same seed and model config holds it, and the "
                    "shipped ones store it here once", "sha256": sha, "stored_dtype": "float16"}, indent=1))
    local = Path(folder) / TOKEN_FILE
    try:
        shared = SHARED_TOKEN_TABLE.is_file() and table_sha256(load_file(SHARED_TOKEN_TABLE)[TOKEN_KEY]) == sha
    except Exception:  # an unreadable shared file is not this table
        shared = False
    if shared:
        local.unlink(missing_ok=True)
    else:
        save_file({TOKEN_KEY: table}, local)
    return sha


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
    """``name``: a shipped MiniCLIP ('miniclip', 'miniclip-length', 'miniclip-color', 'miniclip-palette',
    'miniclip-eyes': :data:`MINICLIPS`), a folder holding open_clip_config.json + model.safetensors, or an open_clip
    model name such as 'ViT-B-32' with ``pretrained`` ('openai', a local file, or None for random weights)."""
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
        if TOKEN_KEY not in state:  # the frozen token table is stored once for all MiniCLIPs (SHARED_TOKEN_TABLE)
            state[TOKEN_KEY] = load_token_table(folder, cfg.get("token_embedding_sha256")).float()
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
