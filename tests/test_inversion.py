"""Real-image inversion: robust photo loading, face alignment, the optimisation, packages and the CLI."""
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lenerf.errors import InputError
from lenerf.generator import Preset
from lenerf.inversion import (Inversion, InversionConfig, align_face, image_to_tensor, invert, load_perceptual,
                              load_photo, psnr)
from lenerf.inversion.invert import _render

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.png"
FAST = Preset("test", neural_rendering_resolution=32, depth_resolution=12, depth_resolution_importance=12,
              superresolution=False, output_resolution=64)


def _png(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_bad_files_give_clear_messages(tmp_path):
    with pytest.raises(InputError, match="not an image"):
        load_photo(b"hello, this is text")
    data = _png(Image.new("RGB", (200, 200), (10, 200, 30)), "JPEG")
    with pytest.raises(InputError, match="damaged or truncated"):
        load_photo(data[: len(data) // 2])
    with pytest.raises(InputError, match="no such file"):
        load_photo(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match="too small"):
        load_photo(_png(Image.new("RGB", (40, 300))))


def test_odd_modes_are_converted():
    frames = [Image.new("RGB", (100, 100), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    p = load_photo(buf.getvalue())
    assert p.image.mode == "RGB" and any("first frame" in n for n in p.notes)
    assert p.image.getpixel((5, 5))[0] > 200  # the first (red) frame
    sixteen = Image.fromarray((np.linspace(0, 65535, 128 * 128).reshape(128, 128)).astype(np.uint16))
    p = load_photo(_png(sixteen))
    assert p.image.mode == "RGB" and any("16-bit" in n for n in p.notes)
    assert np.asarray(p.image).max() >= 250
    p = load_photo(_png(Image.new("CMYK", (100, 100), (0, 255, 255, 0)), "JPEG"))
    assert p.image.mode == "RGB" and any("CMYK" in n for n in p.notes)
    p = load_photo(_png(Image.new("L", (100, 100), 128)))
    assert p.image.mode == "RGB" and any("grayscale" in n for n in p.notes)
    p = load_photo(_png(Image.new("RGBA", (100, 100), (0, 0, 0, 0))))
    assert p.image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_and_huge_images():
    img = Image.new("RGB", (300, 200), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    p = load_photo(_png(img, "JPEG", exif=exif))
    assert p.image.size == (200, 300) and any("EXIF" in n for n in p.notes)
    p = load_photo(_png(Image.new("RGB", (4100, 3000))), max_side=2048)
    assert max(p.image.size) == 2048 and any("downscaled" in n for n in p.notes)


def test_decompression_bomb_is_refused(monkeypatch):
    import lenerf.inversion.images as images
    monkeypatch.setattr(images, "MAX_PIXELS", 10_000)
    with pytest.raises(InputError, match="too large"):
        load_photo(_png(Image.new("RGB", (300, 300))))
    Image.MAX_IMAGE_PIXELS = images.MAX_PIXELS = 100_000_000


def test_face_alignment_on_the_astronaut():
    pytest.importorskip("cv2")
    photo = load_photo(ASTRONAUT).image
    face = align_face(photo)
    assert face.image.size == (512, 512) and face.eyes is not None and not face.notes
    x, y, w, h = face.box
    assert 150 < x + w / 2 < 260 and 80 < y + h / 2 < 170  # the astronaut's face
    # the crop is centred between the eyes and the mouth, level eyes
    assert abs(face.eyes[0, 1] - face.eyes[1, 1]) < 10
    # several faces: the largest one is used, and the user is told
    two = Image.new("RGB", (1024, 512), (128, 128, 128))
    two.paste(photo, (0, 0))
    two.paste(photo.resize((256, 256)), (700, 100))
    f2 = align_face(two)
    assert f2.box[2] >= face.box[2] * 0.8 and any("largest" in n for n in f2.notes)


def test_no_face_and_small_faces():
    pytest.importorskip("cv2")
    with pytest.raises(InputError, match="no face found"):
        align_face(Image.new("RGB", (400, 400), (90, 120, 200)))
    with pytest.raises(InputError, match="too small"):  # the astronaut's face at about 38 pixels
        align_face(load_photo(ASTRONAUT).image.resize((200, 200)))
    # a close-up without detection: centre crop
    f = align_face(Image.new("RGB", (300, 200)), crop="center", size=64)
    assert f.image.size == (64, 64) and "centred" in f.notes[0]


@pytest.fixture(scope="module")
def miniclip_perceptual():
    return load_perceptual("miniclip")


def test_synthetic_inversion_improves_and_round_trips(tmp_path, miniclip_perceptual):
    from lenerf.synthetic import SyntheticHeads
    G = SyntheticHeads()
    z = torch.from_numpy(np.random.RandomState(123).randn(1, G.z_dim)).float()
    ws = G.mapping(z, G.camera(0.0, 0.0))
    target = _render(G, ws, torch.tensor(0.2), torch.tensor(0.05), FAST, 64)
    cfg = InversionConfig(steps=40, preset=FAST)
    start = _render(G, G.mapping(torch.zeros(1, G.z_dim), G.camera(0, 0)), torch.tensor(0.0), torch.tensor(0.0),
                    FAST, 64)
    inv = invert(G, target, cfg, perceptual=miniclip_perceptual, progress=False)
    assert inv.meta["psnr_input_view"] > psnr(start, target) + 3
    assert inv.ws.shape == (1, G.num_ws, G.w_dim) and inv.meta["perceptual"].startswith("clip-image-features")
    inv.save(tmp_path / "inv")
    back = Inversion.load(tmp_path / "inv")
    assert torch.equal(back.ws, inv.ws) and back.yaw == inv.yaw and back.pti_delta is None
    # cancel and time budget stop early; PTI is refused for a generator without weights
    stopped = invert(G, target, cfg, perceptual=miniclip_perceptual, progress=False, should_stop=lambda: True)
    assert stopped.meta["steps_run"] == 1 and stopped.meta["stop"] == "cancelled"
    with pytest.raises(InputError, match="no weights"):
        invert(G, target, InversionConfig(steps=2, pti_steps=2, preset=FAST), perceptual=miniclip_perceptual,
               progress=False)
    with pytest.raises(InputError, match="square"):
        invert(G, torch.zeros(1, 3, 64, 32), cfg, perceptual=miniclip_perceptual, progress=False)


def test_eg3d_tiny_recovers_its_own_image_and_pti_delta(tiny_G, miniclip_perceptual, tmp_path):
    G = tiny_G.eval()
    z = torch.from_numpy(np.random.RandomState(7).randn(1, G.z_dim)).float()
    with torch.no_grad():
        ws = G.mapping(z, G.camera(0.0, 0.0), truncation_psi=0.7)
        target = _render(G, ws, torch.tensor(0.0), torch.tensor(0.0), FAST, 64)
    cfg = InversionConfig(steps=150, preset=FAST, optimize_camera=False, lambda_perceptual=0.0, pti_steps=5)
    inv = invert(G, target, cfg, perceptual=miniclip_perceptual, progress=False)
    assert inv.meta["psnr_input_view"] >= 30.0, inv.meta
    assert inv.pti_delta and all(torch.isfinite(v).all() for v in inv.pti_delta.values())
    before = {k: v.clone() for k, v in G.state_dict().items()}
    inv.save(tmp_path / "inv")
    back = Inversion.load(tmp_path / "inv")
    Gt = back.generator(G)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # the shared generator is untouched
    k0 = next(iter(back.pti_delta))
    assert torch.allclose(dict(Gt.named_parameters())[k0], dict(G.named_parameters())[k0] + back.pti_delta[k0])


def test_invert_cli_and_edit_with_the_inversion(tmp_path):
    from lenerf.cli import main
    from lenerf.synthetic import SyntheticHeads
    G = SyntheticHeads()
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(np.random.RandomState(9).randn(1, 32)).float(), G.camera(0, 0))
        img = _render(G, ws, torch.tensor(0.1), torch.tensor(0.0), FAST, 64)
    photo = tmp_path / "head.png"
    from lenerf.media import to_uint8
    Image.fromarray(to_uint8(img)).save(photo)
    out = tmp_path / "inv"
    assert main(["invert", str(photo), "--generator", "synthetic", "--out", str(out), "--steps", "5",
                 "--frames", "8", "--perceptual", "miniclip"]) == 0
    for f in ("aligned.png", "reconstruction.png", "turntable.mp4", "inversion.json", "latent.safetensors"):
        assert (out / f).is_file(), f
    assert main(["edit", "--generator", "synthetic", "--edit", str(ROOT / "checkpoints/edits/eyes_blue"),
                 "--inversion", str(out), "--out", str(tmp_path / "ed"), "--preset", "preview"]) == 0
    assert (tmp_path / "ed" / "photo_after.png").is_file()
    assert main(["invert", str(tmp_path / "nope.png"), "--generator", "synthetic", "--out", str(out)]) == 2
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(["invert", str(bad), "--generator", "synthetic", "--out", str(out)]) == 2


def test_image_to_tensor_range():
    t = image_to_tensor(Image.new("RGB", (10, 10), (255, 0, 128)), size=8)
    assert t.shape == (1, 3, 8, 8) and t.max() == 1.0 and t.min() == -1.0
