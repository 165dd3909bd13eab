"""Train MiniCLIP on (render, caption) pairs of the synthetic world: ``python -m lenerf.synthetic train-clip``.

open_clip's ``CLIP`` class with a small config (ViT with 4x4 patches on 64x64 renders, so an eye spans several
patches) and open_clip's tokenizer. The loss is a multi-positive contrastive loss: every caption in the batch that
is consistent with an image (all attributes it mentions match) counts as a positive of that image, and vice
versa. Deterministic from the seed (every step derives its own RNG from (seed, step)), resumable from the work
folder, progress bar with the loss.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from ..clip.models import MINICLIPS, TOKEN_FILE, TOKEN_KEY, _wrap, miniclip_model, save_token_table
from ..clip.relevance import encode_with_last_attention
from ..training_state import TrainingState
from .data import (ATTR_KEYS, BIG_EYES, EYE_SIZES, MAX_EYE_SCALE, TRAIN_SEED_BASE, clip_training_data,
                   color_ladder_data, length_ladder_data, random_affine, to_float)
from .world import ATTRIBUTES, COLOR_PARTS

MODEL_CFG = {
    "embed_dim": 96,
    "vision_cfg": {"image_size": 64, "patch_size": 4, "width": 96, "layers": 4, "head_width": 24, "mlp_ratio": 4.0},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 96, "heads": 4, "layers": 2},
}
CONFIG = {"seed": 0, "heads": 1000, "views": 4, "eval_heads": 160, "eval_views": 2, "resolution": 64,
          "steps": 1500, "batch": 96, "lr": 1e-3, "weight_decay": 0.05, "warmup": 50, "save_every": 50,
          # one transformer block: the CLS token of the (only, hence last) block must read the parts' own patch
          # embeddings, which is what the relevance procedure inspects (4- and 2-block pilots gave maps of
          # attention sinks and region edges instead)
          "vision_layers": 1, "vision_width": 128, "vision_head_width": 16,
          # drop half of the patch tokens in training: the CLS token can no longer rely on one patch of a part
          # (one eye is enough to know the eye colour), so its attention - and the relevance map - covers the part
          "patch_dropout": 0.5,
          # weight of a bonus on the entropy of the CLS token's attention in the last block (0 = off)
          "attention_entropy": 0.0,
          # training heads' colours moved off the palette by up to this much, captioned by the nearest palette
          # colour (0 = palette colours only)
          "color_jitter": 0.0,
          # a second phase after `steps`: this many more steps on renders whose colours are moved off the palette by
          # up to `finetune_jitter` (captioned by the nearest palette colour), at its own cosine schedule from
          # `finetune_lr`, meant to teach colours between the palette's entries (an edit's output lands there: a pinkish
          # red must not score as red) without retraining the relevance maps from scratch (0 = no second phase;
          # docs/synthetic-world.md: 500 steps measured, not shipped)
          "finetune_steps": 0, "finetune_jitter": 0.3, "finetune_lr": 3e-4,
          # this share of the training heads get a hair-length code drawn from U(0, 1) instead of the world's 0 / 1
          # (captioned long iff > 0.5, the world's rule); 0 = the world's lengths only
          "length_jitter": 0.0,
          # weight of a graded length term: sigmoid(logit scale x (cos(image, "long hair") - cos(image, "short
          # hair"))), with and without the head's hair colour in the texts, fit to the hair-length code by binary
          # cross-entropy, so that "long" reads as a slope over the length rather than a step (0 = off;
          # docs/synthetic-world.md: measured for hair_long, not shipped)
          "graded_length": 0.0,
          # weight of a length-ranking term: `ladder_heads` training heads, each rendered from one camera at
          # `ladder_rungs` growing hair lengths (the first 0, the next in (0, 0.15]); every step `ladder_batch` of
          # them, with one random affine per head, and the logistic loss of every pair of rungs whose
          # long-vs-short logit difference is out of order (with and without the hair colour in the texts). Unlike
          # the graded term it asks for an order between lengths of the same head, so it has a gradient where the
          # graded term has none (short hair, p(long) and the length both near 0) (0 = off)
          "length_rank": 0.0, "ladder_heads": 400, "ladder_rungs": 4, "ladder_batch": 6,
          # weight of a colour-ranking term: `ladder_heads` training heads, each from one camera at `ladder_rungs`
          # colourings drifting away from its palette colours (data.make_color_ladder); every step `ladder_batch` of
          # them, and for every part the logistic loss of each pair of rungs where the image further from the
          # head's own colour scores its own colour class higher (the logit of "a face with red hair"). Without it
          # "red hair" peaks wherever the contrastive loss leaves it, off the palette (MiniCLIP-color, `eval-clip
          # --colours`: at (1.0, 0.0, 0.5), a magenta red; an edit goes there) (0 = off)
          "color_rank": 0.0,
          # this share of the training heads get eyes scaled by U(1, 1.7) (data.MAX_EYE_SCALE), which no latent of the
          # world can do, and captions may name the eye size ("big" iff > 1.35, else "small"); 0 = off
          "eye_jitter": 0.0,
          # weight of a graded eye-size term: like graded_length, p(big) = sigmoid(logit("big eyes") - logit("small
          # eyes")), with and without the eye colour, fit to (scale - 1) / 0.7 (0 = off)
          "graded_eyes": 0.0}

#: the shipped MiniCLIPs (``lenerf.clip.models.MINICLIPS``) and their settings on top of CONFIG; ``train-clip
#: --preset NAME`` and ``rebuild-all`` use them. "miniclip-length" learns in-between hair lengths
#: (docs/synthetic-world.md; hair_long is trained against it, every texture edit against "miniclip"); "miniclip-color"
#: learns colours between the palette entries (its relevance maps are worse: it guides the colour edits' mappers
#: only); "miniclip-palette" adds the colour-ranking term, so that a colour text peaks at its palette colour (it
#: guides hair_red's mapper)
SHIPPED = {"miniclip": {}, "miniclip-length": {"length_jitter": 0.5, "graded_length": 0.3, "length_rank": 0.3},
           "miniclip-color": {"color_jitter": 0.3, "steps": 2500},
           "miniclip-palette": {"color_jitter": 0.3, "steps": 2500, "color_rank": 0.3},
           "miniclip-eyes": {"eye_jitter": 0.5, "graded_eyes": 0.3}}

# phrase templates per attribute group; hair can mention colour, length or both
_PHRASES = {"skin": ["{skin} skin"], "eyes": ["{eyes} eyes"], "lips": ["{lips} lips"], "nose": ["a {nose} nose"],
            "hair": ["{hair_length} {hair} hair", "{hair} hair", "{hair_length} hair"]}


#: with eye_jitter: the eye phrases, which may name the size (the images' size class: attrs' extra column)
_EYE_PHRASES = ["{eyes} eyes", "{eye_size} {eyes} eyes", "{eye_size} eyes"]
EYE_KEYS = ATTR_KEYS + ("eye_size",)  # attribute columns with eye_jitter


def phrase_for(part: str, names: dict[str, str], variant: int = 0, eye_sizes: bool = False) -> tuple[str, list[str]]:
    tpl = (_EYE_PHRASES if eye_sizes and part == "eyes" else _PHRASES[part])[variant]
    mentioned = [k for k in EYE_KEYS if "{" + k + "}" in tpl]
    return tpl.format(**names), mentioned


def sample_caption(attr_row, rng: np.random.RandomState) -> tuple[str, dict[str, int]]:
    """A random caption consistent with an image's attribute classes (columns ``ATTR_KEYS``, or ``EYE_KEYS``: then
    the eye phrase may name the eye size); returns the text and what it claims."""
    keys = EYE_KEYS if len(attr_row) == len(EYE_KEYS) else ATTR_KEYS
    names = {k: (EYE_SIZES if k == "eye_size" else ATTRIBUTES[k])[int(attr_row[i])] for i, k in enumerate(keys)}
    parts = list(_PHRASES)
    k = rng.randint(1, len(parts) + 1)
    chosen = [parts[i] for i in rng.permutation(len(parts))[:k]]
    items, claims = [], {}
    eye_sizes = keys is EYE_KEYS
    for p in chosen:
        n_variants = len(_EYE_PHRASES if eye_sizes and p == "eyes" else _PHRASES[p])
        text, mentioned = phrase_for(p, names, rng.randint(n_variants), eye_sizes)
        items.append(text)
        for m in mentioned:
            claims[m] = int(attr_row[keys.index(m)])
    body = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return f"a face with {body}", claims


def positives(attrs: torch.Tensor, claims: list[dict[str, int]]) -> torch.Tensor:
    """P[i, j] = 1 when caption j is consistent with image i (attrs' columns ``ATTR_KEYS`` or ``EYE_KEYS``)."""
    keys = EYE_KEYS if attrs.shape[1] == len(EYE_KEYS) else ATTR_KEYS
    pos = torch.ones(attrs.shape[0], len(claims), dtype=torch.bool)
    for j, c in enumerate(claims):
        for k, v in c.items():
            pos[:, j] &= attrs[:, keys.index(k)] == v
    return pos


# the graded length term's texts: "long" then "short", without a colour and with each hair colour
_LENGTH_TEXTS = [f"a face with {n} {c}hair" for n in ("long", "short")
                 for c in ("",) + tuple(c + " " for c in ATTRIBUTES["hair"])]


# the graded eye term's texts: "big" then "small", without a colour and with each eye colour
_EYE_TEXTS = [f"a face with {n} {c}eyes" for n in ("big", "small")
              for c in ("",) + tuple(c + " " for c in ATTRIBUTES["eyes"])]


# the colour-ranking term's texts: every colour class of every part, part after part (COLOR_PARTS order)
_COLOR_TEXTS = ["a face with " + phrase_for(p, {p: c}, 1 if p == "hair" else 0)[0]  # hair: "{hair} hair"
                for p in COLOR_PARTS for c in ATTRIBUTES[p]]
_COLOR_OFFSETS = np.cumsum([0] + [len(ATTRIBUTES[p]) for p in COLOR_PARTS]).tolist()


def color_rank_loss(logits: torch.Tensor, classes: torch.Tensor, shifts: torch.Tensor, min_gap: float = 0.02
                    ) -> torch.Tensor:
    """logits [H * rungs, T] of the images of H colour ladders (rungs of a head consecutive) against
    ``_COLOR_TEXTS``, classes [H, 5] the heads' own colour classes, shifts [H, rungs, 5] each part's distance from
    its own colour -> the mean over parts of softplus(s_far - s_near), s the logit of the head's own colour text,
    over every pair of rungs whose shifts differ by more than ``min_gap``. The raw logit, not its softmax among the
    part's colours: a drifted image may score lower on every colour text, where a lower softmax share would have
    to go to another colour, against the contrastive loss that calls colours up to 0.3 off the palette by their
    nearest palette colour (with both, a first model's zero-shot accuracy fell to 0.50-0.64 on four parts)."""
    h, rungs = shifts.shape[:2]
    i, j = torch.triu_indices(rungs, rungs, 1)
    rows = torch.arange(h * rungs)
    loss = 0.0
    for k in range(len(COLOR_PARTS)):
        part = logits[:, _COLOR_OFFSETS[k]:_COLOR_OFFSETS[k + 1]]
        own = classes[:, k].repeat_interleave(rungs)
        gap = shifts[:, j, k] - shifts[:, i, k]  # [H, pairs]; > 0: rung j is further off
        sign = torch.sign(gap) * (gap.abs() > min_gap)
        d = part[rows, own].reshape(h, rungs)
        pair = F.softplus(sign * (d[:, j] - d[:, i]))
        loss = loss + (pair * sign.abs()).sum() / sign.abs().sum().clamp_min(1)
    return loss / len(COLOR_PARTS)


def _ladder_batch(ladders: torch.Tensor, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random ladders of uint8 images [L, rungs, 3, R, R] -> their indices [n] and float images [n * rungs, 3,
    R, R], rungs of a ladder consecutive, with one random affine per ladder for all its rungs (a zoom moves the
    hair's lower edge more than a length rung does)."""
    ids = torch.randint(0, len(ladders), (n,), generator=gen)
    x = to_float(ladders[ids])
    return ids, random_affine(x.flatten(1, 2), gen).reshape(x.shape).flatten(0, 1)


def graded_length_loss(logits: torch.Tensor, lengths: torch.Tensor, hair: torch.Tensor) -> torch.Tensor:
    """logits [N, 2K] of each image against ``_LENGTH_TEXTS`` (K long, then K short), lengths [N] in [0, 1],
    hair [N] colour classes -> the mean binary cross-entropy of p(long) = sigmoid(long - short) against the length,
    for the colourless pair and the image's own colour pair."""
    k = logits.shape[1] // 2
    rows = torch.arange(len(hair))
    target = lengths.clamp(0.02, 0.98).to(logits)
    plain = logits[:, 0] - logits[:, k]
    colour = logits[rows, 1 + hair] - logits[rows, k + 1 + hair]
    return (F.binary_cross_entropy_with_logits(plain, target) + F.binary_cross_entropy_with_logits(colour, target)) / 2


def length_rank_loss(logits: torch.Tensor, hair: torch.Tensor, rungs: int) -> torch.Tensor:
    """logits [H * rungs, 2K] of the images of H length ladders (rungs of a head consecutive, lengths growing)
    against ``_LENGTH_TEXTS``, hair [H] colour classes -> the mean over every pair of rungs i < j of
    softplus(d_i - d_j), d = logit(long) - logit(short), for the colourless pair and the head's own colour pair."""
    k = logits.shape[1] // 2
    col = 1 + hair.repeat_interleave(rungs)
    rows = torch.arange(len(col))
    i, j = torch.triu_indices(rungs, rungs, 1)
    loss = 0.0
    for d in (logits[:, 0] - logits[:, k], logits[rows, col] - logits[rows, k + col]):
        d = d.reshape(-1, rungs)
        loss = loss + F.softplus(d[:, i] - d[:, j]).mean()
    return loss / 2


def multi_positive_loss(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    neg_inf = torch.finfo(logits.dtype).min
    i2t = torch.logsumexp(logits.masked_fill(~pos, neg_inf), 1) - torch.logsumexp(logits, 1)
    t2i = torch.logsumexp(logits.masked_fill(~pos, neg_inf), 0) - torch.logsumexp(logits, 0)
    return -(i2t.mean() + t2i.mean()) / 2


#: settings that do not change the trained weights: a state saved with other values may be resumed
RESUMABLE_ACROSS = ("save_every", "eval_heads", "eval_views")
#: the second phase's settings: a state still inside (or at the end of) the first phase may be resumed with another
#: second phase (e.g. a first-phase run continued with --finetune-steps)
SECOND_PHASE = ("finetune_steps", "finetune_jitter", "finetune_lr")


def train_clip(out_dir: str | Path = "checkpoints/miniclip", work_dir: str | Path = "runs/miniclip",
               config: dict | None = None, progress: bool = True, restart: bool = False) -> dict:
    """Train a MiniCLIP into ``out_dir``; renders and the resumable state live in ``work_dir``. A state there is
    resumed only if it was saved with the same settings (else InputError); ``restart`` discards it first."""
    cfg = {**CONFIG, **(config or {})}
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if restart:
        TrainingState.clear(work_dir)
    t0 = time.time()
    total_steps = cfg["steps"] + cfg["finetune_steps"]
    state_file = work_dir / "train_state.json"
    resumed = json.loads(state_file.read_text())["step"] if state_file.is_file() else 0
    ignore = RESUMABLE_ACROSS + (SECOND_PHASE if resumed <= cfg["steps"] else ())
    TrainingState.check(work_dir, cfg, ignore, CONFIG)  # before any rendering: a wrong state fails fast
    # each phase's renders are read only when that phase still has steps to run
    data = clip_training_data(cfg, work_dir, progress) if resumed < cfg["steps"] else None
    data_ft = clip_training_data({**cfg, "color_jitter": cfg["finetune_jitter"]}, work_dir, progress) \
        if cfg["finetune_steps"] else None
    ladder = length_ladder_data(cfg, work_dir, progress) if cfg["length_rank"] else None
    cladder = color_ladder_data(cfg, work_dir, progress) if cfg["color_rank"] else None
    if cfg["eye_jitter"]:  # the eye-size class as an extra attribute column (EYE_KEYS), once per phase's renders
        for phase in (data, data_ft):
            if phase is not None:
                phase["attrs"] = torch.cat([phase["attrs"], (phase["eye_scale"] > BIG_EYES).long().unsqueeze(1)], 1)
    t_data = time.time() - t0
    torch.manual_seed(cfg["seed"])
    model_cfg = {**MODEL_CFG, "vision_cfg": {**MODEL_CFG["vision_cfg"], "layers": cfg["vision_layers"],
                                             "width": cfg["vision_width"], "head_width": cfg["vision_head_width"],
                                             "patch_dropout": cfg["patch_dropout"]}}
    model = miniclip_model(model_cfg)
    tokenizer = __import__("open_clip").get_tokenizer("ViT-B-32",
                                                      context_length=model_cfg["text_cfg"]["context_length"])
    clip = _wrap(model, tokenizer, "miniclip")
    model.train().requires_grad_(True)
    # the 49408 x 96 token table stays at its seeded random init: only ~40 tokens occur, and updating the whole
    # table dominated the step time; the text transformer learns to read the fixed embeddings
    model.token_embedding.requires_grad_(False)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in params if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in params if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg["lr"], betas=(0.9, 0.98))
    opts = {"adamw": opt}
    step = TrainingState.load(work_dir, model, opts)[0] if state_file.is_file() else 0  # settings checked above
    bar = tqdm(total=total_steps, initial=step, desc="train MiniCLIP", unit="step", disable=not progress)

    while step < total_steps:
        phase = data if step < cfg["steps"] else data_ft
        images, attrs = phase["images"], phase["attrs"]
        if step < cfg["steps"]:
            lr = _warmup_cosine(cfg["lr"], step, cfg["steps"], cfg["warmup"])
        else:
            lr = _warmup_cosine(cfg["finetune_lr"], step - cfg["steps"], cfg["finetune_steps"], cfg["warmup"])
        for g in opt.param_groups:
            g["lr"] = lr
        if step == cfg["steps"]:
            # patch dropout draws from the global RNG: reseeding it where the second phase starts makes a run resumed
            # at the phase boundary give the same weights as an uninterrupted one (a resume inside a phase draws
            # other dropout masks)
            torch.manual_seed(cfg["seed"] * 1_000_003 + step)
        gen = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + step)
        rng = np.random.RandomState((cfg["seed"] * 7919 + step) % 2 ** 32)
        idx = torch.randint(0, len(images), (cfg["batch"],), generator=gen)
        x = random_affine(to_float(images[idx]), gen)
        if ladder is not None:
            lid, lx = _ladder_batch(ladder["images"], cfg["ladder_batch"], gen)
            x = torch.cat([x, lx])
        if cladder is not None:
            cid, cx = _ladder_batch(cladder["images"], cfg["ladder_batch"], gen)
            x = torch.cat([x, cx])
        caps = [sample_caption(attrs[i], rng) for i in idx.tolist()]
        pos = positives(attrs[idx], [c for _, c in caps])
        length_texts = _LENGTH_TEXTS if cfg["graded_length"] or cfg["length_rank"] else []
        eye_texts = _EYE_TEXTS if cfg["graded_eyes"] else []
        texts = [t for t, _ in caps] + length_texts + eye_texts + (_COLOR_TEXTS if cladder is not None else [])
        if cfg["attention_entropy"]:
            feats, probs = encode_with_last_attention(model.visual, clip.preprocess(x), leaf=False)
            cls = probs[:, :, 0].clamp_min(1e-12)
            entropy = -(cls * cls.log()).sum(-1).mean()
        else:
            feats, entropy = model.encode_image(clip.preprocess(x)), torch.zeros(())
        img = F.normalize(feats, dim=-1)
        txt = F.normalize(model.encode_text(clip.tokenize(texts)), dim=-1)
        scale = model.logit_scale.exp()
        n_caps = len(caps)
        n_img = len(idx)
        n_len = n_caps + len(length_texts)  # the length texts are txt[n_caps:n_len], the eye texts after them,
        n_eye = n_len + len(eye_texts)  # the colour texts txt[n_eye:]
        if cladder is not None:
            n_col = cfg["ladder_batch"] * cfg["ladder_rungs"]
            loss_color = color_rank_loss(scale * img[-n_col:] @ txt[n_eye:].T, cladder["classes"][cid],
                                         cladder["shifts"][cid])
            img = img[:-n_col]
        if ladder is not None:
            loss_rank = length_rank_loss(scale * img[n_img:] @ txt[n_caps:n_len].T, ladder["hair"][lid],
                                         cfg["ladder_rungs"])
            img = img[:n_img]
        loss = multi_positive_loss(scale * img @ txt[:n_caps].T, pos) - cfg["attention_entropy"] * entropy
        if ladder is not None:
            loss = loss + cfg["length_rank"] * loss_rank
        if cladder is not None:
            loss = loss + cfg["color_rank"] * loss_color
        if cfg["graded_length"]:
            # hair-length codes (renders cached before they were stored: the class, 0 or 1)
            lengths = (phase["hair_length"] if "hair_length" in phase
                       else attrs[:, ATTR_KEYS.index("hair_length")].float())[idx]
            loss = loss + cfg["graded_length"] * graded_length_loss(scale * img @ txt[n_caps:n_len].T, lengths,
                                                                     attrs[idx, ATTR_KEYS.index("hair")])
        if cfg["graded_eyes"]:  # the same BCE, for the eye size (scale 1 -> 0, MAX_EYE_SCALE -> 1)
            sizes = (phase["eye_scale"][idx] - 1) / (MAX_EYE_SCALE - 1)
            loss = loss + cfg["graded_eyes"] * graded_length_loss(scale * img @ txt[n_len:n_eye].T, sizes,
                                                                   attrs[idx, ATTR_KEYS.index("eyes")])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", H=f"{entropy.item():.2f}", lr=f"{lr:.1e}")
        if step % cfg["save_every"] == 0 or step in (cfg["steps"], total_steps):
            TrainingState.save(work_dir, model, opts, step, {"config": cfg})
    bar.close()
    t_train = time.time() - t0
    model.eval().requires_grad_(False)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.half().contiguous() for k, v in model.state_dict().items()}
    # the untrained token table goes to the shared file when it is that table (clip/models.py), else beside the model
    shipped = out_dir.resolve() in {p.resolve() for p in MINICLIPS.values()}
    table_sha = save_token_table(state.pop(TOKEN_KEY), out_dir, shipped=shipped)
    save_file(state, out_dir / "model.safetensors")
    (out_dir / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": model_cfg, "preprocess_cfg": {"mean": list(clip.mean.tolist()), "std": list(clip.std.tolist()),
                                                   "image_size": model_cfg["vision_cfg"]["image_size"]},
        "tokenizer": "open_clip SimpleTokenizer (ViT-B-32), context_length 32",
        "token_embedding_sha256": table_sha}, indent=1))
    from .evaluate import evaluate_clip
    clip = __import__("lenerf.clip.models", fromlist=["load_clip"]).load_clip(str(out_dir))
    scores = evaluate_clip(clip, cfg, work_dir, progress=progress)
    card = {"name": "MiniCLIP (LENeRF Studio synthetic heads world)",
            "made_by": "python -m lenerf.synthetic train-clip", "config": cfg, "model_cfg": model_cfg,
            "parameters": sum(p.numel() for p in model.parameters()), "stored_dtype": "float16",
            "token_table": f"not trained (the seeded init), sha256 {table_sha}; stored in " + (
                TOKEN_FILE if (out_dir / TOKEN_FILE).is_file() else "the file every MiniCLIP with this table shares, "
                "checkpoints/miniclip_tokens/" + TOKEN_FILE),
            "data": f"{cfg['heads']} heads x {cfg['views']} random views (seeds {TRAIN_SEED_BASE}+i), 64x64 renders"
                    + (f", colours moved off the palette by up to {cfg['color_jitter']:g} and captioned by the nearest "
                       "palette colour" if cfg.get("color_jitter") else "")
                    + (f", {cfg['length_jitter']:g} of them with a hair-length code from U(0, 1)"
                       if cfg.get("length_jitter") else "")
                    + (f", {cfg['eye_jitter']:g} of them with eyes scaled by U(1, {MAX_EYE_SCALE:g}) (\"big\" above "
                       f"{BIG_EYES:g})" if cfg.get("eye_jitter") else "")
                    + (f"; {cfg['ladder_heads']} of the heads also at {cfg['ladder_rungs']} growing hair lengths "
                       "for the length-ranking term" if cfg.get("length_rank") else "")
                    + (f"; {cfg['ladder_heads']} of the heads also at {cfg['ladder_rungs']} colourings drifting off "
                       "their palette colours for the colour-ranking term" if cfg.get("color_rank") else "")
                    + (f"; then {cfg['finetune_steps']} steps on the same heads with colours moved off the palette by "
                       f"up to {cfg['finetune_jitter']:g}" if cfg["finetune_steps"] else ""),
            "wall_time_s": {"render_data": round(t_data, 1), "total_train_incl_data": round(t_train, 1)},
            "machine": _machine(), "scores_held_out": scores}
    (out_dir / "card.json").write_text(json.dumps(card, indent=1))
    return card


def _warmup_cosine(peak: float, step: int, steps: int, warmup: int) -> float:
    """Learning rate of step ``step`` (0-based) of ``steps``: linear warm-up over ``warmup`` steps, cosine decay."""
    return peak * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))


def _machine() -> str:
    import os
    import platform
    return f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
