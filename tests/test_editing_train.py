"""Training edits: the real EG3D + ViT-B/32 path (smoke), resume determinism, cancellation, packages, CLI."""
import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lenerf.editing import EditConfig, LocalEditor, load_edit, train_edit
from lenerf.errors import InputError

from .conftest import golden_dir

ROOT = Path(__file__).resolve().parents[1]


def test_eg3d_with_random_vit_b32_trains_20_steps_and_loads_back(tiny_G, tiny_golden, tmp_path):
    """The real path: EG3D (tiny golden weights) + open_clip ViT-B/32 (random weights, no download)."""
    from lenerf.clip import load_clip
    clip = load_clip("ViT-B-32", pretrained=None)
    assert clip.image_size == 224
    cfg = EditConfig(mask_prompt="eyes", edit_prompt="person with blue eyes", generator="tiny", clip="ViT-B-32",
                     steps=20, batch=1, views=2, resolution=32, afn_kind="ws_condition", afn_hidden=32,
                     augmentations=1, save_every=10, preview_every=10,
                     source_prompts=["a photo of a person", "face"])
    out = train_edit(tiny_G, cfg, tmp_path / "edit", clip=clip, progress=False)
    info = json.loads((out / "edit.json").read_text())
    assert info["steps"] == 20 and info["module_config"]["descriptor_dim"] == 65
    assert (out / "previews" / "step00020.png").is_file()
    edit, _ = load_edit(out)
    ws = tiny_golden[2]["ws_case0"]
    res = LocalEditor(tiny_G, [edit]).render(ws, tiny_golden[2]["c_frontal"], preset="preview")
    assert res.edited.shape == (1, 3, 256, 256) and res.mask.shape == (1, 1, 64, 64)
    assert torch.isfinite(res.edited).all()


@pytest.fixture(scope="module")
def synth():
    from lenerf.synthetic import SyntheticHeads
    return SyntheticHeads()


def _cfg(**kw):
    base = dict(mask_prompt="eyes", edit_prompt="a face with blue eyes", steps=4, batch=1, views=1,
                resolution=24, save_every=2, preview_every=0, augmentations=1)
    base.update(kw)
    return EditConfig(**base)


def test_resume_after_cancel_is_identical_to_an_uninterrupted_run(synth, tmp_path):
    full = train_edit(synth, _cfg(), tmp_path / "full", progress=False)
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 2  # cancel before step 3

    with pytest.raises(KeyboardInterrupt):
        train_edit(synth, _cfg(), tmp_path / "resumed", progress=False, should_stop=stop)
    assert json.loads((tmp_path / "resumed" / "train_state.json").read_text())["step"] == 2
    assert not (tmp_path / "resumed" / "edit.json").exists()  # nothing half-written
    resumed = train_edit(synth, _cfg(), tmp_path / "resumed", progress=False)
    a, b = load_file(full / "modules.safetensors"), load_file(resumed / "modules.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # the training log holds every step once, as the uninterrupted run's; a fresh run in the folder starts it anew
    log = lambda d: [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]  # noqa: E731
    assert [r["step"] for r in log(resumed)] == [r["step"] for r in log(full)] == [1, 2, 3, 4]
    assert log(resumed)[-1]["clip"] == pytest.approx(log(full)[-1]["clip"], abs=1e-4)
    train_edit(synth, _cfg(steps=2), tmp_path / "full", progress=False, resume=False)
    assert [r["step"] for r in log(full)] == [1, 2]


def test_resume_refuses_a_state_of_another_configuration(synth, tmp_path):
    """A folder's checkpoint is resumed only by the configuration that saved it (logging and inference settings
    aside): resuming it with another prompt or rate would silently continue another edit."""
    def stop_after(k):
        calls = {"n": 0}

        def stop():
            calls["n"] += 1
            return calls["n"] > k
        return stop

    with pytest.raises(KeyboardInterrupt):
        train_edit(synth, _cfg(), tmp_path / "e", progress=False, should_stop=stop_after(2))
    with pytest.raises(InputError, match=r"another configuration \(different: edit_prompt, lr\)"):
        train_edit(synth, _cfg(edit_prompt="a face with green eyes", lr=1e-3), tmp_path / "e", progress=False)
    out = train_edit(synth, _cfg(save_every=1, preview_every=3), tmp_path / "e", progress=False)  # harmless: resumes
    assert [r["step"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())] == [1, 2, 3, 4]
    out = train_edit(synth, _cfg(edit_prompt="a face with green eyes"), tmp_path / "e", progress=False, resume=False)
    assert json.loads((out / "edit.json").read_text())["edit_prompt"] == "a face with green eyes"
    # a state saved before a setting existed (here lambda_outside) resumes when the setting has its default value
    with pytest.raises(KeyboardInterrupt):
        train_edit(synth, _cfg(), tmp_path / "old", progress=False, should_stop=stop_after(2))
    meta = json.loads((tmp_path / "old" / "train_state.json").read_text())
    del meta["config"]["lambda_outside"]
    (tmp_path / "old" / "train_state.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"different: lambda_outside\)"):
        train_edit(synth, _cfg(lambda_outside=1.0), tmp_path / "old", progress=False)
    assert train_edit(synth, _cfg(), tmp_path / "old", progress=False).is_dir()


def test_bad_training_input(synth, tmp_path):
    with pytest.raises(InputError, match="mask prompt must not be empty"):
        train_edit(synth, _cfg(mask_prompt="  "), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="too long"):
        train_edit(synth, _cfg(edit_prompt="x" * 300), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="steps"):
        train_edit(synth, _cfg(steps=0), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="save_every must be >= 1"):
        train_edit(synth, _cfg(save_every=0), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="relevance_shifts 5 or 9"):
        train_edit(synth, _cfg(relevance_shift_px=1, relevance_shifts=4), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="relevance_shift_px must be in"):
        train_edit(synth, _cfg(relevance_shift_px=12), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="source_prompt_select"):
        train_edit(synth, _cfg(source_prompt_select="max"), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="loss must be one of dir_nce, dir_diff, default, zero_shot"):
        train_edit(synth, _cfg(loss="zeroshot"), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="lambda_outside"):
        train_edit(synth, _cfg(lambda_outside=-1.0), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="lambda_outside"):
        train_edit(synth, _cfg(lambda_outside=1.0, use_mask=False), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="relevance_refine must be >= 0"):
        train_edit(synth, _cfg(relevance_refine=-1), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="relevance_refine_sigma > 0"):
        train_edit(synth, _cfg(relevance_refine=2, relevance_refine_sigma=0.0), tmp_path / "x", progress=False)


def test_a_wider_training_view_sees_the_ends_of_long_hair(synth):
    """fov_scale widens the training renders: the same cameras' origins, ray angles off the axis x fov_scale, and
    the synthetic world's long hair, whose ends the generator's frame cuts off, visibly shorter at h = 0.85."""
    from lenerf.cameras import wider_view
    from lenerf.rendering import sample_rays
    from lenerf.rendering import render
    from lenerf.synthetic.data import latents
    cams = torch.cat([synth.camera(0.0, 0.0), synth.camera(0.3, -0.1)])
    def training_rays(c, res, scale=1.0):
        c = wider_view(c, scale)
        return sample_rays(c[:, :16].reshape(-1, 4, 4), c[:, 16:25].reshape(-1, 3, 3), res)
    assert wider_view(cams, 1.0) is cams
    o1, d1 = training_rays(cams, 16)
    o2, d2 = training_rays(cams, 16, 1.35)
    assert torch.equal(o1, o2)
    axis = torch.nn.functional.normalize(cams[:, :16].reshape(-1, 4, 4)[:, :3, 2], dim=-1).unsqueeze(1)

    def tan(d):
        cos = (d * axis).sum(-1)
        return (1 - cos ** 2).clamp_min(0).sqrt() / cos
    assert torch.allclose(tan(d2).amax(1), 1.35 * tan(d1).amax(1), rtol=1e-3)
    with pytest.raises(InputError, match="fov_scale"):
        _cfg(fov_scale=0.2).validate()
    with pytest.raises(InputError, match="fov_scale needs lambda_outside 0"):
        _cfg(fov_scale=1.35, lambda_outside=1.0).validate()

    ws = latents(synth, range(40))
    ws = ws[synth.attributes(ws)["hair_length"] == 1][:2].repeat_interleave(2, 0)  # two long-haired heads
    ws = synth.with_hair_length(ws, torch.tensor([1.0, 0.85, 1.0, 0.85]))
    cams = synth.camera(0.0, 0.0).repeat(4, 1)
    change = {}
    for scale in (1.0, 1.35):
        o, d = training_rays(cams, 32, scale)
        img = render(synth.field(ws), o, d, synth.render_settings,
                     generator=torch.Generator().manual_seed(0)).colors[..., :3]
        change[scale] = (img[0::2] - img[1::2]).abs().mean().item()
    assert change[1.35] > 2 * change[1.0], change  # measured 0.0140 vs 0.0053


def test_a_wider_view_trains_the_mask_in_its_mask_only_steps_alone(synth, tmp_path):
    """With fov_scale the edit steps (wide view) leave the attention field alone; the mask-only steps (generator's
    view) fit it. Without, every step fits it."""
    def logs(**kw):
        out = train_edit(synth, _cfg(steps=2, afn_warmup=1, afn_cooldown=1, **kw), tmp_path / str(len(kw)),
                         progress=False)
        return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    wide = logs(fov_scale=1.35, lambda_outside=0.0)
    assert ["afn_mask" in r for r in wide] == [True, False, False, True]
    assert all(r["clip"] > 0 for r in wide[1:3]) and all(0 <= r["coverage"] <= 1 for r in wide)
    assert ["afn_mask" in r for r in logs()] == [True] * 4


def test_outside_term_penalises_change_outside_the_pseudo_labels(synth, tmp_path):
    """lambda_outside: the mapper step also pays for |edited - source| outside the pseudo-labels; it is logged, it
    changes what the mapper learns (same seed, other weights), and at 0 the log has no such column (the shipped
    hair_long uses 1.0: docs/editing.md, 38.3 -> 56.2 dB outside the hair)."""
    kw = dict(steps=3, afn_warmup=1, lambda_clip=1.0)
    plain = train_edit(synth, _cfg(**kw), tmp_path / "plain", progress=False)
    paid = train_edit(synth, _cfg(lambda_outside=50.0, **kw), tmp_path / "paid", progress=False)
    rows = [json.loads(line) for line in (paid / "train_log.jsonl").read_text().splitlines()]
    edit_rows = [r for r in rows if r["step"] > 1]
    assert all("outside" in r for r in edit_rows) and any(r["outside"] > 0 for r in edit_rows)
    assert "outside" not in rows[0]  # the mask warm-up step has no mapper step
    assert all("outside" not in json.loads(line) for line in (plain / "train_log.jsonl").read_text().splitlines())
    a, b = (load_file(d / "modules.safetensors") for d in (plain, paid))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("mapper."))

    # the raw target's term: logged, it changes the mapper, and it needs a texture-only edit with the mask
    raw = train_edit(synth, _cfg(lambda_outside_target=50.0, **kw), tmp_path / "raw", progress=False)
    rows = [json.loads(line) for line in (raw / "train_log.jsonl").read_text().splitlines()]
    assert all("outside_target" in r for r in rows if r["step"] > 1) and "outside_target" not in rows[0]
    assert any(r["outside_target"] > 0 for r in rows if r["step"] > 1)
    c = load_file(raw / "modules.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a if k.startswith("mapper."))
    for bad in (dict(lambda_outside_target=-1.0), dict(lambda_outside_target=1.0, use_mask=False),
                dict(lambda_outside_target=1.0, texture_only=False)):
        with pytest.raises(InputError, match="lambda_outside_target"):
            _cfg(**bad).validate()


def test_train_cli_writes_a_package(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lenerf", "--threads", "2", "train", "--generator", "synthetic",
                        "--mask-prompt", "lips", "--edit-prompt", "a face with green lips", "--steps", "2",
                        "--out", str(tmp_path / "lips")], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "lips" / "edit.json").read_text())
    assert info["mask_prompt"] == "lips" and info["generator"] == "synthetic" and info["code_version"]
    # without --config: the app's config for the new edit (`config`; until session 36 the official recipe, whose
    # MiniCLIP and plain sources the app had long left), the flags on top
    from lenerf.studio.configs import make_config
    app = dataclasses.asdict(make_config("synthetic", "lips", "a face with green lips", steps=2))
    assert info["config"] == app and info["config"]["edit_clip"] == "miniclip-color"
    r = subprocess.run([sys.executable, "-m", "lenerf", "--threads", "2", "train", "--generator", "synthetic",
                        "--mask-prompt", "lips", "--edit-prompt", "a face with green lips", "--steps", "2",
                        "--official", "--seed", "5", "--out", str(tmp_path / "official")], capture_output=True,
                       text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    official = json.loads((tmp_path / "official" / "edit.json").read_text())["config"]
    assert official == dataclasses.asdict(EditConfig("lips", "a face with green lips", steps=2, seed=5))
    r = subprocess.run([sys.executable, "-m", "lenerf", "train", "--generator", "synthetic",
                        "--out", str(tmp_path / "y")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "--mask-prompt and --edit-prompt are required" in r.stderr
    r = subprocess.run([sys.executable, "-m", "lenerf", "train", "--config", "checkpoints/edits/eyes_blue.json",
                        "--official", "--out", str(tmp_path / "y")], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 2 and "pick one" in r.stderr


def test_train_cli_on_eg3d_trains_the_apps_vit_b32_config(tmp_path):
    """`train` on an EG3D generator without --config: the app's EG3D config (ViT-B/32 with OpenAI's weights; the
    official recipe's default CLIP is MiniCLIP, which knows only the synthetic world); offline, --clip-pretrained none
    runs it with random weights (the smoke test of the real path) and without it the missing weights are named."""
    tiny = str(golden_dir("eg3d", "tiny"))
    cmd = [sys.executable, "-m", "lenerf", "--threads", "2", "train", "--generator", tiny, "--mask-prompt", "eyes",
           "--edit-prompt", "a person with blue eyes", "--steps", "1"]
    r = subprocess.run(cmd + ["--clip-pretrained", "none", "--out", str(tmp_path / "e")], capture_output=True,
                       text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "e" / "edit.json").read_text())["config"]
    assert (cfg["clip"], cfg["clip_pretrained"], cfg["resolution"], cfg["generator"]) == ("ViT-B-32", None, 128, tiny)
    r = subprocess.run(cmd + ["--out", str(tmp_path / "f")], capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode != 0 and "ViT-B-32 (openai)" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_attention_warmup_trains_only_the_mask_first(synth, tmp_path):
    """afn_warmup steps update the attention field alone; the mapper starts moving after them."""
    infos = []
    out = train_edit(synth, _cfg(steps=2, afn_warmup=3, save_every=10, mask_stride=2, afn_xyz_frequencies=4),
                     tmp_path / "w", progress=False, callback=infos.append)
    assert [i["step"] for i in infos] == [1, 2, 3, 4, 5] and {i["steps"] for i in infos} == {5}
    assert [i["phase"] for i in infos] == ["mask warm-up"] * 3 + ["edit"] * 2
    assert all(i["clip"] == 0.0 for i in infos[:3]) and all(i["clip"] != 0.0 for i in infos[3:])
    # after the warm-up alone the mapper is still at its initialisation, the attention field is not
    from lenerf.editing.editor import EditModules
    cfg = json.loads((out / "edit.json").read_text())["module_config"]
    torch.manual_seed(304)  # the trainer's seed: the same initialisation
    ref = EditModules(**cfg).state_dict()
    calls = {"n": 0}

    def stop():  # cancel right after the warm-up: the checkpoint holds the state at step 3
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(KeyboardInterrupt):
        train_edit(synth, _cfg(steps=2, afn_warmup=3, save_every=10, mask_stride=2, afn_xyz_frequencies=4),
                   tmp_path / "w3", progress=False, should_stop=stop)
    state = load_file(tmp_path / "w3" / "train_state.safetensors")
    state = {k[len("model/"):]: v for k, v in state.items() if k.startswith("model/")}
    assert all(torch.equal(state[k], ref[k]) for k in ref if k.startswith("mapper."))
    assert any(not torch.allclose(state[k], ref[k]) for k in ref if k.startswith("attention."))
    with pytest.raises(InputError, match="afn_warmup"):
        train_edit(synth, _cfg(afn_warmup=-1), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="mask_stride must divide"):
        train_edit(synth, _cfg(mask_stride=5), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="need the attention field"):
        train_edit(synth, _cfg(afn_warmup=2, use_mask=False), tmp_path / "x", progress=False)


def test_global_edit_ablation_applies_everywhere(synth, tmp_path):
    """use_mask=False (CLI --global-edit): no attention field is trained and the edit's mask is 1 everywhere."""
    r = subprocess.run([sys.executable, "-m", "lenerf", "--threads", "2", "train", "--generator", "synthetic",
                        "--mask-prompt", "eyes", "--edit-prompt", "a face with blue eyes", "--steps", "2",
                        "--global-edit", "--out", str(tmp_path / "g")], capture_output=True, text=True, cwd=ROOT,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    edit, info = load_edit(tmp_path / "g")
    assert info["config"]["use_mask"] is False and edit.use_mask is False
    from lenerf.synthetic.data import latents
    from lenerf.cameras import sample_cameras
    ws = latents(synth, [5])
    c = sample_cameras(1, generator=torch.Generator().manual_seed(0), radius=synth.camera_radius,
                       lookat=synth.camera_pivot)
    res = LocalEditor(synth, [edit]).render(ws, c, preset="preview")
    # the rendered mask equals the source's opacity (m = 1 at every sample)
    assert (res.mask - res.opacity).abs().max() < 1e-2, (res.mask - res.opacity).abs().max()
    masked = LocalEditor(synth, [type(edit)(**{**edit.__dict__, "use_mask": True})]).render(ws, c, preset="preview")
    assert not torch.allclose(masked.mask, res.mask, atol=1e-3)


def test_eval_edit_metrics_of_a_shipped_edit(synth):
    """evaluate_edits on the shipped eyes_blue: every metric present and in range; its mapper alone turns the
    eyes blue (ground truth of the world); at strength 0 the edited render is the source (no change outside)."""
    from lenerf.editing.evaluate import evaluate_edits
    from lenerf.synthetic.classifier import load_classifier
    edit, info = load_edit(ROOT / "checkpoints" / "edits" / "eyes_blue")
    views = [(-0.3, 0.0), (0.3, 0.0)]
    clf = load_classifier()
    m, sheet = evaluate_edits(synth, [edit], [{"eyes": "blue"}], ["eyes"], heads=3, classifier=clf, views=views)
    for k in ("success_rate", "identity_rate", "target_latent_rate", "identity_views_rate"):
        assert 0.0 <= m[k] <= 1.0
    assert m["target_latent_rate"] == 1.0
    assert 0.0 <= m["iou3d_median"] <= 1.0 and m["psnr_out_median"] > 25
    assert "new_part_fill_median" not in m  # a texture edit grows no new part
    assert not any(k.startswith(("hair_iou3d", "hair_colour_fill")) for k in m)  # the splits by hair length: hair
    assert sheet.ndim == 3 and sheet.shape[-1] == 3
    off, _ = evaluate_edits(synth, [dataclasses.replace(edit, strength=0.0)], [{"eyes": "blue"}], ["eyes"],
                            heads=3, classifier=clf, views=views)
    assert off["psnr_out_median"] > 60 and off["identity_rate"] == 1.0 and off["identity_views_rate"] == 1.0
    assert off["target_latent_rate"] < 1.0  # the held-out heads do not all have blue eyes already


def test_threshold_sweep_on_training_heads_and_set_threshold(synth, tmp_path, capsys):
    """The sweep's recall can only fall as the threshold rises; the chosen threshold is the lowest within the
    tolerance of the best IoU; set_threshold stores it (and refuses nonsense); eval threshold takes one edit."""
    import shutil
    from lenerf.cli import main as cli
    from lenerf.editing.evaluate import threshold_sweep
    from lenerf.editing.package import set_threshold
    from lenerf.synthetic.data import EVAL_SEED_BASE
    edit, _ = load_edit(ROOT / "checkpoints" / "edits" / "eyes_blue")
    s = threshold_sweep(synth, edit, "eyes", heads=2, views=[(-0.3, 0.0), (0.3, 0.0)], thresholds=(0.5, 0.8, 0.95))
    rows = [s["by_threshold"][k] for k in ("0.5", "0.8", "0.95")]
    assert rows[0]["recall"] >= rows[1]["recall"] >= rows[2]["recall"]
    assert all(0.0 <= r["iou"] <= min(r["precision"], r["recall"]) + 1e-6 for r in rows)
    top = max(r["iou"] for r in rows)
    assert s["best_threshold"] in (0.5, 0.8, 0.95)
    assert s["by_threshold"][f"{s['best_threshold']:g}"]["iou"] >= top - 0.01
    assert s["head_seeds"][1] < EVAL_SEED_BASE  # calibrated on training heads, never on the held-out ones
    pkg = tmp_path / "eyes"
    shutil.copytree(ROOT / "checkpoints" / "edits" / "eyes_blue", pkg, ignore=shutil.ignore_patterns("previews"))
    set_threshold(pkg, 0.77, calibration=s)
    e2, info2 = load_edit(pkg)
    assert e2.threshold == 0.77 and info2["threshold_calibration"]["part"] == "eyes"
    with pytest.raises(InputError, match="threshold"):
        set_threshold(pkg, 1.5)
    assert cli(["eval", "threshold", "--edit", str(pkg), "--edit", str(pkg), "--out", str(tmp_path / "t")]) == 2
    assert "one edit" in capsys.readouterr().err
    assert cli(["eval", "edit", "--edit", str(pkg), "--threshold", "1.5", "--out", str(tmp_path / "t")]) == 2
    assert "--threshold must be in [0, 1)" in capsys.readouterr().err
    # another judge may be asked, but its verdict is never written into the package
    assert cli(["eval", "edit", "--edit", str(pkg), "--classifier", str(tmp_path), "--write-metrics",
                "--out", str(tmp_path / "t")]) == 2
    assert "shipped classifier" in capsys.readouterr().err
    assert cli(["eval", "edit", "--edit", str(pkg), "--classifier", str(tmp_path / "none"), "--heads", "1",
                "--out", str(tmp_path / "t")]) == 2
    assert "train-classifier" in capsys.readouterr().err
    # heads of the training seed range may be measured, but that verdict is never written into the package
    assert cli(["eval", "edit", "--edit", str(pkg), "--training-heads", "--write-metrics",
                "--out", str(tmp_path / "t")]) == 2
    assert "held-out verdict" in capsys.readouterr().err
    assert cli(["eval", "edit", "--edit", str(pkg), "--training-heads", "--heads", "1",
                "--out", str(tmp_path / "tr")]) == 0
    assert json.loads((tmp_path / "tr" / "metrics.json").read_text())["head_seeds"] == [1_070_000, 1_070_000]


def test_mapper_table_of_the_shipped_eyes_edit(synth, tmp_path, capsys):
    """eval mapper reads the raw target latents by the world's truth: the shipped eyes mapper turns brown and green
    eyes blue and does it per head (green eyes lose green that brown eyes gain), with a bounded residual; at strength
    0 the target is the source. It refuses a geometry target part and a sequence of edits."""
    from lenerf.cli import main as cli
    from lenerf.editing.evaluate import mapper_table
    edit, _ = load_edit(ROOT / "checkpoints" / "edits" / "eyes_blue")
    t = mapper_table(synth, edit, "eyes", {"eyes": "blue"}, heads=40)
    rows = t["by_source_class"]
    assert set(rows) == {"brown", "blue", "green"} and sum(r["heads"] for r in rows.values()) == 40
    assert t["target_rate"] >= 0.9 and t["residual_norm_mean"] < 5
    for r in rows.values():
        assert r["target_rgb"][2] > 0.9 and r["target_rgb"][0] < 0.35  # blue up, red down
    # head-dependent: green eyes end less green than they started, brown ones more green
    assert rows["green"]["target_rgb"][1] - rows["green"]["source_rgb"][1] < 0.1
    assert rows["brown"]["target_rgb"][1] - rows["brown"]["source_rgb"][1] > 0.05
    off = mapper_table(synth, dataclasses.replace(edit, strength=0.0), "eyes", {"eyes": "blue"}, heads=40)
    assert off["residual_norm_mean"] == 0 and all(r["source_rgb"] == r["target_rgb"] for r in
                                                   off["by_source_class"].values())
    assert off["by_source_class"]["blue"]["target_rate"] == 1.0 and off["by_source_class"]["brown"]["target_rate"] == 0
    # since session 24 (guided by miniclip-color, paying for change outside its pseudo-labels) the mapper alone keeps
    # every other attribute: 200 of 200 heads; the previous package's target latents also carried other lip / hair
    # classes on 40% of them (0.615), which only the attention mask kept out of the render
    assert t["other_unchanged_rate"] == 1.0 and t["target_rate"] == 1.0
    assert off["other_unchanged_rate"] == 1.0
    lengths = off["hair_length_by_source"]
    assert set(lengths) == {"short", "long"} and lengths["short"]["target_max"] == 0 == lengths["short"]["source_mean"]
    assert lengths["long"]["target_min"] == 1 and sum(r["heads"] for r in lengths.values()) == 40
    with pytest.raises(ValueError, match="colour part"):
        mapper_table(synth, edit, "hair_length", {"hair_length": "long"})
    pkg = str(ROOT / "checkpoints" / "edits" / "eyes_blue")
    assert cli(["eval", "mapper", "--edit", pkg, "--heads", "6", "--out", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "mapper.json").read_text())["heads"] == 6
    assert cli(["eval", "mapper", "--edit", pkg, "--edit", pkg, "--out", str(tmp_path / "m2")]) == 2
    assert "one edit" in capsys.readouterr().err


@pytest.mark.parametrize("freqs,bound", [(0, 0.02), (4, 0.03)])
def test_deformation_trains_at_its_own_rate_and_stays_small(synth, tmp_path, freqs, bound):
    """The deformation network is trained (its weights move) at lr_deformation (default: lr), not at the mapper's
    large rate: 4 steps with lr_mapper 0.3 leave its offsets within a few hundredths of a world unit of the identity
    (with a positional encoding, which starts at exactly the identity but whose sin/cos inputs move the offsets
    faster: 0.023 measured). The encoding travels with the package."""
    from lenerf.synthetic.data import latents
    cfg = _cfg(deformation=True, texture_only=False, lr_mapper=0.3, mapper_groups=["coarse", "medium"],
               dn_xyz_frequencies=freqs)
    out = train_edit(synth, cfg, tmp_path / "d", progress=False)
    edit, info = load_edit(out)
    assert info["module_config"]["deformation"] is True
    assert info["module_config"].get("dn_xyz_frequencies", 0) == edit.modules.deformation.xyz_frequencies == freqs
    from lenerf.editing.editor import EditModules
    torch.manual_seed(304)
    ref = EditModules(**info["module_config"]).state_dict()
    moved = [k for k, v in edit.modules.state_dict().items() if k.startswith("deformation.")
             and not torch.allclose(v, ref[k])]
    assert moved, "the deformation network was not trained"
    ws = latents(synth, [11, 12])
    x = torch.rand(2, 500, 3, generator=torch.Generator().manual_seed(0)) * 0.8 - 0.4
    with torch.no_grad():
        off = edit.modules.deformation.offsets(x, ws, edit.target_latent(ws)).norm(dim=-1)
    assert off.max() < bound, off.max()
    with pytest.raises(InputError, match="lr_deformation must be > 0"):
        train_edit(synth, _cfg(lr_deformation=0.0), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="dn_xyz_frequencies"):
        train_edit(synth, _cfg(dn_xyz_frequencies=4), tmp_path / "x", progress=False)  # no deformation network
    with pytest.raises(InputError, match="dn_symmetric"):
        train_edit(synth, _cfg(dn_symmetric=True), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="dn_max_offset"):
        train_edit(synth, _cfg(dn_max_offset=0.02), tmp_path / "x", progress=False)


def test_a_deformation_without_a_mapper_reads_the_captured_source_features(synth, tiny_G, tmp_path):
    """Without mapper groups the target is the source, so an edit step takes the target's features at the samples
    from the source render's capture instead of evaluating the field again: they are the same values on both
    generators' fields (the trainer's sample points, its render call), and such an edit trains its deformation."""
    from lenerf.cameras import sample_cameras
    from lenerf.rendering import render, sample_rays
    for G in (synth, tiny_G):
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(3)), torch.zeros(1, G.c_dim))
        field = G.field(ws)
        cams = sample_cameras(1, generator=torch.Generator().manual_seed(0), radius=G.camera_radius,
                              lookat=G.camera_pivot, fov_deg=G.fov_deg)
        origins, dirs = sample_rays(cams[:, :16].reshape(-1, 4, 4), cams[:, 16:25].reshape(-1, 3, 3), 16)
        with torch.no_grad():
            src = render(field, origins, dirs, G.render_settings, generator=torch.Generator().manual_seed(1),
                         capture_features=True)
            pts = origins.unsqueeze(-2) + src.sample_depths * dirs.unsqueeze(-2)
            again = field.features(pts.reshape(1, -1, 3))
        assert src.sample_features.reshape(again.shape).std() > 0
        assert torch.allclose(src.sample_features.reshape(again.shape), again, atol=1e-5), type(G).__name__
    out = train_edit(synth, _cfg(deformation=True, texture_only=False, mapper_groups=[], dn_xyz_frequencies=4),
                     tmp_path / "d", progress=False)
    edit, info = load_edit(out)
    assert info["module_config"]["mapper_groups"] == [] and edit.modules.deformation.net[-1].weight.abs().max() > 0


def test_offset_sparsity_term_keeps_the_deformation_near_the_identity(synth, tmp_path):
    """lambda_offset (expected |T(x)|_1 along the source's rays) pulls the offsets back towards zero: the same 4 steps
    with it leave them several times smaller than without; it is logged and needs the deformation network."""
    from lenerf.synthetic.data import latents
    kw = dict(deformation=True, texture_only=False, lr_mapper=0.3, mapper_groups=["coarse"], dn_xyz_frequencies=4,
              lr_deformation=0.01)
    ws = latents(synth, [11, 12])
    x = torch.rand(2, 500, 3, generator=torch.Generator().manual_seed(0)) * 0.8 - 0.4
    sizes = {}
    for lam in (0.0, 300.0):
        out = train_edit(synth, _cfg(lambda_offset=lam, **kw), tmp_path / f"o{lam:g}", progress=False)
        edit, info = load_edit(out)
        with torch.no_grad():
            sizes[lam] = edit.modules.deformation.offsets(x, ws, edit.target_latent(ws)).norm(dim=-1).mean().item()
        log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
        assert len(log) == 4 and all(("offset" in h) == bool(lam) for h in log)
    assert 0 < sizes[300.0] < sizes[0.0] / 3, sizes
    with pytest.raises(InputError, match="lambda_offset"):
        train_edit(synth, _cfg(lambda_offset=1.0), tmp_path / "x", progress=False)  # no deformation network
    with pytest.raises(InputError, match="lambda_offset"):
        train_edit(synth, _cfg(lambda_offset=-1.0, **kw), tmp_path / "x", progress=False)


def test_step_guard_lets_waiting_requests_run_within_an_edit_step(synth, tmp_path):
    """``step_guard`` is entered at each step and twice more within an edit step (before the mapper's half and
    before its backward pass): a preview waits for part of a step, not a whole one (`bench train --gate
    --probe-every`, docs/speed.md). What runs there leaves the training as it was."""
    from contextlib import contextmanager
    entered = []

    @contextmanager
    def guard():
        entered.append(torch.rand(1, generator=torch.Generator().manual_seed(len(entered))))  # a request's work
        yield

    cfg = _cfg(steps=2, afn_warmup=1, save_every=100)
    with_guard = train_edit(synth, cfg, tmp_path / "g", progress=False, step_guard=guard)
    assert len(entered) == 1 + 2 * 3  # a mask warm-up step: once; an edit step: three times
    plain = train_edit(synth, cfg, tmp_path / "p", progress=False)
    a, b = load_file(with_guard / "modules.safetensors"), load_file(plain / "modules.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bench_train_times_each_phase_of_a_shipped_recipe(monkeypatch):
    """``python -m lenerf bench train``: a few steps of each phase the recipe has, timed by the trainer's callback,
    projected to the recipe's own step counts; an unknown recipe is an input error."""
    from lenerf.bench import bench_train
    before = torch.get_num_threads()
    try:
        r = bench_train("eyes_big", steps=2, threads=before)
        cfg = json.loads((ROOT / "checkpoints" / "edits" / "eyes_big.json").read_text())
        assert set(r["phases"]) == {"mask warm-up", "edit"}
        assert r["phases"]["edit"]["recipe_steps"] == cfg["steps"]
        assert r["phases"]["mask warm-up"]["recipe_steps"] == cfg["afn_warmup"]
        assert all(p["steps_timed"] == 2 and p["median_s_per_step"] > 0 for p in r["phases"].values())
        # a deformation step renders and backpropagates through the network at every sample: dearer than a mask step
        assert r["phases"]["edit"]["median_s_per_step"] > r["phases"]["mask warm-up"]["median_s_per_step"]
        want = sum(p["median_s_per_step"] * p["recipe_steps"] for p in r["phases"].values())
        assert r["projected_run_s"] == pytest.approx(want, abs=0.1)
        with pytest.raises(InputError, match="no shipped recipe"):
            bench_train("no_such_recipe", steps=1)
        # as the app: a render in the main thread, the training in a worker thread (timed the same way)
        t = bench_train("lips_green", steps=1, threads=before, in_thread=True)
        assert t["in_thread"] and set(t["phases"]) == {"mask warm-up", "edit"}
        assert all(p["steps_timed"] == 1 and p["median_s_per_step"] > 0 for p in t["phases"].values())

        # as the app since session 35: both through one compute thread
        g = bench_train("lips_green", steps=1, threads=before, gate=True, probe_every=0.05)
        assert g["gate"] and not g["in_thread"] and {"mask warm-up", "edit"} <= set(g["phases"])
        assert set(g["phases"]) <= {"mask warm-up", "edit", "writing the package"}
        waits = [w for p in g["phases"].values() for w in p.get("request_waits_s", [])]
        assert waits and all(w >= 0 for w in waits)  # the preview-like requests ran, each after its wait
        with pytest.raises(InputError, match="needs --gate"):
            bench_train("lips_green", steps=1, probe_every=0.1)

        def fails(*a, **k):
            raise InputError("from the worker")
        monkeypatch.setattr("lenerf.editing.train_edit", fails)
        for how in ({"in_thread": True}, {"gate": True}):  # the worker's error reaches the caller
            with pytest.raises(InputError, match="from the worker"):
                bench_train("lips_green", steps=1, threads=before, **how)
        with pytest.raises(InputError, match="not both"):
            bench_train("lips_green", steps=1, in_thread=True, gate=True)
    finally:
        torch.set_num_threads(before)


def test_allocator_tuning_is_on_by_default_and_can_be_turned_off():
    """On glibc the CLI keeps freed memory for reuse (lenerf.runtime); LENERF_TUNE_MALLOC=0 leaves malloc alone."""
    import os
    import platform
    code = "from lenerf.runtime import tune_allocator; print(tune_allocator(), tune_allocator())"
    out = {}
    for value in ("1", "0"):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                           env={**os.environ, "LENERF_TUNE_MALLOC": value})
        assert r.returncode == 0, r.stderr
        out[value] = r.stdout.split()
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert out["1"] == [str(glibc)] * 2 and out["0"] == ["False", "False"]


def test_allocator_tuning_reaches_worker_threads():
    """The app trains and renders in worker threads. Without the tuning each thread gets a malloc arena of its own,
    whose heaps (64 MiB at most) map every large tensor afresh; with it the whole process shares the main arena,
    where freed memory is kept for reuse (lenerf.runtime; glibc's malloc_stats lists the arenas)."""
    import os
    import platform
    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("glibc's allocator only")
    code = """
import ctypes, threading, torch
from lenerf.runtime import tune_allocator
tune_allocator()
def work():
    x = torch.ones(32 * 2 ** 20)  # 128 MiB
    del x
for _ in range(2):
    t = threading.Thread(target=work)
    t.start()
    t.join()
ctypes.CDLL(None).malloc_stats()
"""
    arenas = {}
    for value in ("1", "0"):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                           env={**os.environ, "LENERF_TUNE_MALLOC": value})
        assert r.returncode == 0, r.stderr
        arenas[value] = sum(line.startswith("Arena ") for line in r.stderr.splitlines())
    assert arenas["1"] == 1 and arenas["0"] > 1, arenas


def test_texture_step_evaluates_the_target_only_where_rays_carry_weight(synth):
    """The texture-only edit step evaluates the target field only at the samples that carry ray weight; colours,
    density and the mapper's gradient are those of fusing at every sample (the mask is 0 elsewhere)."""
    from lenerf.editing.modules import AttentionField
    from lenerf.editing.trainer import _mask_at, _texture_step_colors, weighted_samples
    from lenerf.rendering import RenderSettings, render, sample_rays
    from lenerf.synthetic.data import latents
    n, res = 2, 16
    ws = latents(synth, [5, 6])
    cams = torch.cat([synth.camera(0.3, 0.1), synth.camera(-0.4, 0.0)])
    origins, dirs = sample_rays(cams[:, :16].reshape(-1, 4, 4), cams[:, 16:25].reshape(-1, 3, 3), res)
    src_field = synth.field(ws)
    src = render(src_field, origins, dirs, RenderSettings(depth_resolution=12, depth_resolution_importance=12),
                 generator=torch.Generator().manual_seed(0), capture_features=True)
    s = src.sample_depths.shape[2]
    x = (origins.unsqueeze(-2) + src.sample_depths * dirs.unsqueeze(-2)).reshape(n, -1, 3)
    fs = src.sample_features.reshape(n, -1, src.sample_features.shape[-1])
    torch.manual_seed(0)
    afn = AttentionField(descriptor_dim=4, w_dim=synth.w_dim)
    with torch.no_grad():
        m = _mask_at(afn, src_field.descriptor(fs), x, ws, ws, None, src.sample_weights).reshape(n, -1, 1)
    assert 0 < (m > 0).float().mean() < 1  # some samples carry no weight, so the restriction matters
    direction = torch.randn(synth.num_ws, synth.w_dim, generator=torch.Generator().manual_seed(1))
    got, want = [], []
    for fast in (True, False):
        d = torch.zeros((), requires_grad=True)
        tgt_field = synth.field(ws + d * direction)
        if fast:
            colors, sigma, none = _texture_step_colors(src_field, tgt_field, fs, x, m, src.sample_weights)
            assert none is None
        else:
            colors = src_field.decode(torch.lerp(fs, tgt_field.features(x), m))[0]
            sigma = src_field.decode(fs)[1]
        (colors[..., :3] * torch.linspace(0, 1, 3)).sum().backward()
        (got if fast else want).append((colors.detach(), sigma, d.grad))
    (c1, s1, g1), (c2, s2, g2) = got[0], want[0]
    assert torch.equal(s1, s2)
    assert torch.allclose(c1, c2, atol=1e-6)
    assert g2.abs() > 0 and torch.allclose(g1, g2, rtol=1e-4, atol=1e-6), (g1, g2)
    assert c1.shape == (n, res * res * s, synth.field(ws).color_dim)
    # raw: the raw target's colours where rays carry weight (lambda_outside_target), the source's elsewhere
    tgt_field = synth.field(ws + 0.5 * direction)
    colors, _, raw = _texture_step_colors(src_field, tgt_field, fs, x, m, src.sample_weights, raw=True)
    torch.testing.assert_close(colors, _texture_step_colors(src_field, tgt_field, fs, x, m, src.sample_weights)[0])
    full = src_field.decode(tgt_field.features(x))[0]
    weighted = torch.zeros(n, x.shape[1], dtype=torch.bool)
    weighted.scatter_(1, weighted_samples(src.sample_weights), True)
    torch.testing.assert_close(raw[weighted], full[weighted], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(raw[~weighted], src_field.decode(fs)[0][~weighted])
    assert not torch.allclose(raw[weighted], colors[weighted])  # unmasked: not the fused colours


def test_mask_along_the_target_rays_sees_new_geometry(synth, tmp_path):
    """mask_target_rays: where a geometry edit grows hair into empty space, the source's ray weights are ~0, so a
    mask rendered with them cannot be supervised there; rendered along the raw target's rays it can."""
    from lenerf.editing.trainer import _mask_at_target
    from lenerf.rendering import composite_mask, render, sample_rays
    from lenerf.synthetic.data import latents
    from lenerf.synthetic.world import PARTS
    ws = latents(synth, [11 + i for i in range(40)])
    ws = ws[[i for i, n in enumerate(synth.attribute_names(ws)) if n["hair_length"] == "short"][:1]]
    wt = synth.with_hair_length(ws, torch.ones(1))  # the same head with long hair
    cam = synth.camera(0.0, 0.0)
    o, d = sample_rays(cam[:, :16].reshape(-1, 4, 4), cam[:, 16:25].reshape(-1, 3, 3), 32)
    src_f, tgt_f = synth.field(ws), synth.field(wt)
    with torch.no_grad():
        gen = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
        src = render(src_f, o, d, synth.render_settings, return_samples=True, generator=gen(0))
        tgt = render(tgt_f, o, d, synth.render_settings, return_samples=True, generator=gen(1))
    # the world's backdrop is opaque: where long hair grows beside the face, the source's rays end on the backdrop
    new = (tgt.depth[0, :, 0] < src.depth[0, :, 0] - 0.1)[:, None]
    assert new.sum() > 20
    hair = PARTS.index("hair")

    class TargetHair(torch.nn.Module):  # the ideal mask of this edit: 1 in the target's hair, 0 elsewhere
        kind = "mlp"

        def forward(self, desc_s, x, ws, wt, desc_t=None):
            probs = tgt_f.features(x)[..., 4:]
            return ((probs.argmax(-1) == hair) & (probs.max(-1).values > 0.5)).float().unsqueeze(-1)

    xt = o.unsqueeze(-2) + tgt.sample_depths * d.unsqueeze(-2)
    xs = o.unsqueeze(-2) + src.sample_depths * d.unsqueeze(-2)
    with torch.no_grad():
        m_t = composite_mask(_mask_at_target(TargetHair(), src_f, tgt_f, xt, None, ws, wt, tgt.sample_weights),
                             tgt.sample_weights)[0]
        m_s = composite_mask(TargetHair()(None, xs.reshape(1, -1, 3), ws, wt).reshape(*xs.shape[:-1], 1),
                             src.sample_weights)[0]
    # rendered along the target's rays the ideal mask is on at the new hair (measured 0.97); along the source's it
    # is mostly not there (0.30: those rays end on the backdrop or the skin behind), so they cannot supervise it
    assert m_t[new].mean() > 0.9 and m_s[new].mean() < 0.5, (m_t[new].mean(), m_s[new].mean())
    # trains end to end (warm-up and edit steps) and is checked
    out = train_edit(synth, _cfg(steps=1, afn_warmup=1, texture_only=False, enlarged_mask=True, mask_target_rays=True,
                                 mapper_groups=["coarse", "medium"], mask_stride=2), tmp_path / "t", progress=False)
    assert json.loads((out / "edit.json").read_text())["config"]["mask_target_rays"] is True
    with pytest.raises(InputError, match="mask_target_rays needs enlarged_mask"):
        train_edit(synth, _cfg(mask_target_rays=True), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="set mask_target_rays"):
        train_edit(synth, _cfg(relevance_quantile_target=0.5), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match=r"relevance_quantile must be in \(0, 1\)"):
        train_edit(synth, _cfg(relevance_quantile=1.5), tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="relevance_otsu and relevance_quantile"):
        train_edit(synth, _cfg(relevance_otsu=True, relevance_quantile=0.9), tmp_path / "x", progress=False)


def test_attention_cooldown_trains_only_the_mask_after_the_edit_steps(synth, tmp_path):
    """afn_cooldown: mask-only steps after the edit steps, against the trained mapper's target; the mapper stays
    as the edit steps left it."""
    cfg = dict(steps=1, afn_warmup=1, afn_cooldown=2, save_every=10, mask_stride=2)
    infos = []
    out = train_edit(synth, _cfg(**cfg), tmp_path / "c", progress=False, callback=infos.append)
    assert [i["phase"] for i in infos] == ["mask warm-up", "edit", "mask cool-down", "mask cool-down"]
    assert infos[1]["clip"] != 0.0 and infos[2]["clip"] == infos[3]["clip"] == 0.0
    calls = {"n": 0}

    def stop():  # cancel right after the edit step: the checkpoint holds the state at step 2
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(KeyboardInterrupt):
        train_edit(synth, _cfg(**cfg), tmp_path / "c2", progress=False, should_stop=stop)
    state = load_file(tmp_path / "c2" / "train_state.safetensors")
    state = {k[len("model/"):]: v for k, v in state.items() if k.startswith("model/")}
    final = load_file(out / "modules.safetensors")
    assert all(torch.equal(state[k], final[k]) for k in final if k.startswith("mapper."))
    assert any(not torch.equal(state[k], final[k]) for k in final if k.startswith("attention."))
    with pytest.raises(InputError, match="afn_cooldown must be between"):
        train_edit(synth, _cfg(afn_cooldown=-1), tmp_path / "x", progress=False)


FILL_FLOOR = 0.85  # measured 0.94 here, 0.95 on 20 held-out heads (0.91 and 0.91 read at the source's samples alone,
# before session 37's importance pass of the edited field); session 17's package: 0.86 (0.83)


def test_shipped_hair_long_grows_solid_hair_with_a_binary_mask(synth):
    """The shipped geometry edit's mask is binary at inference (binarize_mask, threshold 0.7; its pseudo-labels
    contrast the head's hair colour with the others, mask_prompt_select "contrast"; its mapper pays for change outside
    them, lambda_outside): the long hair of its target
    comes out solid and the classifier reads every short-haired head as long-haired, the rest unchanged
    (docs/editing.md: 20 held-out heads x 8 views, success 100%; with the soft mask 0% of the short-haired heads)."""
    from lenerf.editing.evaluate import evaluate_edits
    from lenerf.synthetic.data import latents
    from lenerf.synthetic.classifier import load_classifier
    edit, info = load_edit(ROOT / "checkpoints" / "edits" / "hair_long")
    assert edit.binarize and edit.threshold == 0.7 and info["clip"] == "miniclip-length"
    assert info["config"]["mask_prompt_select"] == "contrast" and info["config"]["lambda_outside"] == 1.0
    editor = LocalEditor(synth, [edit])
    ws = latents(synth, [11, 12])
    with torch.no_grad():
        _, _, layers = editor.composite_field(ws)
        pts = torch.rand(2, 4000, 3, generator=torch.Generator().manual_seed(0)) - 0.5
        m = layers[0].mask(pts, layers[0].source.features(pts), layers[0].target.features(pts))
    assert set(m.unique().tolist()) == {0.0, 1.0}
    views = [(-0.3, 0.0), (0.3, 0.0)]
    r, _ = evaluate_edits(synth, [edit], [{"hair_length": "long"}], ["hair"], heads=4, classifier=load_classifier(),
                          views=views)
    assert r["success_changed_rate"] == 1.0 and r["identity_rate"] == 1.0, r
    split = [r[k] for k in ("hair_iou3d_short_median", "hair_iou3d_long_median") if k in r]
    assert split and all(0.0 <= x <= 1.0 for x in split), r  # a hair mask, by the source's hair length
    # the new hair shows the target's colour on most of its pixels
    assert r["new_part_fill_median"] > FILL_FLOOR, r
    # a mask cut at 0.99 leaves much of the new hair out (3D IoU 0.84 -> 0.55), and the measure sees it (fill 0.94 ->
    # 0.65 measured, 0.91 -> 0.60 before session 37; the cut was 0.97 until session 31, whose package's mask,
    # supervised on every ray, is surer: 0.74)
    cut, _ = evaluate_edits(synth, [dataclasses.replace(edit, threshold=0.99)], [{"hair_length": "long"}], ["hair"],
                            heads=4, views=views)
    assert cut["iou3d_median"] < r["iou3d_median"] - 0.2, (cut, r)
    assert cut["new_part_fill_median"] < r["new_part_fill_median"] - 0.2, (cut, r)


def test_new_hair_gets_the_edited_fields_own_samples(synth):
    """hair_long puts hair where the source is empty. The edited field is read at the source's samples, whose
    importance half sits on the source's surfaces, so a thin new strand was met by some rays only: grain (session 37,
    20 held-out heads x 8 views: new_part_fill 0.91 with the source's samples alone, 0.95 with the edited field's own
    importance pass). With no mask on, both renders are the source's exactly (new depths are kept only where a mask
    is on); the pass's result does not depend on its chunk of rays."""
    from lenerf.editing.evaluate import eval_cameras, evaluate_edits
    from lenerf.synthetic.data import EVAL_SEED_BASE, latents
    edit, _ = load_edit(ROOT / "checkpoints" / "edits" / "hair_long")
    views = [(-0.3, 0.0), (0.3, 0.0)]
    kw = dict(heads=4, views=views, seed_base=EVAL_SEED_BASE + 70_004)  # heads with thin new strands
    own, _ = evaluate_edits(synth, [edit], [{"hair_length": "long"}], ["hair"], **kw)
    plain, _ = evaluate_edits(synth, [edit], [{"hair_length": "long"}], ["hair"], edited_importance=0, **kw)
    # measured 0.94 vs 0.88; PSNR outside the hair 62.6 vs 61.0 dB
    assert own["new_part_fill_median"] > max(0.92, plain["new_part_fill_median"] + 0.03), (own, plain)
    assert own["psnr_out_median"] > 50, own
    off = LocalEditor(synth, [dataclasses.replace(edit, threshold=1.0)])  # m > 1 nowhere: no mask
    ws = latents(synth, [EVAL_SEED_BASE + 70_004]).expand(2, -1, -1)
    cams = eval_cameras(synth, views)
    with torch.no_grad():
        a = off.render(ws, cams, preset="full", generator=torch.Generator().manual_seed(0))
        b = off.render(ws, cams, preset="full", generator=torch.Generator().manual_seed(0), edited_importance=0)
    assert torch.equal(a.edited_raw, b.edited_raw) and torch.equal(a.edited_raw, a.source_raw)
    # the pass runs a chunk of rays at a time: the chunk size changes nothing
    editor = LocalEditor(synth, [edit])
    with torch.no_grad():
        big, small = (editor.render(ws, cams, preset="full", generator=torch.Generator().manual_seed(0),
                                    chunk_points=k) for k in (1 << 17, 1 << 12))
    assert not torch.equal(big.edited_raw, big.source_raw)
    torch.testing.assert_close(small.edited_raw, big.edited_raw, atol=1e-5, rtol=0)


def test_the_importance_pass_reads_only_the_rays_a_mask_reaches(synth, monkeypatch):
    """The edited field's own importance pass draws new depths only on the rays where an edit's mask is on at one of
    the source's samples: for eyes_big (a deformation of the eyes) a few rays, so its previews no longer cost ~40%
    more than without the pass (session 41, `bench synthetic` on an AMD EPYC: 1.40-1.56x -> 0.99-1.09x); the rest
    keep their render at the source's samples."""
    import lenerf.editing.editor as E
    from lenerf.generator import PRESETS
    from lenerf.synthetic.data import EVAL_SEED_BASE, latents
    edit, _ = load_edit(ROOT / "checkpoints" / "edits" / "eyes_big")
    calls, real = [], E.eval_samples

    def spy(field, o, d, z):
        calls.append(tuple(z.shape[1:3]))  # (rays, depths per ray)
        return real(field, o, d, z)
    monkeypatch.setattr(E, "eval_samples", spy)
    ws = latents(synth, [EVAL_SEED_BASE + 70_000])
    c = synth.camera(0.3, 0.1)
    editor = LocalEditor(synth, [edit])
    with torch.no_grad():
        res = editor.render(ws, c, preset="preview", generator=torch.Generator().manual_seed(0))
        plain = editor.render(ws, c, preset="preview", generator=torch.Generator().manual_seed(0), edited_importance=0)
    extra = PRESETS["preview"].depth_resolution_importance  # the preview's importance count: the new depths per ray
    rays = sum(r for r, k in calls if k == extra)  # rays given new depths
    all_rays = res.source_raw.shape[-1] * res.source_raw.shape[-2]
    assert 0 < rays < 0.2 * all_rays, (rays, all_rays, calls)  # measured 534 of 4096 (every ray before)
    changed = (res.edited_raw - plain.edited_raw).abs().amax(1) > 1e-5  # [1, R, R]
    assert 0 < changed.sum() <= rays, (int(changed.sum()), rays)  # the pass still adds its depths, on those rays


def test_stacked_edits_of_one_part_compose_their_targets(synth):
    """A later edit's target keeps the earlier edits of the same part (hair_red then hair_long: long *red* hair, by
    the world's truth of the target latent), while edits of other parts keep their own targets (eyes_blue then
    hair_red: hair_red's target is exactly its own, docs/editing.md, stacked edits: 95% both changed, 50% when every
    residual was added)."""
    from lenerf.synthetic.data import EVAL_SEED_BASE, latents
    load = lambda name: load_edit(ROOT / "checkpoints" / "edits" / name)[0]  # noqa: E731
    red, long_, blue = load("hair_red"), load("hair_long"), load("eyes_blue")
    assert red.part == long_.part == "hair" and blue.part == "eyes"
    ws = latents(synth, [EVAL_SEED_BASE + 70_000 + h for h in range(12)])
    with torch.no_grad():
        w_red, w_both = LocalEditor(synth, [red, long_]).target_latents(ws)
        alone = long_.target_latent(ws)
        torch.testing.assert_close(w_both, alone + (w_red - ws))
        names = synth.attribute_names(w_both)
        assert all(n["hair"] == "red" and n["hair_length"] == "long" for n in names), names
        assert sum(n["hair"] == "red" for n in synth.attribute_names(alone)) < 6  # long hair alone keeps its colour
        _, w_hair = LocalEditor(synth, [blue, red]).target_latents(ws)
        assert torch.equal(w_hair, red.target_latent(ws))
        # the composite's layers read the same targets; a later layer of the same part joins the earlier one's mask
        _, _, layers = LocalEditor(synth, [red, long_]).composite_field(ws)
        assert torch.equal(layers[1].wt, w_both) and layers[1].union == [layers[0]]
        assert LocalEditor(synth, [blue, red]).composite_field(ws)[2][1].union == []
        # a deformation network reads the source elsewhere: no union across it
        from lenerf.editing import DeformationField
        modules = copy.deepcopy(long_.modules)
        modules.deformation = DeformationField(synth.w_dim, 16)
        deformed = dataclasses.replace(long_, modules=modules)
        assert LocalEditor(synth, [red, deformed]).composite_field(ws)[2][1].union == []


def test_an_edit_with_a_deformation_stacks_after_a_mask_edit(synth):
    """eyes_blue then eyes_big: the deformed layer reads the earlier layer at other points too; only its evaluation at
    the render's samples is the earlier mask (session 23: the extra records broke the mask image with a shape error).
    The stacked mask image holds eyes_blue's own mask (their union) and the deformation still grows the eyes."""
    from lenerf.editing.evaluate import eval_cameras
    from lenerf.synthetic.data import latents
    blue, _ = load_edit(ROOT / "checkpoints" / "edits" / "eyes_blue")
    big, _ = load_edit(ROOT / "checkpoints" / "edits" / "eyes_big")
    cams, ws = eval_cameras(synth)[:2], latents(synth, [5]).expand(2, -1, -1).contiguous()
    out = {}
    with torch.no_grad():
        for name, edits in {"blue": [blue], "blue_big": [blue, big]}.items():
            out[name] = LocalEditor(synth, edits).render(ws, cams, preset="preview", fast=False,
                                                         generator=torch.Generator().manual_seed(0))
    assert out["blue_big"].mask.shape == out["blue"].mask.shape
    assert (out["blue_big"].mask >= out["blue"].mask - 1e-6).all() and out["blue"].mask.max() > 0.5
    eyes = lambda r: ((r.edited_features[:, 3:9] + 1) / 2).argmax(1).eq(1).sum().item()  # noqa: E731
    assert eyes(out["blue_big"]) > 1.5 * eyes(out["blue"])


def test_a_colour_edit_goes_under_an_earlier_deformation_of_its_part(synth):
    """application_order: an edit without a deformation moves before an earlier one of the same part that has one;
    other parts and the given order otherwise stay. eyes_big then eyes_blue renders exactly as eyes_blue then
    eyes_big, and strengths are still given in the caller's order."""
    from lenerf.editing.editor import application_order
    from lenerf.editing.evaluate import eval_cameras
    from lenerf.synthetic.data import latents
    load = lambda name: load_edit(ROOT / "checkpoints" / "edits" / name)[0]  # noqa: E731
    blue, big, red = load("eyes_blue"), load("eyes_big"), load("hair_red")
    assert application_order([big, blue]) == [1, 0] and application_order([blue, big]) == [0, 1]
    assert application_order([big, red, blue]) == [2, 0, 1] and application_order([big, red]) == [0, 1]
    assert application_order([blue, red]) == [0, 1]
    cams, ws = eval_cameras(synth)[:2], latents(synth, [5]).expand(2, -1, -1).contiguous()
    with torch.no_grad():
        run = lambda edits, s=None: LocalEditor(synth, edits).render(  # noqa: E731
            ws, cams, preset="preview", strengths=s, generator=torch.Generator().manual_seed(0))
        a, b = run([big, blue]), run([blue, big])
        assert torch.equal(a.edited, b.edited) and torch.equal(a.mask, b.mask)
        assert torch.equal(run([big, blue], [1.0, 0.5]).edited, run([blue, big], [0.5, 1.0]).edited)
        assert not torch.equal(run([big, blue], [1.0, 0.5]).edited, a.edited)


def test_eye_colour_fill_tells_which_stack_of_blue_and_big_eyes_is_blue_throughout(synth, monkeypatch):
    """colour_fill (eye_colour_fill until session 38) with an eye-size target: eyes_blue then eyes_big reads the blue
    into the grown eyes.
    Session 23's eyes_big (method.md Eq. 7's blend) applied first left the grown ring its old colour (20 held-out
    heads: 0.84 vs 0.41), so since session 24 the editor applies the colour first either way; session 33's eyes_big
    carries the eyes' own features, so eyes_blue applied after it finds the grown eyes too. The metric tells an eye
    blue only at its centre (eyes_blue with its mask cut at 0.99) from one blue throughout."""
    import lenerf.editing.editor as editor_module
    from lenerf.editing.evaluate import evaluate_edits
    from lenerf.synthetic.data import EVAL_SEED_BASE
    blue, _ = load_edit(ROOT / "checkpoints" / "edits" / "eyes_blue")
    big, _ = load_edit(ROOT / "checkpoints" / "edits" / "eyes_big")
    targets = {"blue": {"eyes": "blue"}, "big": {"eye_size": "big"}}

    def fill(order):
        m, _ = evaluate_edits(synth, [{"blue": blue, "big": big}[k] for k in order], [targets[k] for k in order],
                              ["eyes", "eyes"], heads=2, seed_base=EVAL_SEED_BASE + 70_000,
                              views=[(-0.15, 0.0), (0.15, 0.0)])
        return m["colour_fill_median"]
    good, reordered = fill(("blue", "big")), fill(("big", "blue"))
    assert good > 0.7 and reordered == good, (good, reordered)
    monkeypatch.setattr(editor_module, "application_order", lambda edits: list(range(len(edits))))
    assert fill(("big", "blue")) > 0.7
    blue = dataclasses.replace(blue, threshold=0.99)
    assert fill(("blue", "big")) < good - 0.2


def test_colour_fill_counts_the_part_left_in_the_old_colour(synth):
    """colour_fill of a colour edit: 1 where the edit shows the target's render on the whole part (no mask: the raw
    target everywhere), 0 where it shows the source's (a mask that is nowhere on), and a mask that stops short of
    the part's edge (eyes_blue cut at 0.99) leaves a ring of the old colour."""
    from lenerf.editing.evaluate import evaluate_edits
    from lenerf.synthetic.classifier import load_classifier
    from lenerf.synthetic.data import EVAL_SEED_BASE
    blue, _ = load_edit(ROOT / "checkpoints" / "edits" / "eyes_blue")
    clf = load_classifier()

    def measure(edit):
        m, _ = evaluate_edits(synth, [edit], [{"eyes": "blue"}], ["eyes"], heads=2, seed_base=EVAL_SEED_BASE + 70_000,
                              views=[(-0.15, 0.0), (0.15, 0.0)], classifier=clf)
        return m
    assert measure(dataclasses.replace(blue, use_mask=False))["colour_fill_median"] > 0.99
    assert measure(dataclasses.replace(blue, threshold=1.0))["colour_fill_median"] == 0.0
    shipped, cut = measure(blue), measure(dataclasses.replace(blue, threshold=0.99))
    assert shipped["success_rate"] == 1.0
    assert cut["colour_fill_median"] < shipped["colour_fill_median"] - 0.2, (cut, shipped)


def test_long_then_red_hair_recolours_the_new_strands(synth, monkeypatch):
    """hair_long then hair_red: hair_red's mask joins hair_long's (the hair as edited so far), so the new strands take
    the red of the composed target; with the targets composed but each layer's own mask, hair_red's mask leaves more
    new strands in the source's colour (docs/editing.md, stacked edits; most of them until session 28's package,
    whose mask missed long hair: since session 29 it covers long hair at 3D IoU 0.87, so new strands too)."""
    from lenerf.editing.editor import MaskedBlend
    from lenerf.editing.evaluate import evaluate_edits
    load = lambda name: load_edit(ROOT / "checkpoints" / "edits" / name)[0]  # noqa: E731
    edits, targets = [load("hair_long"), load("hair_red")], [{"hair_length": "long"}, {"hair": "red"}]
    views = [(-0.3, 0.0), (0.3, 0.0)]
    joined, _ = evaluate_edits(synth, edits, targets, ["hair", "hair"], heads=4, views=views)
    monkeypatch.setattr(MaskedBlend, "_joined", lambda self, m: m)
    own, _ = evaluate_edits(synth, edits, targets, ["hair", "hair"], heads=4, views=views)
    # measured 0.93 vs 0.85 (0.88 vs 0.81 read at the source's samples alone, before session 37; session 28's
    # hair_red: 0.83 vs 0.25, asserted with a margin of 0.3; 20 held-out heads with the joined masks: 0.94, 0.88
    # before session 37)
    assert joined["new_part_fill_median"] > max(0.85, own["new_part_fill_median"] + 0.05), (joined, own)


def test_edit_clip_guides_the_mapper_while_clip_gives_the_masks(synth, tmp_path, monkeypatch):
    """edit_clip: the mapper's CLIP loss uses that model, the relevance maps (pseudo-labels) still use ``clip``."""
    import lenerf.editing.trainer as tr
    from lenerf.clip import load_clip
    seen = {"loss": set(), "relevance": set()}
    loss, rel = tr.clip_loss, tr.relevance_maps

    def spy_loss(clip, *a, **k):
        seen["loss"].add(clip.name)
        return loss(clip, *a, **k)

    def spy_rel(clip, *a, **k):
        seen["relevance"].add(clip.name)
        return rel(clip, *a, **k)

    monkeypatch.setattr(tr, "clip_loss", spy_loss)
    monkeypatch.setattr(tr, "relevance_maps", spy_rel)
    out = train_edit(synth, _cfg(steps=1, edit_clip="miniclip-length"), tmp_path / "a", progress=False,
                     clip=load_clip("miniclip"))
    assert seen == {"loss": {"miniclip-length"}, "relevance": {"miniclip"}}
    assert json.loads((out / "edit.json").read_text())["config"]["edit_clip"] == "miniclip-length"
    seen = {"loss": set(), "relevance": set()}
    train_edit(synth, _cfg(steps=1), tmp_path / "b", progress=False)
    assert seen == {"loss": {"miniclip"}, "relevance": {"miniclip"}}


def test_relevance_refine_reaches_the_pseudo_labels(synth, tmp_path, monkeypatch):
    """relevance_refine: the trainer's relevance maps (its pseudo-labels) are refined by the render (refine_maps)
    with that many iterations; the shipped texture edits train with 10, hair_long without (docs/editing.md: with it,
    its new hair was filled 0.80 instead of 0.90)."""
    import lenerf.editing.trainer as tr
    seen, rel = [], tr.relevance_maps

    def spy_rel(*a, **k):
        seen.append(k["refine"])
        return rel(*a, **k)

    monkeypatch.setattr(tr, "relevance_maps", spy_rel)
    train_edit(synth, _cfg(steps=1, relevance_refine=3), tmp_path / "a", progress=False)
    assert seen and set(seen) == {3}
    for name, refine in {"eyes_blue": 10, "lips_green": 10, "hair_red": 10, "hair_long": 0}.items():
        _, info = load_edit(ROOT / "checkpoints" / "edits" / name)
        assert info["config"].get("relevance_refine", 0) == refine


def test_threshold_sweep_with_a_colour_target_picks_the_most_exact_mask_that_fills_the_part(synth, monkeypatch):
    """With a colour target the sweep also renders the edit at each threshold: the colour fill falls and the PSNR
    outside rises as the threshold rises, and the pick is the highest threshold whose fill reaches FILL_GOAL with
    the outside unchanged to the eye (INVISIBLE_PSNR); when none qualifies, the IoU rule as before."""
    import lenerf.editing.evaluate as ev
    edit, _ = load_edit(ROOT / "checkpoints" / "edits" / "eyes_blue")
    kw = dict(heads=2, views=[(-0.3, 0.0), (0.3, 0.0)], thresholds=(0.5, 0.8, 0.95), target={"eyes": "blue"})
    s = ev.threshold_sweep(synth, edit, "eyes", **kw)
    rows = [s["by_threshold"][k] for k in ("0.5", "0.8", "0.95")]
    assert rows[0]["colour_fill"] > rows[1]["colour_fill"] > rows[2]["colour_fill"], rows
    assert rows[0]["psnr_out"] < rows[2]["psnr_out"] and rows[0]["psnr_out"] > ev.INVISIBLE_PSNR, rows
    iou_pick = min(t for t, r in zip((0.5, 0.8, 0.95), rows) if r["iou"] >= max(r["iou"] for r in rows) - 0.01)
    monkeypatch.setattr(ev, "FILL_GOAL", (rows[1]["colour_fill"] + rows[2]["colour_fill"]) / 2)
    s = ev.threshold_sweep(synth, edit, "eyes", **kw)
    assert (s["rule"], s["best_threshold"]) == ("fill", 0.8)
    monkeypatch.setattr(ev, "INVISIBLE_PSNR", rows[2]["psnr_out"] + 1.0)  # nothing is invisible enough
    s = ev.threshold_sweep(synth, edit, "eyes", **kw)
    assert (s["rule"], s["best_threshold"]) == ("iou", iou_pick)


def test_relevance_otsu_cuts_the_pseudo_labels_at_each_maps_otsu_threshold(synth, tmp_path, monkeypatch):
    """relevance_otsu: the trainer's pseudo-labels are 1 where each relevance map reaches its own Otsu threshold, 0
    elsewhere (no quantile, no area prior); without it the Otsu split is not used."""
    import lenerf.editing.trainer as tr
    calls, otsu = [], tr.otsu_thresholds

    def spy(maps, *a, **k):
        t = otsu(maps, *a, **k)
        calls.append((maps, t))
        return t

    monkeypatch.setattr(tr, "otsu_thresholds", spy)
    train_edit(synth, _cfg(steps=1), tmp_path / "a", progress=False)
    assert not calls
    train_edit(synth, _cfg(steps=1, afn_warmup=1, relevance_otsu=True, relevance_binarize=True), tmp_path / "b",
               progress=False)
    assert len(calls) == 2  # one warm-up and one edit step
    maps, t = calls[0]
    labels = tr._pseudo_labels(maps, None, True, otsu=True)
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(labels.bool(), maps >= t.view(-1, 1, 1, 1)) and 0 < labels.mean() < 1


def test_relevance_grow_adds_the_seeds_colour_within_the_wide_cut():
    """grow_labels: the Otsu cut of a map's values inside the wide cut is the seed; pixels of the wide cut join it
    where the render has the seed's colour (long strands beside a cap), not where it has another (the face)."""
    from lenerf.editing.trainer import _pseudo_labels, grow_labels
    rel = torch.zeros(1, 1, 16, 16)
    rel[..., :4, :] = 1.0    # the cap: most relevant
    rel[..., 4:, :8] = 0.4   # long strands: less relevant, same colour as the cap
    rel[..., 4:, 8:] = 0.35  # the face: as relevant as the strands, another colour
    img = torch.full((1, 3, 16, 16), -1.0)
    img[:, 0, :, :8] = 1.0   # red cap and strands (the cap spans the whole top rows)
    img[:, 0, :4, 8:] = 1.0
    img[:, 1, 4:, 8:] = 1.0  # green face
    wide = (rel >= 0.3).float()  # the cap, the strands and the face
    lab = grow_labels(rel, wide, img, 0.2)
    assert lab[..., :4, :].eq(1).all() and lab[..., 4:, :8].eq(1).all() and lab[..., 4:, 8:].eq(0).all()
    # at another resolution the render is resized to the maps'; no pixel outside the wide cut ever joins
    big = torch.nn.functional.interpolate(img, size=64, mode="nearest")
    assert torch.equal(grow_labels(rel, wide, big, 0.2), lab)
    assert not grow_labels(rel, torch.zeros_like(wide), img, 0.2).any()
    # the seed lies inside the wide cut: where a grey backdrop is nearly as relevant as the cap, the whole map's Otsu
    # cut takes both (session 28's first version: the labels were the cap and the backdrop); inside a wide cut of
    # the cap alone the seed and the labels are the cap
    lit = rel.clone()
    lit[..., 4:, 8:] = 0.9  # the face's pixels: now a grey backdrop, nearly as relevant as the cap
    grey = img.clone()
    grey[:, :, 4:, 8:] = 0.1
    cap = (lit >= 0.95).float()
    assert torch.equal(grow_labels(lit, cap, grey, 0.2), cap)
    # through _pseudo_labels: the wide cut is the top 1 - q; without grow the plain top 1 - q
    q = 0.2  # top 80%: cap, strands and part of the face
    assert torch.equal(_pseudo_labels(rel, q, True, images=img, grow=0.2), lab)
    assert not torch.equal(_pseudo_labels(rel, q, True), lab)
    with pytest.raises(ValueError):
        _pseudo_labels(rel, q, True, grow=0.2)
    for bad in (dict(relevance_grow=-0.1), dict(relevance_grow=0.2), dict(relevance_grow=0.2, relevance_quantile=0.5),
                dict(relevance_grow=0.2, relevance_otsu=True)):
        with pytest.raises(Exception, match="relevance_grow|relevance_otsu"):
            _cfg(**bad).validate()


def test_connected_growth_stays_on_the_seeds_region():
    """relevance_grow_connected: a red nose's labels grow over the red nose only, not over the red lips and red hair
    elsewhere in the wide cut; a region joined to the seed through the colour (a neck below a face) still joins,
    however winding the path."""
    from lenerf.editing.trainer import _pseudo_labels, grow_labels
    img = torch.full((1, 3, 16, 16), 0.6)   # skin everywhere
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    parts = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    parts[..., :2, :] = True      # hair
    parts[..., 6:9, 7:9] = True   # nose
    parts[..., 12:13, 5:11] = True  # lips
    img = torch.where(parts, red, img)
    rel = torch.full((1, 1, 16, 16), 0.5)
    rel[..., 6:9, 7:9] = 1.0      # the seed: the nose
    wide = torch.ones_like(rel)   # the wide cut: the whole view
    nose = torch.zeros_like(rel)
    nose[..., 6:9, 7:9] = 1.0
    loose = grow_labels(rel, wide, img, 0.2)
    assert torch.equal(loose.bool(), parts)  # by colour alone: hair, nose and lips
    assert torch.equal(grow_labels(rel, wide, img, 0.2, connected=True), nose)
    # a spiral of the seed's colour from the seed outwards: every pixel of it joins, nothing else does
    spiral = torch.zeros(16, 16, dtype=torch.bool)
    for k in range(0, 8, 2):
        spiral[k, k:16 - k] = spiral[k:16 - k, 15 - k] = True
        spiral[15 - k, k + 2:16 - k] = spiral[k + 2:16 - k, k + 2] = True
    spiral[8, 8] = False
    swirl = torch.where(spiral, red.view(3, 1, 1), torch.full((3, 16, 16), 0.6)).unsqueeze(0)
    seed = torch.full((1, 1, 16, 16), 0.5)
    seed[..., 0, 0] = 1.0
    got = grow_labels(seed, wide, swirl, 0.2, connected=True)
    assert torch.equal(got[0, 0].bool(), spiral)
    assert torch.equal(_pseudo_labels(rel, 0.01, True, images=img, grow=0.2, connected=True), nose)
    with pytest.raises(Exception, match="relevance_grow_connected"):
        _cfg(relevance_grow_connected=True).validate()


def test_relevance_grow_reaches_the_trainers_pseudo_labels(synth, tmp_path, monkeypatch):
    """relevance_grow: the trainer grows its pseudo-labels from the render it computed the maps of (through
    connected pixels only with relevance_grow_connected)."""
    import lenerf.editing.trainer as tr
    seen, grow = [], tr.grow_labels

    def spy(rel, wide, images, distance, connected=False):
        seen.append((images.shape, distance, connected))
        return grow(rel, wide, images, distance, connected)

    monkeypatch.setattr(tr, "grow_labels", spy)
    train_edit(synth, _cfg(steps=1), tmp_path / "a", progress=False)
    assert not seen
    grown = dict(relevance_quantile=0.5, relevance_binarize=True, relevance_grow=0.2)
    train_edit(synth, _cfg(steps=1, **grown), tmp_path / "b", progress=False)
    assert seen and all(d == 0.2 and shape[1] == 3 and not c for shape, d, c in seen)
    seen.clear()
    train_edit(synth, _cfg(steps=1, relevance_grow_connected=True, **grown), tmp_path / "c", progress=False)
    assert seen and all(d == 0.2 and c for _, d, c in seen)


def test_grown_pseudo_labels_fit_short_and_long_hair(synth):
    """eval labels (pseudo_label_table): on training renders the shipped hair_red labels (Otsu seeds grown by colour
    within the top 50%) fit both hair lengths, where one share of each map fits one length only (docs/editing.md,
    `eval labels`, 96 renders, medians: grown 0.93 / 0.93 short / long; the top 40% 0.55 / 0.86; Otsu 0.91 / 0.52)."""
    from lenerf.clip import load_clip
    from lenerf.editing.evaluate import pseudo_label_table
    cfg = EditConfig.from_file(ROOT / "checkpoints" / "edits" / "hair_red.json")
    assert cfg.relevance_grow == 0.2 and cfg.relevance_quantile == 0.5
    clip = load_clip(cfg.clip)
    table = lambda c: pseudo_label_table(synth, c, "hair", heads=16, clip=clip)[0]  # noqa: E731
    grown = table(cfg)
    top40 = table(dataclasses.replace(cfg, relevance_grow=0.0, relevance_quantile=0.6))
    otsu = table(dataclasses.replace(cfg, relevance_grow=0.0, relevance_quantile=None, relevance_otsu=True))

    def iou(t, length):
        return t["by_hair_length"][length]["iou_median"]
    assert grown["by_hair_length"]["short"]["images"] >= 4 and grown["by_hair_length"]["long"]["images"] >= 4
    assert iou(grown, "short") > iou(top40, "short") + 0.2 and iou(grown, "long") > iou(otsu, "long") + 0.2, \
        (grown, top40, otsu)
    assert min(iou(grown, "short"), iou(grown, "long")) > 0.75, grown


def test_eval_labels_cli_measures_a_config_or_a_package(tmp_path):
    """python -m lenerf eval labels: one config (--config FILE or --edit DIR), JSON + contact sheet; bad input is
    refused with a message."""
    def run(*args):
        return subprocess.run([sys.executable, "-m", "lenerf", "--threads", "2", "eval", "labels", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
    r = run("--edit", str(ROOT / "checkpoints" / "edits" / "lips_green"), "--heads", "3", "--out", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "a" / "labels.json").read_text())
    assert m["part"] == "lips" and m["images"] == 3 and 0 <= m["iou_median"] <= 1 and m["resolution"] == 64
    assert (tmp_path / "a" / "contact_sheet.png").exists()
    r = run("--heads", "3", "--out", str(tmp_path / "b"))
    assert r.returncode != 0 and "--config FILE" in r.stderr
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"mask_prompt": "eyes", "edit_prompt": "a face with blue eyes"}))
    r = run("--config", str(cfg), "--heads", "3", "--out", str(tmp_path / "c"))
    assert r.returncode != 0 and "--part" in r.stderr
    r = run("--config", str(cfg), "--part", "eyebrows", "--heads", "3", "--out", str(tmp_path / "c"))
    assert r.returncode != 0 and "unknown part" in r.stderr


def test_shipped_hair_red_mapper_turns_held_out_heads_red_and_keeps_the_rest(synth):
    """hair_red's mapper is guided by miniclip-palette since session 26 (its masks by miniclip): by the world's own
    rule (nearest palette colour) its target latent has red hair on (nearly) every one of 60 held-out heads, whatever
    the source colour (docs/editing.md: 200 of 200; guided by miniclip, 82%), and a red, not the magenta that
    miniclip-color led it to (black hair -> (0.93, 0.0, 0.44); palette red (0.85, 0.18, 0.08)). Its raw target also
    keeps every other attribute on nearly every head (session 26's: 70% of 200; session 29's first package, the
    tighter mask with session 28's lambda_ws 0.001: 74%; shipped with lambda_ws 0.003: 100%)."""
    from lenerf.synthetic.data import EVAL_SEED_BASE, latents
    edit, info = load_edit(ROOT / "checkpoints" / "edits" / "hair_red")
    assert info["config"]["edit_clip"] == "miniclip-palette" and info["clip"] == "miniclip"
    ws = latents(synth, [EVAL_SEED_BASE + 70_000 + h for h in range(60)])
    with torch.no_grad():
        target = edit.target_latent(ws)
        names, source = synth.attribute_names(target), synth.attribute_names(ws)
        rgb = synth.params(target).colors["hair"]
    assert len({n["hair"] for n in source}) == 5  # every source hair colour is among them
    # measured: 60 of 60; session 28's first two packages: 59 (head 15, white hair, went to a salmon (1.0, 0.40,
    # 0.44) the world calls blonde, which the classifier read as red on the rendered edit)
    assert sum(n["hair"] == "red" for n in names) >= 59, [n["hair"] for n in names]
    kept = sum(all(t[k] == s[k] for k in s if k != "hair") for t, s in zip(names, source))
    # measured 60 of 60 (200 of 200); session 28's: 59 of 60 (0.98 of 200); session 26's: 39 of 60 (70.5% of 200);
    # session 29's first package (lambda_ws 0.001): 44 of 60 (eyes green -> brown, skin light -> tan, lips -> green)
    assert kept >= 57, kept
    # measured on these 60 heads: mean (0.966, 0.253, 0.253), red channel >= 0.796 (head 32, black hair), median
    # distance from the palette red 0.242 (session 28's package: (0.98, 0.25, 0.21), 0.23; its bounds were red > 0.8
    # and mean blue < 0.25); the session-25 package: (0.95, 0.03, 0.29), 0.33, green below 0.05 on 82% of the heads
    dist = (rgb - torch.tensor([0.85, 0.18, 0.08])).norm(dim=-1)
    mean = rgb.mean(0)
    assert (rgb[:, 0] > 0.78).all() and mean[1] > 0.15 and mean[2] < 0.26 and dist.median() < 0.25, (mean, dist)


def test_shipped_hair_red_mask_covers_long_and_short_hair(synth):
    """hair_red's mask is supervised on every ray since session 29 (mask_stride 1: its colour-grown pseudo-labels are
    sharp to the pixel, a 2 x 2 block average put half labels along the hair's edges and across the long strands):
    on 8 held-out heads x 2 views its 3D mask matches long and short hair (docs/editing.md, "Every ray supervised";
    20 heads x 8 views: long 0.874, short 0.916)."""
    from lenerf.editing.evaluate import evaluate_edits
    edit, info = load_edit(ROOT / "checkpoints" / "edits" / "hair_red")
    assert info["config"]["mask_stride"] == 1
    m, _ = evaluate_edits(synth, [edit], [{"hair": "red"}], ["hair"], heads=8, views=[(-0.3, 0.0), (0.3, 0.0)])
    # measured: long 0.862, short 0.930; session 28's package (mask_stride 2): 0.760, 0.831
    assert m["hair_iou3d_long_median"] > 0.82 and m["hair_iou3d_short_median"] > 0.88, m
    assert m["psnr_out_median"] > 38, m  # measured 53.1 dB
    # the colour fill by hair length: caps are red throughout (measured 0.999); long heads keep some strands of their
    # colour where the mask is unsure (0.901; docs/editing.md, "Long strands"), and the split tells them apart
    assert m["hair_colour_fill_short_median"] > 0.98, m
    assert 0.8 < m["hair_colour_fill_long_median"] < m["hair_colour_fill_short_median"] - 0.05, m


# measured on these 8 x 2: eyes 0.858 / 103.1 dB, lips 0.862 / 91.5 dB; session 24's packages (stride 2, full
# balance): eyes 0.582 / 80.8 dB, lips 0.768 / 59.8 dB
@pytest.mark.parametrize("name,part,colour,cap,iou,psnr", [("eyes_blue", "eyes", "blue", 4.0, 0.8, 90),
                                                           ("lips_green", "lips", "green", 2.0, 0.82, 80)])
def test_shipped_small_part_masks_fit_their_parts(synth, name, part, colour, cap, iou, psnr):
    """eyes_blue's and lips_green's masks are supervised on every ray with each positive label pixel weighing at
    most `cap` negatives since session 30 (full balance, 32 and 49 for their top 3% / 2%, spread them over the skin
    around the part; stride 2 hid that): on 8 held-out heads x 2 views the 3D masks match the parts
    (docs/editing.md, "Capped balance"; 20 heads x 8 views: 0.891, 0.887) at the threshold of best IoU on their
    calibration heads (eyes 0.85, lips 0.95). Since session 38 the shipped threshold is the highest that fills the
    part (eyes_blue: 0.6, its mask a little larger than the eyes), which keeps the outside unchanged to the eye."""
    from lenerf.editing.evaluate import INVISIBLE_PSNR, evaluate_edits
    from lenerf.synthetic.classifier import load_classifier
    edit, info = load_edit(ROOT / "checkpoints" / "edits" / name)
    assert info["config"]["mask_stride"] == 1 and info["config"]["mask_pos_weight_max"] == cap
    table = info["threshold_calibration"]["by_threshold"]
    best_iou = min(float(t) for t, row in table.items() if row["iou"] >= max(r["iou"] for r in table.values()) - 0.01)

    def measure(threshold):
        m, _ = evaluate_edits(synth, [dataclasses.replace(edit, threshold=threshold)], [{part: colour}], [part],
                              heads=8, views=[(-0.3, 0.0), (0.3, 0.0)], classifier=load_classifier())
        assert m["success_rate"] == 1.0 and m["identity_rate"] == 1.0, m
        return m
    m = measure(best_iou)
    assert m["iou3d_median"] > iou and m["psnr_out_median"] > psnr, m
    shipped = m if edit.threshold == best_iou else measure(edit.threshold)
    # measured: eyes (0.6) 77.2 dB / colour fill 0.993 (at 0.85: 103.1 dB / 0.960); lips (0.95) 91.9 dB / 0.949
    assert shipped["psnr_out_median"] > INVISIBLE_PSNR and shipped["colour_fill_median"] > 0.92, shipped


def test_shipped_lips_green_reads_green_on_every_view_of_its_former_failures(synth):
    """lips_green's mapper is guided by miniclip-color since session 24 (its masks by miniclip, unchanged; it also
    pays for change outside its pseudo-labels): on the three held-out heads whose lips the previous package turned a
    dark olive (0.26, 0.42, 0.02), which the classifier called green on only some of the 8 views (success 90% on 20
    heads), every view now reads green, and the rendered lips are a clear green."""
    from lenerf.editing.evaluate import eval_cameras
    from lenerf.synthetic.classifier import load_classifier
    from lenerf.synthetic.data import EVAL_SEED_BASE, latents
    from lenerf.synthetic.world import ATTRIBUTES, PARTS
    edit, info = load_edit(ROOT / "checkpoints" / "edits" / "lips_green")
    assert info["config"]["edit_clip"] == "miniclip-color" and info["clip"] == "miniclip"
    assert info["config"]["lambda_outside"] == 1.0
    judge, cams, lip = load_classifier(), eval_cameras(synth), PARTS.index("lips") + 1
    green = ATTRIBUTES["lips"].index("green")
    with torch.no_grad():
        for h in (2, 7, 11):
            ws = latents(synth, [EVAL_SEED_BASE + 70_000 + h]).expand(cams.shape[0], -1, -1).contiguous()
            res = LocalEditor(synth, [edit]).render(ws, cams, preset="full", generator=torch.Generator().manual_seed(h))
            assert (judge.predict(res.edited_raw)["lips"] == green).all(), h
            m = (synth.label_image(ws, cams)[0] == lip).unsqueeze(1).float()
            rgb = ((res.edited_raw + 1) / 2 * m).sum((0, 2, 3)) / m.sum()
            # measured (0.12-0.13, 0.62-0.66, 0.03-0.05); the previous package (0.26-0.29, 0.39-0.43, 0.02-0.03)
            assert rgb[1] > 0.55 and rgb[1] > 2 * max(rgb[0], rgb[2]), (h, rgb)


def test_shipped_lips_green_raw_target_keeps_the_rest(synth):
    """lambda_outside_target (session 31): lips_green's raw target latent - what a later edit composes on - turns
    the lips green and keeps every other attribute (the world's truth, no rendering) on held-out heads; the session
    30 package, paid only for its fused render's change, kept them on 35% of 200 (docs/editing.md)."""
    from lenerf.synthetic.data import EVAL_SEED_BASE, latents
    edit, info = load_edit(ROOT / "checkpoints" / "edits" / "lips_green")
    assert info["config"]["lambda_outside_target"] == 1.0
    ws = latents(synth, [EVAL_SEED_BASE + 70_000 + h for h in range(60)])
    with torch.no_grad():
        before, after = synth.attribute_names(ws), synth.attribute_names(edit.target_latent(ws))
    assert all(a["lips"] == "green" for a in after), after
    kept = [all(a[k] == b[k] for k in b if k != "lips") for a, b in zip(after, before)]
    assert all(kept), sum(kept)  # measured 60 of 60 (200 of 200 by eval mapper); session 30's package 19 of 60

def test_eye_size_target_is_judged_by_the_ground_truth(synth):
    """An eye-size target ({"eye_size": "big"}, which no latent reaches) is scored from the edited render's part
    memberships: a deformation fit (in 3D) to eyes scaled x1.5 of the evaluated head succeeds and grows the eye
    pixels into the world's shape of eyes (eye_shape_iou), while the untrained deformation (the identity) does not;
    the change is in the eyes (the fit is loose elsewhere: ~30 dB outside)."""
    from lenerf.editing.editor import Edit, EditModules
    from lenerf.editing.evaluate import evaluate_edits
    from lenerf.editing.trainer import _descriptor_dim
    from lenerf.synthetic.data import EVAL_SEED_BASE, latents
    from lenerf.synthetic.world import SyntheticHeadField
    seed = EVAL_SEED_BASE + 70_000
    ws = latents(synth, [seed])
    torch.manual_seed(0)
    mods = EditModules(synth.num_ws, synth.w_dim, _descriptor_dim(synth), (), deformation=True, dn_xyz_frequencies=6)
    last = mods.attention.net[-1]
    with torch.no_grad():  # m = sigmoid(-logit) = 0: the deformed source everywhere
        last.weight.zero_()
        last.bias.fill_(50.0 / last.bias_gain)
    views = [(-0.3, 0.0), (0.0, 0.0), (0.3, 0.0)]
    before, _ = evaluate_edits(synth, [Edit(mods, texture_only=False)], [{"eye_size": "big"}], ["eyes"], heads=1,
                               seed_base=seed, views=views)
    assert before["success_rate"] == 0 and abs(before["eye_area_ratio_median"] - 1) < 0.05
    assert before["eye_shape_iou_median"] > 0.95  # the world's own eyes: 1.0
    big = SyntheticHeadField(dataclasses.replace(synth.params(ws), eye_scale=torch.full((1,), 1.5)))
    g = torch.Generator().manual_seed(0)
    dx = 0.075 + synth.params(ws).eye_dx.item()
    x = torch.cat([torch.tensor([s * dx, 0.035, 0.188]) + (torch.rand(4000, 3, generator=g) * 2 - 1) * 0.08
                   for s in (1, -1)] + [(torch.rand(8000, 3, generator=g) * 2 - 1) * 0.5]).unsqueeze(0)
    want = big.features(x)[..., 1:].detach()  # colour and memberships (the rest of the scene stays where it is)
    opt = torch.optim.Adam(mods.deformation.parameters(), lr=1e-2)
    src = synth.field(ws)
    for _ in range(200):
        loss = (src.features(mods.deformation(x, ws, ws))[..., 1:] - want).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, _ = evaluate_edits(synth, [Edit(mods, texture_only=False)], [{"eye_size": "big"}], ["eyes"], heads=1,
                              seed_base=seed, views=views)
    assert after["success_rate"] == 1 and after["eye_area_ratio_median"] > 1.5, after
    # grown as the world grows eyes: 0.83 for this loose fit (the shipped eyes_big's bands: 0.53)
    assert after["eye_shape_iou_median"] > 0.75, after
    assert after["psnr_out_median"] > 25 > after["psnr_in_median"] + 5, after  # 29.6 / ~14 dB measured
    assert after["targets"] == [{"eye_size": "big"}] and "target_latent_rate" not in after
    with pytest.raises(InputError, match="unknown target"):
        evaluate_edits(synth, [Edit(mods)], [{"eye_size": "huge"}], ["eyes"], heads=1, views=views)


def _offset_edit(synth, deform_target: bool, offset=(0.03, 0.0, 0.0)):
    """An edit without a mapper whose deformation moves every point by ``offset`` and whose mask is 1 where x > 0."""
    from lenerf.editing import Edit
    from lenerf.editing.editor import EditModules
    from lenerf.editing.trainer import _descriptor_dim
    mods = EditModules(synth.num_ws, synth.w_dim, _descriptor_dim(synth), (), deformation=True).eval()
    mods.deformation.offsets = lambda x, ws, wt: torch.tensor(offset, dtype=x.dtype).expand_as(x)
    mods.attention.forward = lambda desc, x, ws, wt, desc_t=None: (x[..., :1] > 0).to(x.dtype)
    return Edit(mods, texture_only=False, part="eyes", deform_target=deform_target)


def test_deform_target_moves_the_part_inside_the_mask_and_keeps_the_rest_exactly(synth):
    """deform_target: F = (1 - m') F_s(x) + m' F_t(x'), x' = x + T, m' = A(x') (the target, here the source, and the
    mask read at the deformed points: the part carried with its mask), while the attention field's own mask
    (part_mask, the 3D IoU's) stays at x; the default is method.md Eq. 7, F = (1 - m) F_s(x') + m F_t(x). Rendered,
    the pixels whose rays meet no mask are the source's exactly. Stacked after eyes_blue, the deformed target is the
    head as edited so far: the blue-eyed composite at x'."""
    from lenerf.editing.evaluate import eval_cameras
    from lenerf.synthetic.data import latents
    ws = latents(synth, [7])
    pts = torch.rand(1, 4000, 3, generator=torch.Generator().manual_seed(0)) * 0.5 - 0.25
    inside = pts[..., :1] > 0
    shift = torch.tensor([0.03, 0.0, 0.0])
    with torch.no_grad():
        src = synth.field(ws)
        fs, fs_moved = src.features(pts), src.features(pts + shift)
        assert (fs - fs_moved).abs().max() > 0.1
        _, field, layers = LocalEditor(synth, [_offset_edit(synth, True)]).composite_field(ws)
        carried = pts[..., :1] + shift[0] > 0
        assert (carried != inside).any()
        torch.testing.assert_close(field.features(pts), torch.where(carried, fs_moved, fs), rtol=0, atol=1e-6)
        assert torch.equal(layers[0].part_mask(pts), inside.to(pts.dtype))
        _, field, _ = LocalEditor(synth, [_offset_edit(synth, False)]).composite_field(ws)
        torch.testing.assert_close(field.features(pts), torch.where(inside, fs, fs_moved), rtol=0, atol=1e-6)
        # rendered: outside the mask image the edited head is the source's to the last bit of the colour
        cams = eval_cameras(synth)[2:4]
        w2 = ws.expand(2, -1, -1).contiguous()
        r = LocalEditor(synth, [_offset_edit(synth, True)]).render(
            w2, cams, preset="preview", fast=False, generator=torch.Generator().manual_seed(0))
        out = r.mask[:, 0] < 1e-6
        assert 0.1 < out.float().mean() < 0.9
        assert (r.edited_raw - r.source_raw).abs().amax(1)[out].max() < 1e-5
        assert (r.edited_raw - r.source_raw).abs().amax(1)[~out].max() > 0.1
        # after eyes_blue: the deformed target is eyes_blue's composite read at x + T
        blue, _ = load_edit(ROOT / "checkpoints" / "edits" / "eyes_blue")
        _, blue_field, _ = LocalEditor(synth, [blue]).composite_field(ws)
        _, field, layers = LocalEditor(synth, [blue, _offset_edit(synth, True)]).composite_field(ws)
        assert layers[1].union == []  # its target reads eyes_blue's layer elsewhere: no union across it
        want = torch.where(carried, blue_field.features(pts + shift), blue_field.features(pts))
        torch.testing.assert_close(field.features(pts), want, rtol=0, atol=1e-6)


def test_a_deform_target_edit_trains_its_deformation_and_loads_back(synth, tmp_path):
    """A deformation of the target alone (no mapper) that carries the part with its mask: the deformation is trained
    (through the target and the mask read at the deformed points), and the package applies it so (edit.json's config
    -> Edit.deform_target)."""
    kw = dict(deformation=True, texture_only=False, mapper_groups=[], dn_xyz_frequencies=4, deform_target=True,
              afn_warmup=2, lr_deformation=0.01)
    out = train_edit(synth, _cfg(**kw), tmp_path / "d", progress=False)
    edit, info = load_edit(out)
    assert edit.deform_target and info["config"]["deform_target"] is True
    assert edit.modules.deformation.net[-1].weight.abs().max() > 0  # trained (it starts at zero)
    # the edit step reads the attention field with its weights frozen; its own step still trains it
    from lenerf.editing.editor import EditModules
    torch.manual_seed(info["config"]["seed"])
    init = EditModules(**info["module_config"]).attention.state_dict()
    assert any(not torch.equal(v, init[k]) for k, v in edit.modules.attention.state_dict().items())
    assert not load_edit(ROOT / "checkpoints" / "edits" / "hair_long")[0].deform_target
    with pytest.raises(InputError, match="deform_target needs"):
        train_edit(synth, _cfg(deform_target=True), tmp_path / "x", progress=False)  # no deformation network
    with pytest.raises(InputError, match="enlarged_mask does not apply"):
        train_edit(synth, _cfg(**kw, enlarged_mask=True), tmp_path / "x", progress=False)


def test_deform_target_composes_the_same_on_eg3d(tiny_G):
    """The carried blend is generator-agnostic: on EG3D's tiny golden field too, F = F_s(x') where the mask read at
    x' is on and F_s(x) elsewhere, and a render of it matches the source where the mask image is empty."""
    ws = tiny_G.mapping(torch.randn(1, tiny_G.z_dim, generator=torch.Generator().manual_seed(3)),
                        torch.zeros(1, tiny_G.c_dim))
    pts = torch.rand(1, 2000, 3, generator=torch.Generator().manual_seed(0)) * 0.5 - 0.25
    with torch.no_grad():
        src = tiny_G.field(ws)
        fs, fs_moved = src.features(pts), src.features(pts + torch.tensor([0.03, 0.0, 0.0]))
        _, field, _ = LocalEditor(tiny_G, [_offset_edit(tiny_G, True)]).composite_field(ws)
        carried = pts[..., :1] + 0.03 > 0
        torch.testing.assert_close(field.features(pts), torch.where(carried, fs_moved, fs), rtol=0, atol=1e-5)
        c = torch.cat([tiny_G.camera(0.3, 0.0), tiny_G.camera(-0.3, 0.0)])
        r = LocalEditor(tiny_G, [_offset_edit(tiny_G, True)]).render(
            ws.expand(2, -1, -1).contiguous(), c, preset=None, fast=False, generator=torch.Generator().manual_seed(0))
        out = r.mask[:, 0] < 1e-6
        assert out.any() and (r.edited_raw - r.source_raw).abs().amax(1)[out].max() < 1e-4


def test_inside_samples_lie_behind_the_surface_of_the_part_rays():
    """The inside term's samples: behind a positive ray's median-weight depth, within the depth band, where the
    density is high; none on a negative ray or on a ray that meets nothing."""
    from lenerf.editing.trainer import inside_samples
    from lenerf.rendering.marcher import march
    z = torch.linspace(0, 1, 11).view(1, 1, 11, 1).expand(1, 3, 11, 1).contiguous()
    solid = (z >= 0.35) & (z <= 0.85)  # matter at depths 0.4 ... 0.8
    sigma = torch.where(solid, torch.tensor(100.0), torch.tensor(-20.0))
    sigma[:, 2] = -20.0  # the third ray meets nothing
    _, _, w, _ = march(torch.zeros(1, 3, 11, 3), sigma, z)
    positive = torch.tensor([[True, False, True]])
    idx, valid = inside_samples(w, z, sigma, positive, depth=0.35, count=5, generator=torch.Generator().manual_seed(0))
    assert idx.shape == valid.shape == (1, 5)
    # the surface is at 0.3 (the interval 0.3-0.4 holds the ray's weight): inside are 0.4, 0.5, 0.6 of ray 0
    assert sorted(idx[valid > 0].tolist()) == [4, 5, 6] and valid.sum() == 3
    idx, valid = inside_samples(w, z, sigma, positive, depth=10.0, count=2, generator=torch.Generator().manual_seed(0))
    assert valid.sum() == 2 and set(idx.tolist()[0]) <= {4, 5, 6, 7, 8}  # at most count, drawn among 0.4 ... 0.8
    positive[0, 0] = False
    assert inside_samples(w, z, sigma, positive, 0.35, 5)[1].sum() == 0


def test_the_inside_term_fits_the_mask_behind_the_surface_in_mask_steps(synth, tmp_path):
    """lambda_inside: logged in the mask steps of a geometry edit, it changes the attention field it trains (same
    seed, other weights; so does inside_negatives); refused for texture edits and without the mask."""
    kw = dict(mask_prompt="hair", edit_prompt="a face with short hair", texture_only=False, enlarged_mask=True,
              steps=2, afn_warmup=1, relevance_quantile=0.6, relevance_binarize=True)
    plain = train_edit(synth, _cfg(**kw), tmp_path / "plain", progress=False)
    inside = train_edit(synth, _cfg(lambda_inside=1.0, **kw), tmp_path / "inside", progress=False)
    rows = [json.loads(line) for line in (inside / "train_log.jsonl").read_text().splitlines()]
    assert all(0 < r["afn_inside"] <= 1 for r in rows)
    assert all("afn_inside" not in json.loads(line) for line in (plain / "train_log.jsonl").read_text().splitlines())
    both = train_edit(synth, _cfg(lambda_inside=1.0, inside_negatives=0.3, **kw), tmp_path / "both", progress=False)
    a, b, c = (load_file(d / "modules.safetensors") for d in (plain, inside, both))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("attention."))
    assert any(not torch.equal(b[k], c[k]) for k in a if k.startswith("attention."))
    for bad in (dict(lambda_inside=-1.0), dict(lambda_inside=1.0), dict(lambda_inside=1.0, texture_only=False,
                                                                         use_mask=False),
                dict(inside_negatives=0.1, texture_only=False),
                dict(lambda_inside=1.0, texture_only=False, inside_negatives=-1.0)):
        with pytest.raises(InputError, match="lambda_inside"):
            _cfg(**bad).validate()
    with pytest.raises(InputError, match="inside_depth"):
        _cfg(inside_depth=0.0).validate()
