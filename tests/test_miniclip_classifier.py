"""The shipped MiniCLIP and attribute classifier: loading through open_clip, held-out quality, relevance."""
import json
from pathlib import Path

import pytest
import torch

from lenerf.clip import load_clip, relevance_maps
from lenerf.errors import CheckpointError, InputError
from lenerf.metrics import iou, relevance_iou
from lenerf.synthetic import PARTS
from lenerf.synthetic.classifier import accuracy, load_classifier
from lenerf.synthetic.data import ATTR_KEYS, EVAL_SEED_BASE, latents, make_dataset, to_float
from lenerf.synthetic.evaluate import embed_images, retrieval_top1, zero_shot_accuracy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip():
    return load_clip("miniclip")


@pytest.fixture(scope="module")
def heldout():
    # heads the models never saw (a different seed range than their training and evaluation sets)
    return make_dataset(48, 1, EVAL_SEED_BASE + 900_000, camera_seed=77, progress=False)


def test_miniclip_is_an_open_clip_model_within_budget(clip):
    import open_clip

    from lenerf.clip.models import MINICLIPS, SHARED_TOKEN_TABLE
    from lenerf.synthetic.train_clip import CONFIG, SHIPPED
    assert isinstance(clip.model, open_clip.CLIP)
    assert set(MINICLIPS) == set(SHIPPED) == {"miniclip", "miniclip-length", "miniclip-color", "miniclip-palette",
                                              "miniclip-eyes"}
    # the shipped MiniCLIPs with the token table they share (14.45 MB; issue budget: 20 MB in all, decimal)
    folders = [*MINICLIPS.values(), SHARED_TOKEN_TABLE.parent]
    size = sum(f.stat().st_size for folder in folders for f in folder.iterdir())
    assert size <= 20_000_000
    for name, folder in MINICLIPS.items():
        card = json.loads((folder / "card.json").read_text())
        assert card["made_by"] == "python -m lenerf.synthetic train-clip"
        # re-created by `train-clip --preset NAME` (settings added to CONFIG after a card was written default to off)
        expected = {**CONFIG, **SHIPPED[name]}
        assert all(card["config"][k] == expected[k] for k in card["config"])
        assert all(k not in SHIPPED[name] for k in set(expected) - set(card["config"]))
        # miniclip-eyes only guides eyes_big's deformation (its eye-size reading: the test below); the eye-size
        # renders cost it colour accuracy (eyes 0.906, hair 0.897 held out); miniclip-palette only guides hair_red's
        # mapper, its colour-ranking term cost the small parts some accuracy (eyes and nose 0.944; hair 1.000)
        floor = {"miniclip-eyes": 0.85, "miniclip-palette": 0.94}.get(name, 0.95)
        assert min(card["scores_held_out"]["zero_shot_accuracy"].values()) >= floor
    assert isinstance(load_clip("miniclip-length").model, open_clip.CLIP)


def test_the_frozen_token_table_is_stored_once_and_checked(clip, tmp_path, monkeypatch):
    """Both shipped MiniCLIPs read the one shared, never-trained token table (checked by SHA-256); a table that is
    not the shared one is stored beside its model, and a folder whose table is missing or another fails loudly."""
    from safetensors.torch import load_file

    import lenerf.clip.models as cm
    shared = load_file(cm.SHARED_TOKEN_TABLE)[cm.TOKEN_KEY]
    for name, folder in cm.MINICLIPS.items():
        assert cm.TOKEN_KEY not in load_file(folder / "model.safetensors")
        assert not (folder / cm.TOKEN_FILE).exists()
        cfg = json.loads((folder / "open_clip_config.json").read_text())
        assert cfg["token_embedding_sha256"] == cm.table_sha256(shared)
        model = clip.model if name == "miniclip" else load_clip(name).model
        assert torch.equal(model.token_embedding.weight, shared.float())
    # a copy of the shipped MiniCLIP in another folder finds the shared table; another table is kept beside it
    folder = tmp_path / "copy"
    folder.mkdir()
    for f in ("model.safetensors", "open_clip_config.json"):
        (folder / f).write_bytes((cm.MINICLIP_DIR / f).read_bytes())
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(load_clip(str(folder)).encode_image(x), clip.encode_image(x))
    assert cm.save_token_table(shared, folder) == cm.table_sha256(shared) and not (folder / cm.TOKEN_FILE).exists()
    other = shared.clone()
    other[0, 0] += 1
    sha = cm.save_token_table(other, folder)
    assert (folder / cm.TOKEN_FILE).is_file() and sha != cm.table_sha256(shared)
    with pytest.raises(CheckpointError, match="token table"):  # the config still names the shared table's hash
        cm.load_token_table(folder, sha[::-1])
    assert torch.equal(cm.load_token_table(folder, sha), other)
    cm.save_token_table(shared, folder)  # back to the shared table: the stale copy goes
    assert not (folder / cm.TOKEN_FILE).exists()
    # a missing shared table: a shipped folder writes it (what rebuild-all does on a fresh tree), others never do
    monkeypatch.setattr(cm, "SHARED_TOKEN_TABLE", tmp_path / "tokens" / cm.TOKEN_FILE)
    with pytest.raises(CheckpointError, match="was not found"):
        load_clip(str(folder))
    cm.save_token_table(shared, folder)
    assert (folder / cm.TOKEN_FILE).is_file() and not cm.SHARED_TOKEN_TABLE.exists()
    (folder / cm.TOKEN_FILE).unlink()
    cm.save_token_table(shared, folder, shipped=True)
    assert cm.SHARED_TOKEN_TABLE.is_file() and not (folder / cm.TOKEN_FILE).exists()
    card = json.loads((cm.SHARED_TOKEN_TABLE.parent / "card.json").read_text())
    assert card["sha256"] == cm.table_sha256(shared)
    assert torch.equal(load_clip(str(folder)).encode_image(x), clip.encode_image(x))


def test_miniclip_zero_shot_and_retrieval_on_unseen_heads(clip, heldout):
    emb = embed_images(clip, heldout["images"])
    acc = zero_shot_accuracy(clip, emb, heldout["attrs"])
    assert min(acc.values()) >= 0.9, acc
    assert retrieval_top1(clip, emb, heldout["attrs"]) >= 0.8


def test_relevance_of_eyes_prompt_beats_chance(clip, heldout):
    from lenerf.synthetic.evaluate import names_of
    imgs = to_float(heldout["images"][:16])
    prompts = [[f"{names_of(a)['eyes']} eyes"] for a in heldout["attrs"][:16]]
    maps = relevance_maps(clip, imgs, prompts)
    assert maps.shape == (16, 1, 64, 64) and maps.min() >= 0 and maps.max() <= 1
    eyes = heldout["labels"][:16].long() == PARTS.index("eyes") + 1
    # relevance mass falls on the eyes far more than their share of the image
    inside = (maps[:, 0] * eyes).flatten(1).sum(1) / maps[:, 0].flatten(1).sum(1)
    share = eyes.float().flatten(1).mean(1)
    assert (inside / share).mean() > 3
    assert relevance_iou(maps, eyes).mean() > 0.1


def test_classifier_accuracy(heldout):
    acc = accuracy(load_classifier(), heldout["images"], heldout["attrs"])
    assert min(acc.values()) >= 0.95, acc


def test_classifier_judges_colours_off_the_palette_by_the_nearest_palette_colour():
    """Edits produce colours between palette entries; the judge is trained for them (card: 0.950-1.000 on 400
    off-palette renders; the palette-only judge of earlier sessions scored 0.89-0.93 on skin, eyes, hair, lips)."""
    off = make_dataset(48, 1, EVAL_SEED_BASE + 910_000, camera_seed=78, progress=False, color_jitter=0.3)
    acc = accuracy(load_classifier(), off["images"], off["attrs"])
    assert min(acc.values()) >= 0.9, acc
    card = json.loads((ROOT / "checkpoints" / "attribute_classifier" / "card.json").read_text())
    assert card["config"]["color_jitter"] == 0.3 and min(card["scores_held_out"]["accuracy"].values()) >= 0.98


def test_classifier_keeps_the_identity_of_heads_whose_eyes_grew():
    """The eye-size edit makes eyes no latent has; the judge is trained on such renders too (half of its heads with
    eyes scaled by U(1, 1.7)). A perfect edit - the 20 held-out heads of `eval edit` rendered with eyes x1.5 - keeps
    every other attribute by the judge's majority over the 8 views (session 18's judge: 15 of 20, each failure the
    yellow nose between big blue eyes read as blue; card: 0.93 on the nose of 400 such renders)."""
    from lenerf.editing.evaluate import eval_cameras
    from lenerf.synthetic import SyntheticHeads
    G, clf = SyntheticHeads(), load_classifier()
    cams = eval_cameras(G)
    ws = latents(G, [EVAL_SEED_BASE + 70_000 + h for h in range(20)])
    kept = 0
    for w in ws:
        w = w[None].expand(len(cams), -1, -1).contiguous()
        src = clf.predict(G.label_image(w, cams, preset="full")[1]["image_raw"])
        scale = torch.full((len(cams),), 1.5)
        big = clf.predict(G.label_image(w, cams, preset="full", eye_scale=scale)[1]["image_raw"])
        kept += all(torch.mode(src[k]).values == torch.mode(big[k]).values for k in ATTR_KEYS)
    assert kept == 20, kept
    card = json.loads((ROOT / "checkpoints" / "attribute_classifier" / "card.json").read_text())
    assert card["config"]["eye_jitter"] == 0.5
    assert min(card["scores_held_out"]["big_eyes"]["accuracy"].values()) >= 0.98


def test_missing_weights_give_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="train-clip"):
        load_clip(str(tmp_path))
    with pytest.raises(CheckpointError, match="train-classifier"):
        load_classifier(tmp_path)


def test_best_prompt_selection_matches_the_attribute_clip_sees(clip, heldout):
    from lenerf.clip.relevance import _best_prompts
    from lenerf.synthetic import SyntheticHeads
    from lenerf.synthetic.evaluate import names_of
    prompts = SyntheticHeads().expand_prompt("eyes")
    assert prompts == ["brown eyes", "blue eyes", "green eyes"]
    chosen = _best_prompts(clip, to_float(heldout["images"][:24]), [prompts] * 24)
    truth = [f"{names_of(a)['eyes']} eyes" for a in heldout["attrs"][:24]]
    assert sum(c[0] == t for c, t in zip(chosen, truth)) >= 22
    maps = relevance_maps(clip, to_float(heldout["images"][:4]), prompts, select="best")
    assert maps.shape == (4, 1, 64, 64)
    with pytest.raises(ValueError, match="select"):
        relevance_maps(clip, to_float(heldout["images"][:1]), prompts, select="max")


def test_contrast_selection_subtracts_the_other_attributes_maps(clip, heldout):
    """select="contrast": the best prompt's raw map minus the mean of the other prompts' raw maps, clamped at 0,
    then normalised; on held-out hair it covers the hair better than the best prompt's map alone (what lights for
    every hair colour - the hair's edges, the backdrop - cancels), at each variant's best threshold."""
    from lenerf.clip.relevance import _best_prompts, _normalize, _raw_maps
    from lenerf.synthetic import SyntheticHeads
    prompts = SyntheticHeads().expand_prompt("hair")
    imgs = to_float(heldout["images"][:4])
    got = relevance_maps(clip, imgs, prompts, select="contrast")
    best = [b[0] for b in _best_prompts(clip, imgs, [prompts] * 4)]
    raw = _raw_maps(clip, imgs, [[p] * 4 for p in prompts], 64)  # [5, 4, 1, 64, 64]
    own = torch.stack([raw[prompts.index(b), i] for i, b in enumerate(best)])
    others = (raw.sum(0) - own) / (len(prompts) - 1)
    torch.testing.assert_close(got, _normalize((own - others).clamp_min(0), True), atol=1e-5, rtol=0)
    # one prompt: nothing to contrast with, the plain map
    torch.testing.assert_close(relevance_maps(clip, imgs, ["red hair"], select="contrast"),
                               relevance_maps(clip, imgs, ["red hair"]))
    with pytest.raises(ValueError, match="two prompts"):
        relevance_maps(clip, imgs[:2], [["red hair", "black hair"], ["red hair"]], select="contrast")
    x, gt = to_float(heldout["images"]), heldout["labels"] == PARTS.index("hair") + 1
    templates = ["{}", "a face with {}"]
    maps = lambda sel: relevance_maps(clip, x, prompts, select=sel, templates=templates)  # noqa: E731
    score = lambda sel: max(relevance_iou(maps(sel), gt, t).mean().item() for t in (0.02, 0.05, 0.1, 0.2))  # noqa: E731
    assert score("contrast") > score("best") + 0.02


def test_refined_maps_fill_a_region_of_one_colour_and_stop_at_its_edge():
    """refine_maps spreads relevance through pixels of one colour, not across a colour edge, keeps values within
    the maps' range, and 0 iterations change nothing."""
    from lenerf.clip.relevance import refine_maps
    img = -torch.ones(1, 3, 32, 32)
    img[..., 8:24, 8:24] = 1.0  # a white square on black
    seed = torch.zeros(1, 1, 32, 32)
    seed[..., 14:18, 14:18] = 1.0  # relevance lit on 16 pixels in the square's middle
    r = refine_maps(img, seed, iterations=10)
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[8:24, 8:24] = True
    assert r[0, 0][inside].min() > 0.01  # the whole square got relevance ...
    assert r[0, 0][~inside].max() < 1e-6  # ... nothing leaked onto the black
    assert r.min() >= 0 and r.max() <= 1
    blurred = refine_maps(torch.zeros_like(img), seed, iterations=10)  # one colour: a plain blur
    assert blurred[0, 0][~inside].max() > 0.01
    assert torch.equal(refine_maps(img, seed, 0), seed)
    with pytest.raises(ValueError, match="iterations"):
        refine_maps(img, seed, -1)


def test_otsu_thresholds_split_each_map_at_its_own_area():
    """otsu_thresholds cuts every map of a batch between its two value clusters whatever their areas (a 2% part
    and a 25% part in one batch, which no single quantile serves), agrees with a per-map loop, and leaves a flat
    map nothing above its threshold."""
    from lenerf.clip.relevance import otsu_thresholds
    g = torch.Generator().manual_seed(0)
    maps = 0.3 * torch.rand(3, 1, 40, 40, generator=g)  # background in [0, 0.3)
    small, large = torch.zeros(40, 40, dtype=torch.bool), torch.zeros(40, 40, dtype=torch.bool)
    small[10:15, 10:16] = True  # 30 px, ~2%
    large[:20, 0:20] = True  # 400 px, 25%
    maps[0, 0][small] = 0.6 + 0.4 * torch.rand(int(small.sum()), generator=g)
    maps[1, 0][large] = 0.6 + 0.4 * torch.rand(int(large.sum()), generator=g)
    maps[2] = 0.5
    t = otsu_thresholds(maps)
    assert t.shape == (3,)
    assert torch.equal(maps[0, 0] >= t[0], small) and torch.equal(maps[1, 0] >= t[1], large)
    assert t[2] == 1.0 and not (maps[2] >= t[2]).any()
    assert torch.equal(torch.cat([otsu_thresholds(m[None]) for m in maps]), t)
    for q in (0.9, 0.98):  # a quantile fits one of the two areas at best
        cut = torch.quantile(maps[:2].flatten(1), q, dim=1).view(-1, 1, 1)
        assert not (torch.equal(maps[0, 0] >= cut[0], small) and torch.equal(maps[1, 0] >= cut[1], large))


def test_otsu_pseudo_labels_find_small_and_large_parts_without_an_area(clip, heldout):
    """The app's pseudo-labels for a part it has no recipe for (since session 25: the part's phrases contrasted,
    two templates, 2-px shifts, 10 refinement steps, cut at each map's Otsu threshold) on 48 unseen heads cover the
    nose, the lips, the eyes and the hair far better than session 24's (the best phrase's map, its top 10%: one
    area for every part). Median IoU measured: nose 0.95 vs 0.17, lips 0.93 vs 0.14, eyes 0.60 vs 0.20, hair 0.51
    vs 0.27."""
    from lenerf.clip.relevance import otsu_thresholds
    from lenerf.synthetic import SyntheticHeads
    G = SyntheticHeads()
    x = to_float(heldout["images"])
    kw = dict(templates=["{}", "a face with {}"], shift_px=2, refine=10)
    for part, floor in (("nose", 0.8), ("lips", 0.8), ("eyes", 0.45), ("hair", 0.45)):
        gt = heldout["labels"].long() == PARTS.index(part) + 1
        new = relevance_maps(clip, x, G.expand_prompt(part), select="contrast", **kw)[:, 0]
        old = relevance_maps(clip, x, G.expand_prompt(part), select="best", **kw)[:, 0]
        otsu = iou(new >= otsu_thresholds(new[:, None]).view(-1, 1, 1), gt).median().item()
        top10 = iou(old >= torch.quantile(old.flatten(1), 0.9, dim=1).view(-1, 1, 1), gt).median().item()
        assert otsu > floor and otsu > top10 + 0.2, (part, otsu, top10)


def test_refined_relevance_covers_parts_better_than_the_mean_mask(clip, heldout):
    """relevance_maps(refine=...) on 48 unseen heads, with eval-clip's relevance_iou_contrast_shifted_refined
    settings (contrast, 3 x 3 shifts, 20 iterations at colour scale 0.03). Hair: the refined map of MiniCLIP-length
    covers the hair better than its unrefined map and than the mean ground-truth mask over 48 other heads (the
    synthetic-world issue's baseline); MiniCLIP's refined hair map beats its unrefined one. Eyes, MiniCLIP, best
    prompt, the default refinement: better than unrefined."""
    from lenerf.metrics import mean_mask_baseline
    from lenerf.synthetic import SyntheticHeads
    from lenerf.synthetic.evaluate import RELEVANCE_REFINE, RELEVANCE_REFINE_SIGMA
    G = SyntheticHeads()
    x = to_float(heldout["images"])
    score = lambda maps, gt: max(relevance_iou(maps, gt, t).mean().item() for t in (0.05, 0.1, 0.2, 0.3))  # noqa: E731
    hair = heldout["labels"] == PARTS.index("hair") + 1
    kw = dict(select="contrast", templates=["{}", "a face with {}"], shift_px=2, shifts=9)
    ref = dict(refine=RELEVANCE_REFINE, refine_sigma=RELEVANCE_REFINE_SIGMA)
    train = make_dataset(48, 1, EVAL_SEED_BASE + 950_000, camera_seed=78, progress=False)
    baseline, _ = mean_mask_baseline(train["labels"] == PARTS.index("hair") + 1, hair)
    length = load_clip("miniclip-length")
    refined = score(relevance_maps(length, x, G.expand_prompt("hair"), **ref, **kw), hair)
    assert refined > score(relevance_maps(length, x, G.expand_prompt("hair"), **kw), hair) + 0.05
    assert refined > baseline + 0.03
    main = score(relevance_maps(clip, x, G.expand_prompt("hair"), **ref, **kw), hair)
    assert main > score(relevance_maps(clip, x, G.expand_prompt("hair"), **kw), hair) + 0.05
    eyes = heldout["labels"] == PARTS.index("eyes") + 1
    maps = [relevance_maps(clip, x, G.expand_prompt("eyes"), select="best", refine=r) for r in (0, 10)]
    assert score(maps[1], eyes) > score(maps[0], eyes) + 0.1
    with pytest.raises(ValueError, match="sigma"):
        relevance_maps(clip, x[:1], ["red hair"], refine=2, refine_sigma=0.0)


def test_last_block_attention_rerun_matches_open_clip(clip, heldout):
    """The hand re-run of the last block (relevance maps, the entropy bonus of train-clip) gives open_clip's own
    image features, attention rows that sum to 1, and gradients into the model when kept in the graph."""
    from lenerf.clip.relevance import encode_with_last_attention
    pixels = clip.preprocess(to_float(heldout["images"][:3]))
    with torch.no_grad():
        ref = clip.model.encode_image(pixels)
    feats, probs = encode_with_last_attention(clip.model.visual, pixels, leaf=True)
    assert torch.allclose(feats, ref, atol=1e-4)
    assert probs.is_leaf and torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)
    visual = clip.model.visual
    visual.requires_grad_(True)
    try:
        _, attached = encode_with_last_attention(visual, pixels, leaf=False)
        cls = attached[:, :, 0].clamp_min(1e-12)
        (-(cls * cls.log()).sum(-1).mean()).backward()
        assert visual.transformer.resblocks[-1].attn.in_proj_weight.grad.abs().sum() > 0
    finally:
        visual.requires_grad_(False)
        visual.zero_grad(set_to_none=True)


def test_cls_only_last_block_is_exact(clip, heldout):
    """Relevance maps only read the CLS row: running the last block for the CLS query alone gives the same
    features and the same attention row as the full block."""
    from lenerf.clip.relevance import encode_with_last_attention, pools_cls_token
    pixels = clip.preprocess(to_float(heldout["images"][:3]))
    assert pools_cls_token(clip.model.visual)
    full_f, full_p = encode_with_last_attention(clip.model.visual, pixels)
    cls_f, cls_p = encode_with_last_attention(clip.model.visual, pixels, cls_only=True)
    assert cls_p.shape == (3, full_p.shape[1], 1, full_p.shape[-1])
    assert torch.allclose(cls_f, full_f, atol=1e-5) and torch.allclose(cls_p, full_p[:, :, :1], atol=1e-6)


def test_shifted_relevance_sharpens_eye_pseudo_labels(clip, heldout):
    """Averaging the maps over sub-patch translations of the image (shift_px) puts the top 3% of each map on
    the eyes more often than the plain map does (patch-4 ViT on 64 px renders: 2 px is half a patch)."""
    from lenerf.synthetic.evaluate import names_of
    imgs = to_float(heldout["images"][:24])
    prompts = [[f"{names_of(a)['eyes']} eyes"] for a in heldout["attrs"][:24]]
    eyes = heldout["labels"][:24].long() == PARTS.index("eyes") + 1

    def top3_iou(maps):
        pred = maps[:, 0] >= torch.quantile(maps.flatten(1), 0.97, dim=1).view(-1, 1, 1)
        return ((pred & eyes).flatten(1).sum(1) / (pred | eyes).flatten(1).sum(1).clamp_min(1)).median().item()

    plain = relevance_maps(clip, imgs, prompts)
    shifted = relevance_maps(clip, imgs, prompts, shift_px=2, shifts=9)
    assert shifted.shape == plain.shape and shifted.min() >= 0 and shifted.max() <= 1
    assert torch.equal(relevance_maps(clip, imgs, prompts, shift_px=0), plain)
    assert top3_iou(shifted) > top3_iou(plain) + 0.02, (top3_iou(shifted), top3_iou(plain))
    with pytest.raises(ValueError, match="shifts"):
        relevance_maps(clip, imgs[:1], prompts[:1], shift_px=2, shifts=4)
    with pytest.raises(ValueError, match="shift_px"):
        relevance_maps(clip, imgs[:1], prompts[:1], shift_px=-1)


def test_directional_loss_can_start_from_each_images_own_source_prompt(clip, heldout):
    """source_select="best": each image's direction starts from the source prompt CLIP matches to it, i.e. for
    green-eyed sources the loss is the one with "green eyes" as the only source prompt."""
    from lenerf.clip.losses import clip_loss
    from lenerf.synthetic.evaluate import names_of
    eyes = [names_of(a)["eyes"] for a in heldout["attrs"]]
    green = [i for i, e in enumerate(eyes) if e == "green"][:2]
    brown = [i for i, e in enumerate(eyes) if e == "brown"][:2]
    src, edited = to_float(heldout["images"][green]), to_float(heldout["images"][brown])
    both = ["a face with brown eyes", "a face with green eyes"]
    kw = dict(kind="dir_diff", augmentations=0)
    best = clip_loss(clip, edited, src, ["a face with blue eyes"], both, source_select="best", **kw)
    own = clip_loss(clip, edited, src, ["a face with blue eyes"], both[1:], **kw)
    mean = clip_loss(clip, edited, src, ["a face with blue eyes"], both, **kw)
    assert torch.allclose(best, own, atol=1e-6) and not torch.allclose(best, mean, atol=1e-4)
    with pytest.raises(ValueError, match="source_select"):
        clip_loss(clip, edited, src, ["a face with blue eyes"], both, source_select="first", **kw)


def test_zero_shot_loss_is_clips_classification_among_edit_and_source_prompts(clip, heldout):
    """kind="zero_shot": cross-entropy of the edit text among edit + source prompts (normalised embeddings, the
    model's logit scale); low on heads that already have the target value, high on heads with a source value."""
    import torch.nn.functional as F
    from lenerf.clip.losses import clip_loss
    from lenerf.synthetic.evaluate import names_of
    hair = [names_of(a)["hair"] for a in heldout["attrs"]]
    red = [i for i, h in enumerate(hair) if h == "red"][:3]
    black = [i for i, h in enumerate(hair) if h == "black"][:3]
    assert len(red) == 3 and len(black) == 3
    edit, sources = ["a face with red hair"], ["a face with black hair", "a face with white hair"]
    imgs = to_float(heldout["images"][red + black])
    per = [clip_loss(clip, imgs[i:i + 1], imgs[i:i + 1], edit, sources, "zero_shot", 0).item() for i in range(6)]
    with torch.no_grad():
        texts = F.normalize(clip.model.encode_text(clip.tokenize(edit + sources)), dim=-1)
        images = F.normalize(clip.model.encode_image(clip.preprocess(imgs)), dim=-1)
        logits = clip.model.logit_scale.exp() * images @ texts.T
    want = F.cross_entropy(logits, torch.zeros(6, dtype=torch.long), reduction="none")
    assert torch.allclose(torch.tensor(per), want, atol=1e-4)
    assert max(per[:3]) < 0.5 < min(per[3:])  # MiniCLIP reads red hair as red, black hair as not red
    with pytest.raises(ValueError, match="unknown CLIP loss"):
        clip_loss(clip, imgs[:1], imgs[:1], edit, sources, "zero-shot", 0)


def test_relevance_templates_average_the_phrasings(clip, heldout):
    """templates=["{}", "a face with {}"] is the mean of the two phrasings' maps (method.md §6.3)."""
    from lenerf.synthetic.evaluate import names_of
    imgs = to_float(heldout["images"][:4])
    words = [f"{names_of(a)['lips']} lips" for a in heldout["attrs"][:4]]
    a = relevance_maps(clip, imgs, [[w] for w in words], templates=["{}", "a face with {}"])
    b = relevance_maps(clip, imgs, [[w, f"a face with {w}"] for w in words])
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, relevance_maps(clip, imgs, [[w] for w in words]), atol=1e-3)


def test_relevance_scores_tune_the_threshold_on_training_renders(clip, heldout):
    """eval-clip reports IoU at 0.5, at the threshold chosen on training renders, at the held-out oracle and at
    each map's Otsu threshold."""
    from lenerf.synthetic.evaluate import THRESHOLDS, relevance_scores
    train = make_dataset(16, 1, 1_000_000, camera_seed=5, progress=False)
    scores = relevance_scores(clip, heldout, train, batch=16, calibration=16)
    assert set(scores) == {"eyes", "hair", "mouth", "nose"}
    for s in scores.values():
        assert s["train_threshold"] in THRESHOLDS
        assert s["iou"] <= s["iou_best_threshold"] + 1e-9
        assert s["iou_train_threshold"] <= s["iou_best_threshold"] + 1e-9
    assert scores["eyes"]["iou_best_threshold"] > scores["eyes"]["mean_mask_baseline_iou"] * 0.5
    # and at each map's own Otsu threshold (one threshold per map, not one for the batch)
    from lenerf.clip.relevance import otsu_thresholds
    from lenerf.synthetic.evaluate import RELEVANCE_PROMPTS, _part_maps
    maps = _part_maps(clip, heldout["images"], heldout["attrs"], *RELEVANCE_PROMPTS["eyes"], batch=16)
    gt = heldout["labels"].long() == PARTS.index("eyes") + 1
    each = [relevance_iou(m[None], g[None], float(otsu_thresholds(m[None]))).item() for m, g in zip(maps, gt)]
    assert scores["eyes"]["iou_otsu"] == pytest.approx(sum(each) / len(each), abs=1e-4)
    # the negative-prompt variant subtracts the skin map: other maps, same baseline, the prompts recorded
    from lenerf.synthetic.evaluate import NEGATIVE_SKIN
    neg = relevance_scores(clip, heldout, train, batch=16, calibration=16, negative=list(NEGATIVE_SKIN))
    assert neg["hair"]["negative"] == list(NEGATIVE_SKIN) and scores["hair"]["negative"] == []
    assert neg["hair"]["mean_mask_baseline_iou"] == scores["hair"]["mean_mask_baseline_iou"]
    assert any(neg[p]["iou_best_threshold"] != scores[p]["iou_best_threshold"] for p in scores)


def test_train_clip_second_phase_on_off_palette_renders_resumes_exactly(tmp_path, monkeypatch):
    """train-clip's second phase (off-palette renders) continues the first one: a run stopped at the phase boundary
    and resumed with the second phase gives the weights of one uninterrupted run, and the card says what was done."""
    import lenerf.synthetic.evaluate as ev
    from safetensors.torch import load_file

    from lenerf.synthetic.data import training_file
    from lenerf.synthetic.train_clip import train_clip
    monkeypatch.setattr(ev, "relevance_scores", lambda *a, **k: {})  # the full relevance sweep is not under test
    tiny = {"heads": 4, "views": 1, "eval_heads": 2, "eval_views": 1, "batch": 4, "steps": 2, "warmup": 1,
            "save_every": 1, "finetune_steps": 2, "finetune_jitter": 0.3}
    card = train_clip(tmp_path / "a", tmp_path / "wa", tiny, progress=False)
    assert json.loads((tmp_path / "wa" / "train_state.json").read_text())["step"] == 4
    assert "then 2 steps on the same heads with colours moved off the palette by up to 0.3" in card["data"]
    assert card["config"]["finetune_steps"] == 2
    # both phases' renders were made: same heads and cameras, other colours
    p1, p2 = (load_file(training_file({**tiny, "seed": 0, "color_jitter": j}, tmp_path / "wa")) for j in (0.0, 0.3))
    assert p1["images"].shape == p2["images"].shape and not torch.equal(p1["images"], p2["images"])
    train_clip(tmp_path / "b", tmp_path / "wb", {**tiny, "finetune_steps": 0}, progress=False)
    assert json.loads((tmp_path / "wb" / "train_state.json").read_text())["step"] == 2
    first = load_file(tmp_path / "b" / "model.safetensors")
    train_clip(tmp_path / "b", tmp_path / "wb", tiny, progress=False)
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], first[k]) for k in a)  # the second phase did train
    # another first phase is refused before anything is rendered or trained; --restart discards the state
    with pytest.raises(InputError, match=r"another configuration \(different: patch_dropout\)"):
        train_clip(tmp_path / "c", tmp_path / "wb", {**tiny, "patch_dropout": 0.25}, progress=False)
    assert not (tmp_path / "c").exists()
    train_clip(tmp_path / "c", tmp_path / "wb", {**tiny, "patch_dropout": 0.25, "finetune_steps": 0}, progress=False,
               restart=True)
    saved = json.loads((tmp_path / "wb" / "train_state.json").read_text())
    assert saved["step"] == 2 and saved["config"]["patch_dropout"] == 0.25


def test_text_features_are_encoded_once_per_prompt_list_and_bounded():
    """text_features: the raw embeddings of encode_text, computed once per list of texts (the training loop asks
    for the same prompts on every step), no gradient, and the cache stays bounded."""
    c = load_clip("miniclip")  # its own instance: the cache size is changed below
    texts = ["a face with blue eyes", "blue eyes"]
    a = c.text_features(texts)
    assert torch.equal(a, c.encode_text(texts)) and not a.requires_grad
    assert c.text_features(list(texts)) is a  # a new list with the same texts hits the cache
    assert not torch.equal(c.text_features(texts[::-1]), a)  # order matters: rows follow the texts
    c.TEXT_CACHE_SIZE = 3
    for i in range(10):
        c.text_features([f"{i} red lips"])
    assert len(c._text_cache) == 3


def test_length_response_of_the_shipped_miniclip_is_a_step(clip):
    """eval-clip --lengths: the shipped MiniCLIP (trained on the world's lengths 0 and 1 only) reads every
    in-between length as short and h = 1 as long, so a length edit's mapper has no slope to follow from short hair
    (docs/editing.md, "Why hair_long failed until session 16"); the length-ranking term of train-clip is what makes it
    rise from h = 0."""
    from lenerf.synthetic.evaluate import length_response
    r = length_response(clip, heads=2, lengths=(0.0, 0.3, 0.7, 1.0), resolution=64)
    assert r["heads"] == 2 and r["views"] == 3 and len(r["p_long_mean"]) == 4
    assert max(r["p_long_max"][:3]) < 0.05 < 0.9 < r["p_long_min"][3]


def test_length_response_of_miniclip_length_rises_from_short_hair():
    """The second shipped MiniCLIP (train-clip --preset miniclip-length) reads longer hair as more "long" from
    h = 0 on, the slope hair_long's mapper follows (measured on 8 heads: 0.017 / 0.21 / 0.96 at h = 0 / 0.3 / 1)."""
    from lenerf.synthetic.evaluate import length_response
    r = length_response(load_clip("miniclip-length"), heads=2, lengths=(0.0, 0.1, 0.3, 0.7, 1.0), resolution=64)
    p = r["p_long_mean"]
    assert all(a < b for a, b in zip(p, p[1:])), p
    assert p[0] < 0.1 and p[2] > 3 * p[0] and p[-1] > 0.9, p


def test_eye_size_response_of_miniclip_eyes_rises_from_the_worlds_eyes(clip):
    """miniclip-eyes (train-clip --preset miniclip-eyes: heads with eyes scaled by U(1, 1.7), captions "big" above
    1.35, the graded eye term) reads bigger eyes as more "big" from the world's own size on (measured on 8 heads:
    p(big) 0.20 / 0.25 / 0.32 / 0.44 at scale 1 / 1.2 / 1.4 / 1.7), the slope eyes_big's deformation follows; the
    shipped MiniCLIP, never shown an eye size, reads none (0.488 / 0.487 / 0.486 / 0.483)."""
    from lenerf.synthetic.evaluate import eye_size_response
    scales = (1.0, 1.2, 1.4, 1.7)
    p = eye_size_response(load_clip("miniclip-eyes"), heads=2, scales=scales)["p_big_mean"]
    assert all(a < b for a, b in zip(p, p[1:])) and p[-1] - p[0] > 0.15, p
    flat = eye_size_response(clip, heads=2, scales=scales)["p_big_mean"]
    assert max(flat) - min(flat) < 0.03, flat


def test_colour_response_finds_where_the_colour_texts_peak():
    """eval-clip --colours: miniclip-color's "red hair" peaks at a magenta far off the palette red (measured on 4
    heads: (1.0, 0.0, 0.5), 0.48 away; hair_red followed it until session 26), miniclip-palette's (its colour-ranking
    term) next to the palette red; the palette colours of brown and white hair are miniclip-palette's peaks."""
    from lenerf.synthetic.evaluate import colour_response
    old = colour_response(load_clip("miniclip-color"), heads=2, parts=("hair",))
    new = colour_response(load_clip("miniclip-palette"), heads=2, parts=("hair",))
    assert set(new["classes"]) == {f"{c} hair" for c in ("black", "brown", "blonde", "red", "white")}
    assert new["colours_tried"] == 5 ** 3 + 1
    for r in (*old["classes"].values(), *new["classes"].values()):
        assert r["peak_cos"] >= r["palette_cos"] and r["palette_rank_by_cos"] >= 1
        assert r["palette_rank_by_cos"] > 1 or r["peak_cos"] == r["palette_cos"]
    red_old, red_new = old["classes"]["red hair"], new["classes"]["red hair"]
    assert red_old["peak_by_cos"][2] >= 0.5 and red_old["peak_by_cos_distance"] > 0.4, red_old
    assert red_new["peak_by_cos"][2] <= 0.25 and red_new["peak_by_cos_distance"] < 0.25, red_new
    assert all(new["classes"][f"{c} hair"]["palette_rank_by_cos"] == 1 for c in ("brown", "white"))


def test_synthetic_cli_reports_a_missing_model_in_one_line(tmp_path, capsys):
    from lenerf.synthetic.__main__ import main
    (tmp_path / "empty").mkdir()
    assert main(["eval-clip", "--model", str(tmp_path / "empty"), "--lengths"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: MiniCLIP weights not found") and "Traceback" not in err


def test_train_clip_presets_choose_the_shipped_settings_and_folders(monkeypatch, capsys):
    import lenerf.synthetic.train_clip as tc
    from lenerf.clip.models import MINICLIPS
    from lenerf.synthetic.__main__ import main
    calls = []
    monkeypatch.setattr(tc, "train_clip", lambda out, work, cfg, restart=False: calls.append((out, work, cfg, restart))
                        or {"scores_held_out": {}})
    assert main(["train-clip", "--preset", "miniclip-length", "--steps", "7"]) == 0
    assert calls[-1] == (MINICLIPS["miniclip-length"], "runs/miniclip-length",
                         {**tc.SHIPPED["miniclip-length"], "steps": 7}, False)
    assert main(["train-clip", "--length-rank", "0.5", "--out", "x", "--work", "y", "--restart"]) == 0
    assert calls[-1] == ("x", "y", {"length_rank": 0.5}, True)
