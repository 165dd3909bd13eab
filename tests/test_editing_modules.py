"""Editing modules: official parametrisation (sizes, init) and the editor's composition on any generator."""
import pytest
import torch

from lenerf.editing import AttentionField, DeformationField, Edit, EditModules, LatentResidualMapper, LocalEditor


def count(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_the_official_modules():
    assert count(LatentResidualMapper(14, 512, ("fine",))) == 1_050_624
    assert count(LatentResidualMapper(14, 512)) == 3_151_872
    assert count(AttentionField(65, 512, "mlp", 256)) == 149_505
    assert count(AttentionField(65, 512, "ws_condition", 256)) == 379_265
    assert count(AttentionField(65, 512, "attention", 128)) == 173_697
    assert count(AttentionField(65, 512, "attention", 64)) == 62_273
    assert count(DeformationField(512, 128)) == 124_227


def test_mapper_starts_near_zero_and_respects_groups():
    torch.manual_seed(0)
    lrm = LatentResidualMapper(14, 512, ("fine",))
    ws = torch.randn(3, 14, 512)
    d = lrm(ws)
    assert d[:, :8].abs().max() == 0  # coarse/medium groups disabled
    assert 0 < d[:, 8:].abs().mean() < 0.05 * ws.abs().mean()
    # weights are shared inside a group: the same w in two rows gives the same residual
    ws[:, 9] = ws[:, 12]
    d = lrm(ws)
    assert torch.allclose(d[:, 9], d[:, 12])


@pytest.mark.parametrize("kind", ["mlp", "ws_condition", "attention"])
def test_attention_field_outputs_a_mask(kind):
    afn = AttentionField(10, 32, kind, 32)
    desc, xyz = torch.randn(2, 50, 10), torch.rand(2, 50, 3) - 0.5
    ws = torch.randn(2, 14, 32)
    m = afn(desc, xyz, ws, ws, desc if kind == "attention" else None)
    assert m.shape == (2, 50, 1) and (m > 0).all() and (m < 1).all()
    m.mean().backward()
    assert all(p.grad is not None for p in afn.parameters())


def test_deformation_starts_near_identity():
    torch.manual_seed(0)
    dn = DeformationField(32, 64)
    x = torch.rand(2, 100, 3) - 0.5
    ws = torch.randn(2, 14, 32)
    assert 0 < (dn(x, ws, ws) - x).abs().max() < 0.05  # official: last layer x0.01
    assert torch.equal(DeformationField(32, 64, 4)(x, ws, ws), x)  # with a positional encoding: exactly


def test_positional_encoding_lets_the_deformation_learn_a_local_change():
    """Growing the synthetic eyes (radius x1.4, which no latent can do) by moving where the source is read: fit in
    3D on points around both eyes and elsewhere. With sin/cos features of x the deformation learns it; from raw x
    (the official input) it learns a blurred version in the same steps."""
    import dataclasses

    from lenerf.synthetic.data import latents
    from lenerf.synthetic.world import PARTS, SyntheticHeadField, SyntheticHeads
    synth = SyntheticHeads()
    ws = latents(synth, [11])
    src = synth.field(ws)
    big = SyntheticHeadField(dataclasses.replace(synth.params(ws), eye_scale=torch.full((1,), 1.4)))
    g = torch.Generator().manual_seed(0)
    eye = torch.tensor([0.075 + synth.params(ws).eye_dx.item(), 0.035, 0.188])
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    near = torch.cat([c + (torch.rand(3000, 3, generator=g) * 2 - 1) * 0.07 for c in (eye, eye * mirror)])
    far = (torch.rand(3000, 3, generator=g) * 2 - 1) * 0.3
    far = far[((far - eye).norm(dim=-1) > 0.12) & ((far - eye * mirror).norm(dim=-1) > 0.12)]
    x, n, e = torch.cat([near, far]).unsqueeze(0), near.shape[0], 4 + PARTS.index("eyes")
    with torch.no_grad():
        want = big.features(x)[0, :, e] > 0.5
    iou = lambda a, b: ((a & b).sum() / (a | b).sum()).item()  # noqa: E731
    before = iou(src.features(x)[0, :n, e].detach() > 0.5, want[:n])
    assert before < 0.6  # the big eyes differ from the source's
    result = {}
    for k in (0, 6):
        torch.manual_seed(0)
        dn = DeformationField(32, 64, k)
        opt = torch.optim.Adam(dn.parameters(), lr=1e-2)
        for _ in range(200):
            loss = (src.features(dn(x, ws, ws))[..., e] - want.float()).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            got = src.features(dn(x, ws, ws))[0, :, e] > 0.5
        result[k] = (iou(got[:n], want[:n]), (got[n:] != want[n:]).float().mean().item())
    assert result[6][0] > 0.95 and result[6][1] < 0.005, result  # the eyes grew, nothing else moved
    assert result[0][0] < result[6][0] - 0.1, result
    with pytest.raises(ValueError, match="xyz_frequencies"):
        DeformationField(32, 64, -1)


def test_symmetric_deformation_mirrors_about_the_plane_x_0():
    """dn_symmetric: the offset at the mirror image of a point is the mirrored offset (both eyes move alike)."""
    torch.manual_seed(0)
    dn = DeformationField(32, 64, 4, symmetric=True)
    with torch.no_grad():
        dn.net[-1].weight.normal_()  # non-zero offsets (an encoded network starts at zero)
    x, ws, flip = torch.rand(2, 100, 3) - 0.5, torch.randn(2, 14, 32), torch.tensor([-1.0, 1.0, 1.0])
    off = dn.offsets(x, ws, ws)
    assert off.abs().mean() > 1e-3
    assert torch.allclose(dn.offsets(x * flip, ws, ws), off * flip, atol=1e-6)


def test_bounded_deformation_reads_the_source_at_most_max_offset_away():
    """dn_max_offset r: every offset component is r tanh(T / r) - within r however large T grows, unchanged where
    T is small (a part grows by at most ~r on every side); symmetry is kept; the bound travels in the package."""
    torch.manual_seed(0)
    free, bounded = DeformationField(32, 64, 4, symmetric=True), DeformationField(32, 64, 4, True, max_offset=0.02)
    bounded.load_state_dict(free.state_dict())
    x, ws, flip = torch.rand(2, 100, 3) - 0.5, torch.randn(2, 14, 32), torch.tensor([-1.0, 1.0, 1.0])
    for std, small in ((1e-3, True), (10.0, False)):
        with torch.no_grad():
            for d in (free, bounded):
                torch.manual_seed(1)
                d.net[-1].weight.normal_(std=std)
        t, b = free.offsets(x, ws, ws), bounded.offsets(x, ws, ws)
        assert b.abs().max() <= 0.02 and torch.allclose(bounded.offsets(x * flip, ws, ws), b * flip, atol=1e-6)
        if small:
            assert t.abs().max() < 0.004 and torch.allclose(b, t, rtol=0.02, atol=1e-7)
        else:
            assert t.abs().max() > 0.5 and b.abs().max() > 0.019
    with pytest.raises(ValueError, match="max_offset"):
        DeformationField(32, 64, 4, max_offset=-1.0)
    mods = EditModules(14, 32, 10, (), deformation=True, dn_max_offset=0.02)
    assert mods.deformation.max_offset == 0.02 and not mods.deformation.bound_length


def test_length_bounded_deformation_keeps_the_offset_direction_within_a_ball():
    """dn_bound_length: the offset is r tanh(|T| / r) T / |T| - its length within r (a ball, not the box of the
    per-component bound, whose corners reach r sqrt 3), its direction T's, unchanged where T is small; symmetric."""
    torch.manual_seed(0)
    free = DeformationField(32, 64, 4, symmetric=True)
    ball = DeformationField(32, 64, 4, True, max_offset=0.02, bound_length=True)
    box = DeformationField(32, 64, 4, True, max_offset=0.02)
    ball.load_state_dict(free.state_dict()), box.load_state_dict(free.state_dict())
    x, ws, flip = torch.rand(2, 100, 3) - 0.5, torch.randn(2, 14, 32), torch.tensor([-1.0, 1.0, 1.0])
    for std, small in ((1e-3, True), (10.0, False)):
        with torch.no_grad():
            for d in (free, ball, box):
                torch.manual_seed(1)
                d.net[-1].weight.normal_(std=std)
        t, b = free.offsets(x, ws, ws), ball.offsets(x, ws, ws)
        assert b.norm(dim=-1).max() <= 0.02 + 1e-7
        assert torch.allclose(ball.offsets(x * flip, ws, ws), b * flip, atol=1e-6)
        cos = torch.nn.functional.cosine_similarity(b, t, dim=-1)
        assert cos.min() > 0.9999
        if small:
            assert torch.allclose(b, t, rtol=0.02, atol=1e-7)
        else:  # saturated: the ball's offsets are ~r long, the box's corners longer
            assert b.norm(dim=-1).min() > 0.019 and box.offsets(x, ws, ws).norm(dim=-1).max() > 0.03
    with pytest.raises(ValueError, match="set max_offset"):
        DeformationField(32, 64, 4, bound_length=True)
    mods = EditModules(14, 32, 10, (), deformation=True, dn_max_offset=0.02, dn_bound_length=True)
    assert mods.deformation.bound_length


def test_deformation_mlp_equals_its_layers_in_turn():
    """The deformation's MLP skips the [P, hidden] copy of the latent and folds the gains (a fused evaluation); the
    values and gradients are those of its layers called in turn on the concatenated input."""
    for k, sym in ((0, False), (4, True)):
        torch.manual_seed(0)
        dn = DeformationField(32, 64, k, sym)
        with torch.no_grad():
            dn.net[-1].weight.normal_()
        x, ws = torch.rand(2, 300, 3) - 0.5, torch.randn(2, 14, 32)
        lat = torch.cat([dn.latent(ws), dn.latent(ws.flip(0))], -1)
        ang = (x.unsqueeze(-1) * dn.freqs).flatten(-2)
        enc = [x] + ([torch.sin(ang), torch.cos(ang)] if k else [])
        want = dn.net(torch.cat(enc + [lat.unsqueeze(1).expand(-1, 300, -1)], -1))
        grads_want = torch.autograd.grad(want.pow(2).sum(), list(dn.net.parameters()))
        got = dn._offsets(x, lat)
        grads_got = torch.autograd.grad(got.pow(2).sum(), list(dn.net.parameters()))
        assert want.abs().mean() > 0.1 and torch.allclose(got, want, atol=1e-5, rtol=1e-5)
        for a, b in zip(grads_got, grads_want):
            assert torch.allclose(a, b, atol=1e-4 * b.abs().max().item(), rtol=1e-4)


def test_editor_zero_and_full_masks_on_eg3d(tiny_G, tiny_golden):
    """Mask 0 reproduces the source render exactly, with or without the edited field's own importance pass; mask 1
    (texture and geometry) gives the target render at the source's samples (the importance pass's effect is measured
    on the synthetic world's grown hair, test_editing_train)."""
    ws = tiny_golden[2]["ws_case0"]
    c = tiny_golden[2]["c_frontal"]
    mods = EditModules(14, 512, 65, ("fine",), "mlp", 32)
    with torch.no_grad():
        for p in mods.mapper.parameters():
            p.mul_(1000)  # a visible residual
        last = mods.attention.net[-1]
        for value, expect in ((50.0, "source"), (-50.0, "target")):  # m = sigmoid(-logit)
            last.weight.zero_()
            last.bias.fill_(value / last.bias_gain)  # logit -> m = sigmoid(-logit)
            edit = Edit(mods, strength=1.0, texture_only=False)
            # at the source's samples alone (with the edited field's own importance pass too: the source case)
            res = LocalEditor(tiny_G, [edit]).render(ws, c, preset="preview", edited_importance=0,
                                                     generator=torch.Generator().manual_seed(1))
            if expect == "source":
                own = LocalEditor(tiny_G, [edit]).render(ws, c, preset="preview",
                                                         generator=torch.Generator().manual_seed(1))
                # no mask on: no depth added. Not bitwise: the two paths evaluate the field in batches of other
                # shapes, and with 2 threads a reduction splits differently (6e-8 on a 2-core AMD EPYC, session 41;
                # equal with 1 thread); a kept depth would move colours by orders of magnitude more
                assert torch.allclose(own.edited_raw, res.edited_raw, rtol=0, atol=1e-6)
                assert torch.allclose(res.edited_raw, res.source_raw, atol=1e-5)
                assert res.mask.max() < 1e-6
            else:
                wt = edit.target_latent(ws)
                f = tiny_G.field(wt)
                from lenerf.rendering import render, sample_rays
                o, d = sample_rays(c[:, :16].reshape(-1, 4, 4), c[:, 16:].reshape(-1, 3, 3), 64)
                settings = tiny_G.render_settings.replace(depth_resolution=24, depth_resolution_importance=24)
                src = render(tiny_G.field(ws), o, d, settings,
                             generator=torch.Generator().manual_seed(1), return_samples=True)
                tgt = render(f, o, d, tiny_G.render_settings, depths=src.sample_depths)
                assert torch.allclose(res.edited_raw.flatten(2), tgt.colors[..., :3].permute(0, 2, 1), atol=1e-5)
                assert not torch.allclose(res.edited_raw, res.source_raw, atol=1e-3)


def test_attention_field_positional_encoding():
    """xyz_frequencies K appends sin/cos(2^k pi xyz): 6K more inputs, no stored buffers (packages stay loadable),
    and the field can tell apart points that only differ at a fine scale."""
    torch.manual_seed(0)
    plain, enc = AttentionField(4, 32, "mlp", 16), AttentionField(4, 32, "mlp", 16, xyz_frequencies=5)
    assert enc.net[0].weight.shape[1] == plain.net[0].weight.shape[1] + 30
    assert set(enc.state_dict()) == set(plain.state_dict())
    desc, ws = torch.zeros(1, 2, 4), torch.zeros(1, 14, 32)
    xyz = torch.tensor([[[0.1, 0.0, 0.0], [0.1 + 1 / 16, 0.0, 0.0]]])
    feats = enc._inp(desc, xyz)
    assert feats.shape == (1, 2, 7 + 30)
    # the highest frequency (16 pi) turns a 1/16 offset into half a period: its sine flips sign
    hi = feats[..., 7 + 4::5]  # sin of the k=4 band for x, y, z
    assert torch.allclose(hi[0, 0, 0], -hi[0, 1, 0], atol=1e-5)
    m = enc(desc, xyz, ws, ws)
    assert m.shape == (1, 2, 1) and ((m > 0) & (m < 1)).all()


def test_balanced_mask_loss_caps_the_positive_weight():
    """The balanced mask MSE weighs a positive pixel as N-/N+ negatives (the two classes' means averaged); with
    pos_weight_max at most that many (1: the plain MSE)."""
    from lenerf.clip.losses import mask_losses
    from lenerf.editing.trainer import EditConfig
    from lenerf.errors import InputError
    g = torch.Generator().manual_seed(0)
    m2d = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
    target = torch.full((2, 1, 8, 8), -1.0)
    target[:, :, 2:4, 2:4] = 1.0  # 8 positives, 120 negatives: N-/N+ = 15
    se, pos = (m2d - target).pow(2), target > 0

    def mse(**kw):
        return mask_losses(m2d, target, 80, 100, torch.Generator().manual_seed(1), balanced=True, **kw)["mask"].item()
    assert mse() == pytest.approx(0.5 * (se[pos].mean() + se[~pos].mean()).item(), rel=1e-6)
    assert mse(pos_weight_max=100.0) == pytest.approx(mse(), rel=1e-6)  # no cap below N-/N+
    assert mse(pos_weight_max=1.0) == pytest.approx(se.mean().item(), rel=1e-6)
    assert mse(pos_weight_max=4.0) == pytest.approx(((4 * se[pos].sum() + se[~pos].sum()) / (4 * 8 + 120)).item(),
                                                    rel=1e-6)
    for bad in ({"mask_pos_weight_max": 4.0}, {"mask_pos_weight_max": 0.5, "balanced_mask_loss": True}):
        with pytest.raises(InputError, match="mask_pos_weight_max"):
            EditConfig("eyes", "blue eyes", **bad).validate()
