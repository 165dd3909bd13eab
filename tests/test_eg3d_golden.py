"""EG3D re-implementation vs tensors produced by the official code (shared/golden/eg3d/tiny)."""
import json

import pytest
import torch

from lenerf.eg3d import EG3D, TriPlaneField
from lenerf.rendering import render, sample_rays

from .conftest import golden_dir


def err(a, b):
    return (a.float() - b.float()).abs().max().item()


def rays(c, res):
    return sample_rays(c[:, :16].reshape(-1, 4, 4), c[:, 16:].reshape(-1, 3, 3), res)


def test_state_dict_keys_in_official_order(tiny_golden, tiny_G):
    cfg, sd, _ = tiny_golden
    assert list(tiny_G.state_dict()) == cfg["state_dict_keys_in_official_order"]
    assert tiny_G.parameter_count() == cfg["total_parameters"]


def test_mapping(tiny_G, tiny_golden):
    cs = tiny_golden[2]
    z, cf, cy = cs["z"], cs["c_frontal"], cs["c_yaw0.4"]
    assert err(tiny_G.mapping(z, cf), cs["ws_case0"]) <= 1e-5
    assert err(tiny_G.mapping(z, cy), cs["ws_case1"]) <= 1e-5
    assert err(tiny_G.mapping(z, cf, 0.7, 14), cs["ws_case2"]) <= 1e-5
    assert err(tiny_G.mapping(z, cf, 0.7, None), cs["ws_frontal_psi0.7_cutoffNone"]) <= 1e-5
    assert err(tiny_G.mapping(z, cf, 0.7, 8), cs["ws_frontal_psi0.7_cutoff8"]) <= 1e-5
    assert err(tiny_G.mapping(z, torch.zeros_like(cf), 0.5, 8), cs["ws_frontal_psi0.5_cutoff8_c_zero"]) <= 1e-5


@pytest.mark.parametrize("name", ["frontal", "yaw0.4"])
def test_rays(tiny_golden, name):
    cs = tiny_golden[2]
    o, d = rays(cs[f"c_{name}"], 64)
    assert err(o, cs[f"rays_{name}_origins"]) <= 1e-5
    assert err(d, cs[f"rays_{name}_directions"]) <= 1e-5


@pytest.fixture(scope="module")
def ws3(tiny_golden):
    cs = tiny_golden[2]
    return torch.cat([cs["ws_case0"], cs["ws_case1"], cs["ws_case2"]])


def test_planes_and_sample_mixed(tiny_G, tiny_golden, ws3):
    cs = tiny_golden[2]
    with torch.no_grad():
        planes = tiny_G.planes(ws3)
        out = tiny_G.sample_mixed(cs["xyz"].repeat(3, 1, 1), None, ws3)
    assert planes.shape == (3, 96, 256, 256)
    assert err(planes[:, :, ::8, ::8], cs["planes_sub8"]) <= 1e-4
    assert err(planes[:, :, 120:136, 120:136], cs["planes_crop_r120_c120_16"]) <= 1e-4
    assert err(planes.double().mean((2, 3)), cs["planes_channel_mean"]) <= 1e-5
    assert err(planes.double().std((2, 3)), cs["planes_channel_std"]) <= 1e-5
    assert err(out["sigma"], cs["sample_mixed_sigma"]) <= 1e-5
    assert err(out["rgb"], cs["sample_mixed_rgb"]) <= 1e-5


def test_synthesis_batch3(tiny_G, tiny_golden, ws3):
    """Cases 0-2 with the official RNG protocol (seed 100): image_raw, image_depth and the 512^2 SR image."""
    cs = tiny_golden[2]
    c = torch.cat([cs["c_frontal"], cs["c_yaw0.4"], cs["c_yaw0.4"]])
    torch.manual_seed(100)
    with torch.no_grad():
        out = tiny_G.synthesis(ws3, c, neural_rendering_resolution=64)
    assert err(out["image_raw"], cs["image_raw"]) <= 1e-5
    assert err(out["image_depth"], cs["image_depth"]) <= 1e-5
    assert err(out["image"][:1], cs["image_case0"]) <= 1e-4
    assert err(out["image"][:, :, ::4, ::4], cs["image_sub4"]) <= 1e-4
    assert err(out["image"][:, :, 192:320, 192:320], cs["image_crop_r192_c192_128"]) <= 1e-4
    assert err(out["image"].double().mean((2, 3)), cs["image_channel_mean"]) <= 1e-5
    assert err(out["image_features"][:1], cs["sr_in_features_case0"]) <= 1e-5
    # the render resolution passed to a call does not stick (no hidden state)
    assert tiny_G.neural_rendering_resolution == 64


def test_synthesis_case3_no_resize(tiny_G, tiny_golden):
    cs = tiny_golden[2]
    torch.manual_seed(101)
    with torch.no_grad():
        out = tiny_G.synthesis(cs["ws_case2"], cs["c_yaw0.4"], neural_rendering_resolution=128)
    assert err(out["image_raw"], cs["case3_image_raw"]) <= 1e-5
    assert err(out["image_depth"], cs["case3_image_depth"]) <= 1e-5
    assert err(out["image"][:, :, ::4, ::4], cs["case3_image_sub4"]) <= 1e-4
    assert err(out["image"][:, :, 192:320, 192:320], cs["case3_image_crop_r192_c192_128"]) <= 1e-4
    assert tiny_G.neural_rendering_resolution == 64


def test_forward_matches_mapping_then_synthesis(tiny_G, tiny_golden):
    cs = tiny_golden[2]
    torch.manual_seed(101)
    with torch.no_grad():
        out = tiny_G(cs["z"], cs["c_frontal"], truncation_psi=0.7, truncation_cutoff=14, neural_rendering_resolution=32)
        assert out["image_raw"].shape == (1, 3, 32, 32) and out["image"].shape == (1, 3, 512, 512)
        torch.manual_seed(101)
        ref = tiny_G.synthesis(cs["ws_case2"], cs["c_frontal"], neural_rendering_resolution=32)
    assert err(out["image"], ref["image"]) <= 1e-4


def test_renderer_variant_auto_limits_white_back(tiny_G, tiny_golden):
    """Shapenet-style options: ray limits from the box (side 1.6), white background."""
    cs = tiny_golden[2]
    o, d = rays(cs["c_frontal"], 32)
    with torch.no_grad():
        field = TriPlaneField(tiny_G.planes(cs["ws_case0"]), tiny_G.decoder, box_warp=1.6)
        settings = tiny_G.render_settings.replace(ray_start="auto", ray_end="auto", white_back=True, box_warp=1.6)
        torch.manual_seed(102)
        out = render(field, o, d, settings)
    assert err(out.colors, cs["variant_feature_samples"]) <= 1e-5
    assert err(out.depth, cs["variant_depth_samples"]) <= 1e-5
    assert err(out.weights_sum, cs["variant_weights_sum"]) <= 1e-5


def test_chunked_rendering_is_identical(tiny_G, tiny_golden):
    cs = tiny_golden[2]
    o, d = rays(cs["c_yaw0.4"], 32)
    with torch.no_grad():
        field = tiny_G.field(cs["ws_case0"])
        torch.manual_seed(5)
        a = render(field, o, d, tiny_G.render_settings)
        torch.manual_seed(5)
        b = render(field, o, d, tiny_G.render_settings, chunk_points=1000)
    assert err(a.colors, b.colors) <= 1e-6 and err(a.depth, b.depth) <= 1e-6


@pytest.mark.parametrize("config", ["ffhq512-128", "afhqcats512-128", "shapenetcars128-64"])
def test_full_configs_match_official_param_shapes(config):
    ref = json.loads((golden_dir("eg3d", config) / "param_shapes.json").read_text())
    torch.manual_seed(0)
    G = EG3D.from_init_kwargs({**ref["init_kwargs"],
                               "neural_rendering_resolution": ref["neural_rendering_resolution_attribute"]})
    sd = G.state_dict()
    assert list(sd) == list(ref["state_dict"])  # names and official order
    for k, meta in ref["state_dict"].items():
        assert list(sd[k].shape) == meta["shape"], k
        assert str(sd[k].dtype).replace("torch.", "") == meta["dtype"], k
    params = {n for n, _ in G.named_parameters()}
    assert params == {k for k, m in ref["state_dict"].items() if m["kind"] == "parameter"}
    assert G.parameter_count() == ref["total_parameters"]
    assert sum(b.numel() for b in G.buffers()) == ref["total_buffer_elements"]
    assert len(sd) == ref["num_state_dict_keys"]
    assert G.num_ws == ref["num_ws"]
