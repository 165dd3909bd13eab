"""Cameras vs the official convention, presets, bad inputs, and the render CLI end to end."""
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from lenerf import cameras
from lenerf.errors import InputError
from lenerf.fields import BlendedField
from lenerf.media import over_background, to_uint8
from lenerf.pipeline import latent_from_seed, render_turntable, render_view

ROOT = Path(__file__).resolve().parents[1]


def test_cameras_match_official_labels(tiny_golden):
    cs = tiny_golden[2]
    assert torch.allclose(cameras.camera(0.0, 0.0), cs["c_frontal"], atol=1e-6)
    assert torch.allclose(cameras.camera(0.4, 0.0), cs["c_yaw0.4"], atol=1e-6)
    assert cameras.fov_to_intrinsics(18.837)[0, 0].item() == pytest.approx(4.263391, abs=1e-6)
    # positive yaw moves the camera to +x, positive pitch raises it (y is down in OpenCV, up in world)
    c = cameras.camera(0.4, 0.2)
    assert c[0, 3] > 0 and c[0, 7] > 0
    pos = cameras.camera(0.4, 0.0)[0].reshape(-1)[[3, 7, 11]]
    assert torch.allclose(pos, torch.tensor([1.0514, 0.0, 2.4869]), atol=1e-3)


def test_turntable_path_and_random_cameras():
    tt = cameras.turntable(8)
    assert tt.shape == (8, 25)
    assert torch.allclose(tt[0], cameras.camera(0.0, 0.05 - 0.25)[0], atol=1e-6)
    g = torch.Generator().manual_seed(0)
    rc = cameras.sample_cameras(100, generator=g)
    assert rc.shape == (100, 25) and torch.isfinite(rc).all()
    with pytest.raises(ValueError):
        cameras.turntable(0)


def test_bad_inputs_raise_clear_errors(tiny_G, tiny_golden):
    cs = tiny_golden[2]
    with pytest.raises(InputError, match=r"shape \[N, 25\]"):
        tiny_G(cs["z"], torch.zeros(1, 16))
    with pytest.raises(InputError, match=r"z must have shape \[N, 64\]"):
        tiny_G.mapping(torch.zeros(1, 512), cs["c_frontal"])
    with pytest.raises(InputError, match="ws must have shape"):
        tiny_G.synthesis(torch.zeros(1, 3, 512), cs["c_frontal"])
    with pytest.raises(InputError, match="unknown preset"):
        tiny_G.synthesis(cs["ws_case0"], cs["c_frontal"], preset="ultra")
    with pytest.raises(InputError, match="NaN"):
        tiny_G.synthesis(cs["ws_case0"], torch.full((1, 25), float("nan")))
    with pytest.raises(InputError, match="seed"):
        latent_from_seed(tiny_G, -1)


def test_preview_preset_is_cheaper_and_close_to_full_raw(tiny_G, tiny_golden):
    ws = tiny_golden[2]["ws_case0"]
    v = render_view(tiny_G, ws, 0.2, 0.0, preset="preview")
    assert v.image.shape == (256, 256, 3) and v.image.dtype == np.uint8
    assert v.raw["image_raw"].shape == (1, 3, 64, 64)
    full_raw = render_view(tiny_G, ws, 0.2, 0.0, preset="full").raw["image_raw"]
    # same scene, fewer samples: the raw renders agree closely
    assert (v.raw["image_raw"] - full_raw).abs().mean() < 0.02
    # EG3D shows empty rays black, as the official renders: its people-facing image is the render itself
    assert tiny_G.display_background is None
    assert np.array_equal(v.image, to_uint8(v.raw["image"]))


def test_over_background_composites_by_opacity_and_commutes_with_resizing():
    g = torch.Generator().manual_seed(0)
    c01, op = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    image = 2 * op * c01 - 1  # a render in [-1, 1]: colour carried by the ray weights, -1 (black) where they are 0
    colour = (0.2, 0.5, 0.9)
    bg = torch.tensor(colour).reshape(1, 3, 1, 1)
    assert torch.allclose(over_background(image, op, colour), 2 * (op * c01 + (1 - op) * bg) - 1, atol=1e-6)
    assert over_background(image, op, None) is image
    # filling the raw render then resizing == resizing then filling with the opacity resized
    up = lambda t: torch.nn.functional.interpolate(t, size=(40, 40), mode="bilinear", align_corners=False)  # noqa
    assert torch.allclose(up(over_background(image, op, colour)), over_background(up(image), op, colour), atol=1e-5)


def test_blended_field_endpoints(tiny_G, tiny_golden):
    cs = tiny_golden[2]
    with torch.no_grad():
        fs, ft = tiny_G.field(cs["ws_case0"]), tiny_G.field(cs["ws_case1"])
        pts = cs["xyz"]
        for m, ref in ((0.0, fs), (1.0, ft)):
            blend = BlendedField(fs, ft, lambda p, a, b: torch.full_like(a[..., :1], m))
            assert torch.allclose(blend(pts)[0], ref(pts)[0], atol=1e-6)
        tex = BlendedField(fs, ft, lambda p, a, b: torch.ones_like(a[..., :1]), texture_only=True)
        assert torch.allclose(tex(pts)[1], fs(pts)[1]) and torch.allclose(tex(pts)[0], ft(pts)[0], atol=1e-6)


def test_turntable_progress(tiny_G, tiny_golden):
    seen = []
    views = render_turntable(tiny_G, tiny_golden[2]["ws_case0"], 3, progress=lambda k, n: seen.append((k, n)))
    assert len(views) == 3 and seen == [(1, 3), (2, 3), (3, 3)]
    assert not np.array_equal(views[0].image, views[1].image)


def test_render_cli_end_to_end(tiny_G, tmp_path):
    ckpt = tmp_path / "tiny"
    tiny_G.save_pretrained(ckpt)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "lenerf", "--threads", "2", "render", "--generator", str(ckpt),
                        "--seed", "3", "--out", str(out), "--turntable", "--frames", "4", "--save-frames"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (out / "seed0003.png").is_file() and (out / "seed0003_depth.png").is_file()
    assert len(list((out / "seed0003_frames").glob("*.png"))) == 4
    video = out / "seed0003_turntable.mp4"
    assert video.is_file()
    reader = imageio.get_reader(video, format="FFMPEG")
    frames = [reader.get_data(i) for i in range(reader.count_frames())]
    assert len(frames) == 4 and frames[0].shape[0] == 256
    assert "turntable seed 3" in r.stderr  # progress bar
