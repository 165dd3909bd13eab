"""The synthetic heads world: interface, ground truth, attributes from ws, differentiability."""
import numpy as np
import pytest
import torch

from lenerf.pipeline import latent_from_seed, render_view
from lenerf.synthetic import ATTRIBUTES, PARTS, SyntheticHeads, captions_for
from lenerf.synthetic.data import latents, make_dataset


@pytest.fixture(scope="module")
def G():
    return SyntheticHeads()


def test_mapping_encodes_recoverable_attributes(G):
    z = torch.from_numpy(np.random.RandomState(0).randn(64, G.z_dim)).float()
    _, classes = G.attribute_code(z)
    ws = G.mapping(z, G.camera(0, 0).expand(64, -1))
    assert ws.shape == (64, 14, 32)
    assert torch.allclose(ws[:, 0], ws[:, 13])  # broadcast like StyleGAN
    rec = G.attributes(ws)
    for k in ATTRIBUTES:
        assert torch.equal(rec[k], classes[k]), k
    # every class of every attribute occurs in a few hundred heads
    z = torch.from_numpy(np.random.RandomState(1).randn(400, G.z_dim)).float()
    rec = G.attributes(G.mapping(z, None))
    for k, names in ATTRIBUTES.items():
        assert set(rec[k].tolist()) == set(range(len(names))), k


def test_editing_a_code_changes_only_that_attribute(G):
    ws = latent_from_seed(G, 3)
    names = G.attribute_names(ws)[0]
    a = G.decode_code(ws[:, 8:].mean(1))
    from lenerf.synthetic.world import _SLOT, PALETTES
    target = "blue" if names["eyes"] != "blue" else "green"
    a[:, _SLOT["eyes"]] = torch.tensor(PALETTES["eyes"][target])
    ws2 = ws.clone()
    ws2[:, 8:] = G.encode(a).unsqueeze(1)
    new = G.attribute_names(ws2)[0]
    assert new["eyes"] == target and {k: v for k, v in new.items() if k != "eyes"} == \
        {k: v for k, v in names.items() if k != "eyes"}


def test_label_images_locate_the_parts(G):
    ws = latents(G, [5, 6])
    labels, out = G.label_image(ws, G.camera(torch.zeros(2), torch.zeros(2)), 64)
    assert labels.shape == (2, 64, 64) and out["image"].shape == (2, 3, 128, 128)
    for i in range(2):
        present = set(labels[i].unique().tolist())
        assert {0, 1, 2, 3, 4, 5} <= present  # background, skin, eyes, hair, lips, nose visible from the front
        rows = lambda k: torch.nonzero(labels[i] == k)[:, 0].float().mean()  # noqa: E731
        top_of_hair = torch.nonzero(labels[i] == 3)[:, 0].min()
        assert top_of_hair < rows(2) < rows(5) < rows(4)  # hair starts above the eyes; eyes above nose above lips
        eye_cols = torch.nonzero(labels[i] == 2)[:, 1]
        assert eye_cols.min() < 28 and eye_cols.max() > 36  # two eyes, left and right of the centre


def test_3d_part_labels(G):
    ws = latents(G, [7])
    pts = torch.tensor([[[0.075, 0.035, 0.2], [0.0, -0.015, 0.25], [0.0, -0.115, 0.205], [0.1, -0.06, 0.18],
                         [0.0, 0.0, 0.45]]])
    lab = G.part_labels(ws, pts)[0].tolist()
    idx = {p: PARTS.index(p) + 1 for p in PARTS}
    assert lab[:3] == [idx["eyes"], idx["nose"], idx["lips"]]
    assert lab[3] == idx["skin"] and lab[4] == 0  # just under the cheek = skin; empty space in front = background


def test_rendering_is_differentiable_in_ws(G):
    ws = latents(G, [1]).requires_grad_(True)
    out = G.synthesis(ws, G.camera(0.2, 0.0), neural_rendering_resolution=32)
    out["image"].mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0


def test_colour_past_its_bound_gets_only_the_gradient_back_inside(G):
    """A latent whose eye colour is decoded past [0, 1] renders the clamped colour; a loss asking for "more" of
    the saturated channel sends no gradient (it would grow the latent for nothing), one asking for less does."""
    from lenerf.synthetic.world import _SLOT
    ws = latents(G, [3])
    a = G.decode_code(ws[:, 8:].mean(1))
    a[:, _SLOT["eyes"]] = torch.tensor([0.5, -0.4, 1.6])  # green below 0, blue above 1
    ws = G.encode(a).unsqueeze(1).repeat(1, G.num_ws, 1).requires_grad_(True)
    eye = G.params(ws).colors["eyes"]
    assert torch.allclose(eye.detach(), torch.tensor([[0.5, 0.0, 1.0]]))
    for sign, moved in ((1.0, False), (-1.0, True)):  # descent on -colour pushes green/blue up, on +colour down
        ws.grad = None
        (sign * G.params(ws).colors["eyes"]).sum().backward()
        g = G.decode_code(ws.grad[:, 8:].sum(1))[0, _SLOT["eyes"]]
        assert g[0].abs() > 0.1  # inside the range: the gradient flows in both directions
        # green (below 0): a loss decreasing with it (sign -1) pulls it up -> inward; sign +1 would push it down
        assert (g[1].abs() > 0.1) == moved
        # blue (above 1): sign +1 pulls it down -> inward; sign -1 would push it further up
        assert (g[2].abs() > 0.1) == (not moved)


def test_view_consistency_and_background(G):
    ws = latent_from_seed(G, 11)
    a = render_view(G, ws, 0.0, 0.0, preset="full").raw["image_opacity"]
    assert a.min() > 0.9  # the backdrop makes every ray opaque: no empty pixels
    b = render_view(G, ws, 0.5, 0.25, preset="full").raw["image"]
    assert torch.isfinite(b).all() and b.abs().max() <= 1.0


def test_images_for_people_show_the_backdrop_where_rays_pass_beside_the_bowl(G):
    """From yaw ~0.3 on, corner rays miss the backdrop bowl and render black; the app's and the CLI's images fill
    them with the backdrop colour, by opacity, while the render itself (what training and evaluation see) is kept."""
    from lenerf.editing import LocalEditor, load_edit
    from lenerf.media import to_uint8
    from lenerf.pipeline import render_edit
    from lenerf.synthetic.world import BACKDROP

    ws = latent_from_seed(G, 4)
    v = render_view(G, ws, 0.5, -0.2, preset="preview")
    op = torch.nn.functional.interpolate(v.raw["image_opacity"], size=v.image.shape[:2], mode="bilinear")[0, 0]
    empty, solid = (op < 0.01).numpy(), (op > 0.999).numpy()
    assert empty.mean() > 0.03  # the corners really miss the bowl at this camera
    raw = to_uint8(v.raw["image"])
    assert raw[empty].max() <= 3  # ... and render black
    backdrop = np.round(np.array(BACKDROP) * 255)
    assert np.abs(v.image[empty] - backdrop).max() <= 1  # shown as the backdrop
    assert np.abs(v.image[solid].astype(int) - raw[solid]).max() <= 1  # opaque pixels untouched (rounding)
    # the edit views fill the source and the edited image by their own opacity (a deformation edit: its own render)
    editor = LocalEditor(G, [load_edit("checkpoints/edits/hair_long")[0]])
    e = render_edit(editor, ws, 0.5, -0.2)
    for img in (e.source, e.edited):
        assert np.abs(img[empty].astype(int) - backdrop).max() <= 1


def test_captions_are_consistent():
    import random
    attrs = {"skin": "tan", "eyes": "blue", "hair": "red", "hair_length": "long", "lips": "pink", "nose": "yellow"}
    full = captions_for(attrs, full=True)
    assert full == "a face with tan skin, blue eyes, long red hair, pink lips and a yellow nose"
    rng = random.Random(0)
    for _ in range(20):
        c = captions_for(attrs, rng)
        words = c[len("a face with "):].replace(" and ", ", ").split(", ")
        assert c.startswith("a face with ") and all(w in full for w in words)


def test_dataset_is_deterministic(G):
    a = make_dataset(3, 2, 50, resolution=32, progress=False, G=G)
    b = make_dataset(3, 2, 50, resolution=32, progress=False, G=G)
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["labels"], b["labels"])
    assert a["images"].shape == (6, 3, 32, 32) and a["attrs"].shape == (6, 6)


def test_colour_jitter_moves_only_colours_and_classes_follow_the_nearest_palette_colour(G):
    ws = latents(G, range(40, 80))
    moved = G.jitter_colors(ws, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(moved[:, :8], ws[:, :8])  # geometry rows untouched
    p0, p1 = G.params(ws), G.params(moved)
    assert p1.hair_length.equal(p0.hair_length) and p1.nose_l.equal(p0.nose_l)
    shift = torch.stack([(p1.colors[k] - p0.colors[k]).abs().amax(-1) for k in p0.colors], 1)  # [N, parts]
    assert shift.max() <= 0.3 + 1e-5 and shift.mean() > 0.03
    from lenerf.synthetic.world import PALETTES
    classes = G.attributes(moved)
    for part in ("eyes", "hair", "lips"):
        pal = torch.tensor(list(PALETTES[part].values()))
        assert torch.equal(classes[part], torch.cdist(p1.colors[part], pal).argmin(-1))
    assert any(not torch.equal(classes[k], G.attributes(ws)[k]) for k in ("eyes", "hair", "lips"))
    # deterministic per generator seed; a jittered dataset keeps every view of a head in the same colours
    assert torch.equal(moved, G.jitter_colors(ws, 0.3, torch.Generator().manual_seed(0)))
    d = make_dataset(3, 2, 50, resolution=32, progress=False, G=G, color_jitter=0.3)
    assert torch.equal(d["attrs"][0::2], d["attrs"][1::2])
    assert not torch.equal(d["images"], make_dataset(3, 2, 50, resolution=32, progress=False, G=G)["images"])


def test_hair_length_jitter_gives_intermediate_lengths_and_classes_follow_them(G):
    ws = latents(G, range(40, 48))
    h = torch.linspace(0, 1, 8)
    moved = G.with_hair_length(ws, h)
    assert torch.equal(moved[:, 8:], ws[:, 8:])  # colour rows untouched
    p0, p1 = G.params(ws), G.params(moved)
    assert torch.allclose(p1.hair_length, h, atol=1e-5) and torch.allclose(p1.head_w, p0.head_w, atol=1e-5)
    assert torch.equal(G.attributes(moved)["hair_length"], (h > 0.5).long())
    d = make_dataset(6, 2, 50, resolution=16, progress=False, G=G, length_jitter=1.0)
    lengths = d["hair_length"]
    assert ((lengths > 0.01) & (lengths < 0.99)).all() and torch.equal(lengths[0::2], lengths[1::2])
    assert torch.equal(d["attrs"][:, -1], (lengths > 0.5).long())
    plain = make_dataset(6, 2, 50, resolution=16, progress=False, G=G)["hair_length"]
    assert ((plain < 1e-5) | (plain > 1 - 1e-5)).all()  # the world's own lengths: 0 or 1


def test_graded_length_loss_prefers_p_long_equal_to_the_length():
    from lenerf.synthetic.train_clip import _LENGTH_TEXTS, graded_length_loss
    k = len(_LENGTH_TEXTS) // 2
    lengths, hair = torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0, 3, 4])

    def logits_for(p):  # long - short = logit(p) for the plain pair and each image's colour pair
        x = torch.zeros(3, 2 * k)
        x[:, 0] = torch.logit(p)
        x[torch.arange(3), 1 + hair] = torch.logit(p)
        return x
    exact = graded_length_loss(logits_for(lengths), lengths, hair)
    assert torch.isclose(exact, torch.nn.functional.binary_cross_entropy(lengths, lengths))
    for p in (1 - lengths, torch.full((3,), 0.5), lengths.clamp(0.3, 0.7)):
        assert graded_length_loss(logits_for(p), lengths, hair) > exact + 1e-3
    wrong_colour = logits_for(lengths).roll(1, 1)  # the pair of another colour carries the slope
    assert graded_length_loss(wrong_colour, lengths, hair) > exact + 1e-3


def test_growing_short_hair_moves_a_visible_surface_from_the_start(G):
    """A short-haired head's render changes at first order as its hair-length code leaves 0 (the hair line drops at
    the nape and over the ears), so an edit's mapper gets a gradient towards long hair. Measured (world version 3):
    0.3-0.6 of the gradient at h = 0.1; nape drop only (version 2): 0.14-0.20; the long-hair slab only (gated off
    below h = 0.05, version 1): 0.0002-0.0005."""
    names = G.attribute_names(latents(G, range(2070000, 2070040)))
    seeds = [2070000 + i for i, n in enumerate(names) if n["hair_length"] == "short"][:2]
    ws0 = latents(G, seeds)
    cams = torch.cat([G.camera(-0.3, 0.1), G.camera(0.6, 0.0)]).repeat(len(seeds), 1)

    def grad_at(h0):
        h = torch.full((len(seeds),), h0, requires_grad=True)
        ws = G.with_hair_length(ws0, h).repeat_interleave(2, 0)
        img = G.render_field(G.field(ws), ws, cams, 32)["image"]
        return torch.autograd.grad(img.sum(), h)[0].abs()

    ratio = grad_at(0.0) / grad_at(0.1)
    assert (ratio > 0.25).all(), ratio


def test_hair_visibly_lengthens_from_short_in_every_view_and_ladders_hold_one_head(G):
    """Front, three-quarter and side views of short-haired heads: the hair covers more pixels at every step of
    h = 0, 0.02, 0.04, 0.1, 0.2, 0.3 (what the length-ranking term of MiniCLIP learns from; below h = 0.05, where
    the long-hair slab is gated off, only the hair line over the ears moves in the front view), and a length ladder
    is one head at growing lengths."""
    from lenerf.synthetic.data import make_length_ladder, render_batch
    names = G.attribute_names(latents(G, range(2070000, 2070040)))
    seeds = [2070000 + i for i, n in enumerate(names) if n["hair_length"] == "short"][:2]
    hs = torch.tensor([0.0, 0.02, 0.04, 0.1, 0.2, 0.3])
    cams = torch.cat([G.camera(0.0, 0.0), G.camera(0.3, 0.1), G.camera(-0.6, 0.0)])
    ws = latents(G, seeds).repeat_interleave(len(hs) * len(cams), 0)
    ws = G.with_hair_length(ws, hs.repeat_interleave(len(cams)).repeat(len(seeds)))
    _, labels = render_batch(G, ws, cams.repeat(len(seeds) * len(hs), 1), 64)
    hair = (labels == 1 + PARTS.index("hair")).sum((1, 2)).reshape(len(seeds), len(hs), len(cams))
    assert (hair.diff(dim=1) > 0).all(), hair

    lad = make_length_ladder(3, 50, rungs=4, resolution=16, progress=False, G=G)
    assert lad["images"].shape == (3, 4, 3, 16, 16) and lad["images"].dtype == torch.uint8
    h = lad["lengths"]
    assert (h[:, 0] == 0).all() and (h.diff(dim=1) > 0).all() and (h[:, 1] <= 0.15).all() and (h[:, 3] > 0.5).all()
    assert torch.equal(lad["hair"], G.attributes(latents(G, range(50, 53)))["hair"])
    assert (lad["images"][:, 0] != lad["images"][:, 3]).any((1, 2, 3)).all()


def test_length_rank_loss_rewards_the_order_of_lengths_of_one_head():
    from lenerf.synthetic.train_clip import _LENGTH_TEXTS, length_rank_loss
    k, rungs = len(_LENGTH_TEXTS) // 2, 3
    hair = torch.tensor([1, 4])

    def logits_for(d):  # d [2, rungs]: long - short for the plain pair and each head's own colour pair
        x = torch.zeros(2 * rungs, 2 * k)
        x[:, 0] = d.reshape(-1)
        x[torch.arange(2 * rungs), 1 + hair.repeat_interleave(rungs)] = d.reshape(-1)
        return x
    up = torch.tensor([[-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    flat = torch.zeros(2, rungs)
    assert torch.isclose(length_rank_loss(logits_for(flat), hair, rungs), torch.log(torch.tensor(2.0)))
    assert length_rank_loss(logits_for(up), hair, rungs) < 0.3 < 1.5 < length_rank_loss(logits_for(-up), hair, rungs)
    # only differences within a head count: an offset per head changes nothing
    assert torch.isclose(length_rank_loss(logits_for(up + torch.tensor([[5.0], [-3.0]])), hair, rungs),
                         length_rank_loss(logits_for(up), hair, rungs))
    other_colour = logits_for(up)
    other_colour[:, 1:1 + k - 1] = other_colour[:, 1:1 + k - 1].roll(1, 1)  # the slope on another colour's pair
    assert length_rank_loss(other_colour, hair, rungs) > length_rank_loss(logits_for(up), hair, rungs) + 0.05


def test_colour_ladders_drift_one_head_off_its_palette(G):
    """A colour ladder is one head from one camera, its rung 0 the head itself, later rungs with every colour part
    moved further along one direction (what the colour-ranking term of MiniCLIP learns from)."""
    from lenerf.cameras import sample_cameras
    from lenerf.synthetic.data import make_color_ladder, render_batch
    from lenerf.synthetic.world import COLOR_PARTS
    lad = make_color_ladder(3, 50, rungs=4, resolution=16, progress=False, G=G)
    assert lad["images"].shape == (3, 4, 3, 16, 16) and lad["images"].dtype == torch.uint8
    s = lad["shifts"]
    assert s.shape == (3, 4, len(COLOR_PARTS)) and (s[:, 0] == 0).all()
    assert (s.diff(dim=1) >= 0).all() and (s[:, 1] > 0).all() and (s[:, 3] > 0.1).all() and (s <= 0.35 + 1e-6).all()
    ws = latents(G, range(50, 53))
    at = G.attributes(ws)
    assert torch.equal(lad["classes"], torch.stack([at[p] for p in COLOR_PARTS], 1))
    cams = sample_cameras(3, generator=torch.Generator().manual_seed(2), radius=G.camera_radius,
                          lookat=G.camera_pivot)
    own, _ = render_batch(G, ws, cams, 16)
    own = ((own.clamp(-1, 1) + 1) * 127.5).round()
    # the same head and camera (ray jitter is drawn per batch, and a batch of ladders is 4x longer: the backdrop's
    # rim at the corners may differ)
    diff = (own - lad["images"][:, 0].float()).abs()
    assert diff.median() == 0 and diff.mean() < 1, diff.mean()
    assert ((lad["images"][:, 3].float() - lad["images"][:, 0].float()).abs().mean((1, 2, 3)) > 3).all()


def test_color_rank_loss_rewards_a_head_for_scoring_its_own_colour_highest_unmoved():
    from lenerf.synthetic.train_clip import _COLOR_OFFSETS, _COLOR_TEXTS, color_rank_loss
    rungs, parts = 3, len(_COLOR_OFFSETS) - 1
    classes = torch.tensor([[0, 1, 3, 2, 0], [2, 0, 0, 1, 1]])
    shifts = torch.tensor([0.0, 0.1, 0.3]).view(1, rungs, 1).expand(2, rungs, parts).clone()

    def logits_for(d):  # d [2, rungs]: the own colour text's logit, every other text at 0
        x = torch.zeros(2 * rungs, len(_COLOR_TEXTS))
        for k in range(parts):
            x[torch.arange(2 * rungs), _COLOR_OFFSETS[k] + classes[:, k].repeat_interleave(rungs)] = d.reshape(-1)
        return x
    down = torch.tensor([[4.0, 2.0, 0.0], [2.0, 1.0, 0.0]])
    flat = torch.zeros(2, rungs)
    assert torch.isclose(color_rank_loss(logits_for(flat), classes, shifts), torch.log(torch.tensor(2.0)))
    assert color_rank_loss(logits_for(down), classes, shifts) < 0.3 < 1.5 < color_rank_loss(logits_for(-down),
                                                                                            classes, shifts)
    # only differences within a head count: an offset per head changes nothing
    assert torch.isclose(color_rank_loss(logits_for(down + torch.tensor([[5.0], [-3.0]])), classes, shifts),
                         color_rank_loss(logits_for(down), classes, shifts))
    # rungs whose shifts tie (a colour clamped at the cube's edge) are no pair: ordering them costs nothing
    tied = shifts.clone()
    tied[:, 2] = 0.1
    assert color_rank_loss(logits_for(down), classes, tied) < color_rank_loss(logits_for(down), classes, shifts) + 1e-6
    assert torch.isclose(color_rank_loss(logits_for(-down), classes, torch.zeros(2, rungs, parts)), torch.tensor(0.0))


def test_eye_jitter_grows_the_eyes_and_captions_may_say_so(G):
    """Eye sizes no latent reaches: a dataset with eye_jitter renders some heads with bigger eyes (more eye pixels),
    records the scale, and their captions claim "big" or "small" consistently with it."""
    from lenerf.synthetic.data import BIG_EYES, MAX_EYE_SCALE
    from lenerf.synthetic.train_clip import EYE_KEYS, positives, sample_caption
    plain = make_dataset(6, 2, 50, resolution=32, progress=False, G=G)
    d = make_dataset(6, 2, 50, resolution=32, progress=False, G=G, eye_jitter=1.0)
    s = d["eye_scale"]
    assert "eye_scale" not in plain and ((s > 1) & (s < MAX_EYE_SCALE)).all() and torch.equal(s[0::2], s[1::2])
    eye = PARTS.index("eyes") + 1
    grown = (d["labels"] == eye).flatten(1).sum(1) > (plain["labels"] == eye).flatten(1).sum(1)
    assert grown.float().mean() > 0.8, grown  # (a view may hide the eyes)
    assert torch.equal(d["attrs"], plain["attrs"])  # no attribute of the latent changed
    attrs = torch.cat([d["attrs"], (s > BIG_EYES).long().unsqueeze(1)], 1)
    rng = np.random.RandomState(0)
    sizes = set()
    for _ in range(200):
        i = rng.randint(len(attrs))
        text, claims = sample_caption(attrs[i], rng)
        if "eye_size" in claims:
            sizes.add(claims["eye_size"])
            assert ("big" in text) == (claims["eye_size"] == 1) and ("small" in text) == (claims["eye_size"] == 0)
        assert positives(attrs[i:i + 1], [claims])[0, 0]
    assert sizes == {0, 1} and len(EYE_KEYS) == attrs.shape[1]
