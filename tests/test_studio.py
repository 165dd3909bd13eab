"""The app's engine without a UI: input validation, the edit catalogue, previews, the device gate and the queue."""
import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lenerf.errors import InputError
from lenerf.editing import EditConfig
from lenerf.studio import ComputeGate, Limits, Studio, TrainingQueue, check_prompt, check_seed, describe_job
from lenerf.studio.configs import MASK_FIELDS, shape_note, variant_source_prompts
from lenerf.studio.jobs import CANCELLED, DONE, FAILED
from lenerf.synthetic import SyntheticHeads

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return Studio(device="cpu", work_dir=tmp_path_factory.mktemp("studio"))


def test_prompt_and_seed_validation():
    assert check_prompt("  blue   eyes ", "p") == "blue eyes"
    for bad, msg in [("", "empty"), ("   ", "empty"), ("x" * 201, "too long"), ("eyes\x00", "control"),
                     (None, "must be text"), (" ".join(["a"] * 80), "tokens")]:
        with pytest.raises(InputError, match=msg):
            check_prompt(bad, "p")
    assert check_seed(7) == 7 and check_seed(7.0) == 7 and check_seed("12") == 12
    for bad in (-1, 2 ** 32, 1.5, "abc", None):
        with pytest.raises(InputError):
            check_seed(bad)


def test_default_falls_back_to_synthetic_with_notice(studio, monkeypatch, tmp_path):
    import huggingface_hub.constants as hc
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("LENERF_CACHE", str(tmp_path))
    gid, notice = studio.choose_default("ffhq")
    assert gid == "synthetic"
    assert "synthetic" in notice and "HF_HUB_OFFLINE" in notice and "huggingface-cli download" in notice
    assert studio.choose_default("synthetic") == ("synthetic", "")


def test_catalogue_and_unknown_edits(studio):
    names = studio.available_edits("synthetic")
    assert "eyes_blue" in names
    assert studio.available_edits("ffhq") == []  # shipped edits are for the synthetic world only
    with pytest.raises(InputError, match="unknown edit 'nope'"):
        studio.preview("synthetic", 0, edits=["nope"])
    with pytest.raises(InputError, match="at most"):
        studio.editor("synthetic", ["eyes_blue"] * 5)
    with pytest.raises(InputError, match="strength"):
        studio.preview("synthetic", 0, edits=["eyes_blue"], strength=9)
    with pytest.raises(InputError, match="yaw"):
        studio.preview("synthetic", 0, yaw=2.0)
    with pytest.raises(InputError, match="frames"):
        studio.turntable("synthetic", 0, frames=1000)
    # the app tells the order the edits are applied in: a colour edit goes under its part's deformation
    assert studio.applied_order("synthetic", ["eyes_big", "eyes_blue"]) == ["eyes_blue", "eyes_big"]
    assert studio.applied_order("synthetic", ["eyes_blue", "hair_red"]) == ["eyes_blue", "hair_red"]


def test_preview_edit_changes_only_with_strength(studio):
    plain = studio.preview("synthetic", 3)
    assert plain.source.shape == (256, 256, 3) and plain.source.dtype == np.uint8
    assert np.array_equal(plain.source, plain.edited) and plain.mask.max() == 0
    v = studio.preview("synthetic", 3, edits=["eyes_blue"])
    assert np.array_equal(v.source, plain.source)
    changed = np.abs(v.edited.astype(int) - v.source.astype(int)).max(-1) > 8
    assert changed.mean() > 0.001  # the eyes changed ...
    assert 0.0 < v.mask.max() <= 1.0 and v.mask.shape == (64, 64)
    zero = studio.preview("synthetic", 3, edits=["eyes_blue"], strength=0.0)
    assert np.abs(zero.edited.astype(int) - zero.source.astype(int)).max() <= 1  # ... and not at strength 0


def test_turntable_videos(studio):
    done = []
    strip, mask = studio.turntable("synthetic", 1, edits=["eyes_blue"], frames=8,
                                   progress=lambda k, n: done.append((k, n)))
    import imageio.v3 as iio
    assert strip.is_file() and mask.is_file()
    frames = iio.imread(strip) if strip.suffix != ".mp4" else np.stack(list(iio.imiter(strip)))
    assert frames.shape[0] == 8 and frames.shape[2] == 3 * frames.shape[1]  # source | edited | mask
    assert done[-1] == (8, 8)


def test_new_edits_take_their_parts_lower_calibrated_threshold(studio, tmp_path, monkeypatch):
    """A new texture edit of a part a shipped recipe masks takes the threshold `eval threshold` calibrated for that
    recipe's package when it is lower than the recipe's (the eyes' masks need 0.6 to leave no ring of the old
    colour: docs/editing.md), else the recipe's own (lips_green's 0.95 fills its own lips only: purple lips would keep
    a rim); so does the recipe itself retrained from the app. Without a calibrated package, the recipe's."""
    from lenerf.studio import configs
    shipped = {name: json.loads((configs.SHIPPED_EDITS / name / "edit.json").read_text())["threshold"]
               for name in ("eyes_blue", "lips_green", "hair_red")}
    assert shipped["eyes_blue"] < 0.8 < shipped["lips_green"] and shipped["hair_red"] == 0.8
    assert studio.make_config("synthetic", "eyes", "a face with green eyes").threshold == shipped["eyes_blue"]
    assert studio.make_config("synthetic", "eyes", "a face with blue eyes", recipe="eyes_blue").threshold \
        == shipped["eyes_blue"]
    assert studio.make_config("synthetic", "lips", "a face with purple lips").threshold == 0.8
    assert studio.make_config("synthetic", "hair", "a face with white hair").threshold == 0.8
    assert studio.make_config("synthetic", "nose", "a face with a blue nose", recipe="eyes_blue").threshold == 0.8
    # a package without a calibration (or none at all) leaves the recipe's threshold
    (tmp_path / "eyes_blue").mkdir()
    (tmp_path / "eyes_blue" / "edit.json").write_text(json.dumps({"threshold": 0.3}))
    monkeypatch.setattr(configs, "SHIPPED_EDITS", tmp_path)
    assert configs.fill_threshold({"threshold": 0.8}, "eyes_blue") == {"threshold": 0.8}
    assert configs.fill_threshold({"threshold": 0.8}, "no_such_edit") == {"threshold": 0.8}


def test_config_from_recipe_and_limits(studio):
    cfg = studio.make_config("synthetic", "hair", "a face with short red hair", recipe="hair_red", steps=7)
    assert cfg.steps == 7 and cfg.source_prompts[0] == "a face with short black hair" and cfg.eval["target"]
    assert cfg.afn_warmup == 7  # the recipe's 300 warm-up steps for 300 edit steps, scaled
    assert studio.make_config("synthetic", "hair", "a face with short red hair", recipe="hair_red").afn_warmup == 300
    assert studio.make_config("synthetic", "eyes", "blue eyes", steps=30).afn_warmup == 30
    new = studio.make_config("synthetic", "nose", "a face with a blue nose")  # no recipe: the shipped edits' settings
    assert (new.loss, new.threshold) == ("dir_diff", 0.8)
    assert (new.edit_clip, new.lambda_outside, new.relevance_refine) == ("miniclip-color", 1.0, 10)
    # any part's size: each map's Otsu cut inside its top half, grown by colour through connected pixels
    assert not new.relevance_otsu and (new.relevance_quantile, new.relevance_binarize) == (0.5, True)
    assert (new.relevance_grow, new.relevance_grow_connected) == (0.2, True)
    assert new.mask_prompt_select == "contrast" and new.lr_mapper == 0.3
    assert (new.mask_stride, new.mask_pos_weight_max) == (1, 4.0)  # every ray, capped balance (docs/app.md)
    # each head's CLIP direction starts at its own nose colour: the world's other nose colours are the sources
    assert new.source_prompts == ["a face with a red nose", "a face with a yellow nose"]
    assert new.source_prompt_select == "best"
    assert not new.deformation and new.dn_xyz_frequencies == 0 and new.lambda_offset == 0
    # a part a shipped texture recipe masks takes that recipe's mask settings, whatever the edit prompt
    assert studio.part_mask_recipe("synthetic", " Eyes ") == "eyes_blue"
    assert studio.part_mask_recipe("synthetic", "hair") == "hair_red"  # hair_long is a shape edit: not its mask
    assert studio.part_mask_recipe("synthetic", "nose") is None and studio.part_masks("ffhq512-128") == {}
    assert studio.part_mask_recipe("synthetic", "eyes", deformation=True) is None
    eyes = studio.make_config("synthetic", "eyes", "a face with green eyes")
    blue = studio.make_config("synthetic", "eyes", "a face with blue eyes", recipe="eyes_blue")
    for k in MASK_FIELDS:
        assert getattr(eyes, k) == getattr(blue, k), k
    assert not eyes.relevance_otsu and eyes.relevance_quantile == 0.97 and eyes.mask_prompt_templates == []
    # ... and keeps the app's edit settings (not the recipe's prompts, sources or mapper rate)
    assert eyes.source_prompts == ["a face with brown eyes", "a face with blue eyes"]  # not the recipe's
    assert eyes.extra_edit_prompts == [] and eyes.lr_mapper == 0.3
    assert eyes.mapper_groups == new.mapper_groups and eyes.edit_clip == new.edit_clip and not eyes.eval
    # with the deformation switch on, a part a shipped shape recipe edits takes all of it (eyes: eyes_big's)
    assert studio.part_shape_recipe("synthetic", " EYES") == "eyes_big"
    assert studio.part_shape_recipe("synthetic", "hair") is None  # hair_long grows by its mapper, no deformation
    # ... and with the geometry (texture-only off) for a prompt that names a shape, the part's recipe that changes its
    # shape without the deformation network (hair: hair_long's; before session 36 the defaults, which grew no hair)
    assert studio.part_shape_recipe("synthetic", "Hair ", deformation=False) == "hair_long"
    assert studio.part_shape_recipe("synthetic", "eyes", deformation=False) is None
    long_hair = studio.make_config("synthetic", "hair", "a face with long hair", texture_only=False, deformation=False)
    assert long_hair == studio.make_config("synthetic", "hair", "a face with long hair", recipe="hair_long")
    assert long_hair.edit_clip is None and long_hair.clip == "miniclip-length" and long_hair.eval
    for other in [studio.make_config("synthetic", "hair", "a face with red hair", texture_only=False),  # no shape
                  studio.make_config("synthetic", "hair", "a face with long hair"),  # texture-only: a note instead
                  studio.make_config("synthetic", "eyes", "a face with big eyes", texture_only=False)]:  # no such recipe
        assert other.clip == "miniclip" and other.mapper_groups == ["fine"], other
    assert studio.make_config("synthetic", "hair", "a face with long hair", recipe="hair_red",
                              texture_only=False) == long_hair  # another prompt for a colour recipe: the same
    geo = studio.make_config("synthetic", "eyes", "a face with big eyes", deformation=True)
    shipped = studio.make_config("synthetic", "eyes", "a face with big eyes", recipe="eyes_big")
    assert geo == shipped and geo.edit_clip == "miniclip-eyes" and geo.deform_target
    small = studio.make_config("synthetic", "eyes", "a face with small eyes", deformation=True, steps=55)
    assert small.source_prompts == ["a face with big eyes"] and small.extra_edit_prompts == []
    assert (small.afn_warmup, small.deform_target, small.eval) == (100, True, {})
    big = studio.make_config("synthetic", "eyes", "big eyes", deformation=True)  # another phrasing of the recipe's
    assert big.source_prompts == ["a face with small eyes"] and big.extra_edit_prompts == [] and not big.eval
    # a part without one: session 23's deformation settings and the mask it was measured with (docs/app.md)
    geo = studio.make_config("synthetic", "nose", "a face with a long nose", deformation=True)
    assert geo.source_prompts == ["a face"]  # a shape edit: the colour variants are no place to start from
    assert (geo.deformation, geo.dn_xyz_frequencies, geo.dn_symmetric, geo.lambda_offset) == (True, 6, True, 3.0)
    assert not geo.texture_only  # unless asked for: as the app's switch, which turns texture-only off
    assert studio.make_config("synthetic", "nose", "a face with a long nose", texture_only=True,
                              deformation=True).texture_only
    assert (geo.mask_stride, geo.mask_pos_weight_max) == (2, None)
    assert geo.relevance_otsu and geo.relevance_quantile is None and not geo.relevance_grow
    cfg2 = studio.make_config("synthetic", "hair", "a face with pink hair", recipe="hair_red")
    assert cfg2.eval is None or not cfg2.eval  # the recipe's ground truth does not apply to another prompt
    # a texture recipe with another edit prompt is a new edit of that colour with the app's settings (hair_red's cosine
    # to "red hair" took 6 of 20 heads to white for "white hair", the app's settings 20; docs/app.md): its rephrasings
    # of its own prompt, its loss and its sources go, its part's mask settings stay (the app's for the part)
    for part, prompt, recipe in [("hair", "a face with white hair", "hair_red"), ("hair", "a face with pink hair",
                                 "hair_red"), ("eyes", "a face with green eyes", "eyes_blue"),
                                 ("lips", "a face with purple lips", "lips_green"),
                                 ("nose", "a face with a blue nose", "eyes_blue")]:  # another part: that part's
        assert studio.make_config("synthetic", part, prompt, recipe=recipe) == studio.make_config(
            "synthetic", part, prompt), (part, prompt, recipe)
    # (its own rephrasings are its own colour: the recipe stays, for that prompt)
    long_red = studio.make_config("synthetic", "hair", "a face with long red hair", recipe="hair_red")
    assert (long_red.loss, long_red.edit_clip, long_red.extra_edit_prompts) == ("default", "miniclip-palette", [])
    assert studio.make_config("synthetic", "eyes", "blue eyes", recipe="eyes_blue").lr_mapper == blue.lr_mapper
    white = studio.make_config("synthetic", "hair", "a face with white hair", recipe="hair_red", steps=40)
    assert (white.loss, white.edit_clip, white.source_prompt_select) == ("dir_diff", "miniclip-color", "best")
    assert white.steps == 40 and all(getattr(white, k) == getattr(cfg, k) for k in MASK_FIELDS if k != "afn_warmup")
    assert white.source_prompts == [f"a face with {c} hair" for c in ("black", "brown", "blonde", "red")]
    green = studio.make_config("synthetic", "eyes", "a face with green eyes", recipe="eyes_blue")
    assert green.extra_edit_prompts == [] and not green.eval
    assert green.source_prompts == ["a face with brown eyes", "a face with blue eyes"]
    assert green.edit_clip == "miniclip-color" and green.lr_mapper == blue.lr_mapper
    # ... and with the deformation switch, as without the recipe (the eyes: eyes_big's settings)
    assert studio.make_config("synthetic", "eyes", "a face with big eyes", recipe="eyes_blue", texture_only=False,
                              deformation=True) == shipped
    # a shape recipe for another part takes that part's mask settings and sources (not the eyes' top-3% cut, the
    # noses' phrases as negative prompts): for the nose, those of a new nose shape edit without a recipe
    nose = studio.make_config("synthetic", "nose", "a face with a big nose", recipe="eyes_big")
    plain = studio.make_config("synthetic", "nose", "a face with a big nose", deformation=True)
    for k in MASK_FIELDS:
        assert getattr(nose, k) == getattr(plain, k), k
    assert nose.negative_mask_prompts == [] and nose.source_prompts == ["a face"]
    assert nose.edit_clip == "miniclip-eyes" and nose.dn_bound_length  # the rest is the recipe's
    # a shape recipe for other prompts keeps its settings (its deformation is what it is for)
    assert small.dn_bound_length and small.edit_clip == "miniclip-eyes"
    lips = studio.make_config("synthetic", "lips", "a face with blue lips", recipe="eyes_blue")
    own = studio.make_config("synthetic", "lips", "a face with blue lips")  # lips_green's mask settings
    assert all(getattr(lips, k) == getattr(own, k) for k in MASK_FIELDS) and lips.relevance_quantile != 0.97
    same = studio.make_config("synthetic", "Eyes", "a face with blue eyes", recipe="eyes_blue")  # mask prompt only
    assert same.extra_edit_prompts == ["blue eyes"] and same.source_prompts == blue.source_prompts and not same.eval
    with pytest.raises(InputError, match="steps"):
        studio.make_config("synthetic", "eyes", "blue eyes", steps=10 ** 6)
    with pytest.raises(InputError, match="recipe"):
        studio.make_config("synthetic", "eyes", "blue eyes", recipe="nope")
    with pytest.raises(InputError, match="mask prompt"):
        studio.make_config("synthetic", "", "blue eyes")


def test_config_cli_writes_the_apps_config(studio, tmp_path):
    out = tmp_path / "c.json"
    r = subprocess.run([sys.executable, "-m", "lenerf", "config", "--generator", "synthetic", "--mask-prompt", "hair",
                        "--edit-prompt", "a face with white hair", "--eval-target", "hair=white", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0 and "note:" not in r.stdout, r.stderr
    written = json.loads(out.read_text())
    assert written.pop("eval") == {"part": "hair", "target": {"hair": "white"}}
    want = dataclasses.asdict(studio.make_config("synthetic", "hair", "a face with white hair"))
    want.pop("eval")
    assert written == want
    bad = subprocess.run([sys.executable, "-m", "lenerf", "config", "--generator", "synthetic", "--mask-prompt",
                          "hair", "--edit-prompt", "white hair", "--eval-target", "hair", "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr
    # an attribute that is not a part needs --eval-part (the eval would not know which part to read)
    part = subprocess.run([sys.executable, "-m", "lenerf", "config", "--generator", "synthetic", "--mask-prompt",
                           "hair", "--edit-prompt", "long hair", "--eval-target", "hair_length=long", "--out",
                           str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert part.returncode != 0 and "--eval-part" in part.stderr and "Traceback" not in part.stderr
    # a texture-only config whose prompt names a shape is written, with a note (as the app's job)
    shape = subprocess.run([sys.executable, "-m", "lenerf", "config", "--generator", "synthetic", "--mask-prompt",
                            "hair", "--edit-prompt", "long hair", "--out", str(out)], capture_output=True, text=True,
                           cwd=ROOT, timeout=300)
    assert shape.returncode == 0 and "note: 'long' asks for a change of shape" in shape.stdout, shape.stderr
    # --geometry is the app's "Texture only" unticked: long hair then takes hair_long's config, field for field
    geo = subprocess.run([sys.executable, "-m", "lenerf", "config", "--generator", "synthetic", "--mask-prompt",
                          "hair", "--edit-prompt", "a face with long hair", "--geometry", "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert geo.returncode == 0 and "note:" not in geo.stdout, geo.stderr
    recipe = json.loads((ROOT / "checkpoints" / "edits" / "hair_long.json").read_text())
    assert json.loads(out.read_text()) == dataclasses.asdict(EditConfig(**recipe))


def test_variant_source_prompts_name_the_parts_other_variants():
    G = SyntheticHeads()
    assert variant_source_prompts(G, "hair", "a face with white hair") == [
        "a face with black hair", "a face with brown hair", "a face with blonde hair", "a face with red hair"]
    # a variant the world does not have: every variant is a source; a phrase that names one: no variants
    assert len(variant_source_prompts(G, "Hair", "a face with pink hair")) == 5
    assert variant_source_prompts(G, "blue eyes", "a face with green eyes") == []
    # other words for the part: the variants' own words decide, not the mask prompt's
    assert variant_source_prompts(G, "eye", "a face with green eyes") == ["a face with brown eyes",
                                                                         "a face with blue eyes"]
    assert variant_source_prompts(G, "mouth", "green lips") == [
        "a face with red lips", "a face with pink lips", "a face with purple lips"]
    assert variant_source_prompts(G, "ears", "a face with big ears") == []  # no variants known

    class Plain:  # a generator that expands nothing (EG3D)
        def expand_prompt(self, prompt):
            return [prompt]
    assert variant_source_prompts(Plain(), "eyes", "blue eyes") == []


def test_gate_lets_interactive_requests_in_between_training_steps():
    gate, stop, steps, seen = ComputeGate(), threading.Event(), [], {}

    def trainer():
        while not stop.is_set():
            with gate.step():
                steps.append(time.perf_counter())
                time.sleep(0.05)
        return len(steps)

    bg = threading.Thread(target=lambda: seen.setdefault("trained", gate.run(trainer, interactive=False)))
    bg.start()
    time.sleep(0.2)
    t0 = time.perf_counter()

    def request():
        seen["waited"], seen["thread"], n = time.perf_counter() - t0, threading.current_thread(), len(steps)
        time.sleep(0.2)
        return len(steps) - n
    assert gate.run(request) == 0  # no training step runs while the request uses the device
    assert "trained" not in seen and seen["waited"] < 0.2  # it ran between two steps (waited about one step)
    stop.set()
    bg.join()
    assert seen["trained"] == len(steps) >= 4
    assert seen["thread"] is not threading.current_thread()  # the compute thread ran it


def test_gate_runs_everything_on_one_thread_interactive_first():
    import contextvars
    gate, order, hold = ComputeGate(), [], threading.Event()
    threads = set()

    def task(tag):
        threads.add(threading.get_ident())
        order.append(tag)
        return tag

    blocker = threading.Thread(target=lambda: gate.run(hold.wait))
    blocker.start()
    time.sleep(0.1)  # the compute thread is busy: the next two wait in line
    later = [threading.Thread(target=gate.run, args=(task, "training"), kwargs={"interactive": False})]
    later[0].start()
    time.sleep(0.05)
    later.append(threading.Thread(target=gate.run, args=(task, "preview")))
    later[1].start()
    time.sleep(0.05)
    hold.set()
    for t in (blocker, *later):
        t.join()
    assert order == ["preview", "training"]  # queued after the training, run before it
    assert gate.run(task, "x") == "x" and len(threads) == 1 and threading.get_ident() not in threads
    # a task may use the gate itself (it runs at once), and context variables go with a task
    assert gate.run(lambda: gate.run(lambda: threading.get_ident())) in threads
    var = contextvars.ContextVar("var", default="unset")
    var.set("caller's")
    assert gate.run(var.get) == "caller's"
    with pytest.raises(InputError, match="from the task"):  # the task's error is raised in the caller
        gate.run(lambda: (_ for _ in ()).throw(InputError("from the task")))
    with pytest.raises(RuntimeError, match="compute thread"):  # a step guard off the compute thread is a bug
        with gate.step():
            pass
    gate._pid = -1  # as in a forked child (a ZeroGPU worker), where the compute thread does not exist
    assert gate.run(threading.get_ident) == threading.get_ident()
    with gate.step():
        pass


def test_queue_one_job_at_a_time_cancel_and_failures():
    q = TrainingQueue(max_pending=2)
    gate = threading.Event()
    order = []

    def slow(job):
        order.append(job.id)
        while not gate.is_set():
            if job.cancel_event.is_set():
                raise KeyboardInterrupt
            time.sleep(0.01)
        return None

    a = q.submit("a", "alice", 10, slow)
    with pytest.raises(InputError, match="already have"):
        q.submit("a2", "alice", 10, slow)
    b = q.submit("b", "bob", 10, slow)
    with pytest.raises(InputError, match="full"):
        q.submit("c", "carol", 10, slow)
    time.sleep(0.1)
    assert a.status == "running" and b.status == "queued" and q.position(b) == 1
    q.cancel(b.id)
    assert b.status == CANCELLED
    q.cancel(a.id)
    assert q.wait(a.id, 5).status == CANCELLED and order == [a.id]

    def boom(job):
        raise RuntimeError("bug")
    c = q.submit("c", "carol", 1, boom)
    assert q.wait(c.id, 5).status == FAILED and "RuntimeError" in c.message
    gate.set()
    d = q.submit("d", "dave", 1, slow)  # the worker survived the failure
    assert q.wait(d.id, 5).status == DONE


def test_train_small_job_appears_in_catalogue(studio):
    job = studio.submit_training("synthetic", "eyes", "a face with blue eyes", owner="t", steps=2)
    job = studio.queue.wait(job.id, 300)
    assert job.status == DONE, job.message
    # the defaults' 1:1 ratio of attention-field warm-up to edit steps: 2 + 2
    assert job.step == job.steps == 4 and "clip" in job.losses and job.preview is not None
    assert job.result.name in studio.available_edits("synthetic") and job.note == ""
    assert describe_job(job).startswith("**Done**")
    info = studio.edit_info(job.result.name)
    assert info["mask_prompt"] == "eyes" and info["steps"] == 2
    v = studio.preview("synthetic", 0, edits=[job.result.name])
    assert v.edited.shape == (256, 256, 3)
    z = studio.export_zip(job.result.name)
    import zipfile
    names = zipfile.ZipFile(z).namelist()
    assert any(n.endswith("edit.json") for n in names) and any(n.endswith("modules.safetensors") for n in names)
    with pytest.raises(InputError, match="HF_TOKEN"):
        studio.push(job.result.name, "me/edit", token="")


def test_a_texture_edit_that_names_a_shape_gets_a_note(studio):
    """'a face with long hair' without the geometry trains minutes for a recolouring: the job says so."""
    long_hair = studio.make_config("synthetic", "hair", "a face with long hair")
    assert long_hair.texture_only and "'long'" in shape_note(long_hair) and "hair_long" in shape_note(long_hair)
    for quiet in [studio.make_config("synthetic", "hair", "a face with white hair"),
                  studio.make_config("synthetic", "hair", "a face with long hair", recipe="hair_long"),
                  studio.make_config("synthetic", "eyes", "a face with big eyes", deformation=True),
                  studio.make_config("synthetic", "hair", "a face with long hair", texture_only=False),
                  # a shipped recipe's own prompts: "short" and "long" are in its source prompts too
                  studio.make_config("synthetic", "hair", "a face with short red hair", recipe="hair_red"),
                  studio.make_config("synthetic", "hair", "a face with long red hair", recipe="hair_red")]:
        assert shape_note(quiet) == "", quiet.edit_prompt
    # the geometry without the deformation network, where the part's shape recipe needs it (eyes_big), gets one too
    eyes = studio.make_config("synthetic", "eyes", "a face with big eyes", texture_only=False)
    assert "eyes_big recipe makes with the deformation network" in shape_note(eyes)
    assert shape_note(studio.make_config("synthetic", "nose", "a face with a big nose", texture_only=False)) == ""
    # ... and the switch where the part's recipe grows it without the network (hair: hair_long; session 34's 940 s
    # training with the switch grew no hair)
    hair = studio.make_config("synthetic", "hair", "a face with long hair", deformation=True)
    assert hair.deformation and "hair_long recipe makes this change of shape without" in shape_note(hair)
    assert shape_note(studio.make_config("synthetic", "nose", "a face with a big nose", deformation=True)) == ""
    # a shape recipe's settings for a shape word its own prompt does not name: the other way is not learnt
    short = studio.make_config("synthetic", "hair", "a face with short hair", texture_only=False)
    assert not short.texture_only and "hair_long recipe's settings, which learn 'long'" in shape_note(short)
    small = studio.make_config("synthetic", "eyes", "a face with small eyes", deformation=True)
    assert "'small': this edit takes the shipped eyes_big recipe's settings" in shape_note(small)
    # the same words typed without the recipe (sources: the hair colours) get it
    assert "'long'" in shape_note(studio.make_config("synthetic", "hair", "a face with long red hair"))
    assert "deformation network" in shape_note(studio.make_config("synthetic", "eyes", "a face with Big, blue eyes"))
    eg3d = EditConfig("eyes", "a face with small eyes", generator="ffhq")
    assert "untick 'Texture only'" in shape_note(eg3d)
    # comparatives name a shape too (session 41): the texture-only note; with the geometry the part's shape recipe,
    # which learns the change a comparative of its own prompt asks for (session 42): its destination is no start,
    # its own prompts guide too, and no note (measured: 'longer hair' and 'bigger eyes' reach long hair / big eyes)
    longer = studio.make_config("synthetic", "hair", "a face with longer hair")
    assert longer.texture_only and shape_note(longer).startswith("'longer' asks for a change of shape")
    longer_geo = studio.make_config("synthetic", "hair", "a face with longer hair", texture_only=False)
    assert longer_geo.clip == "miniclip-length" and not longer_geo.texture_only  # hair_long's settings
    assert longer_geo.source_prompts == ["a face with short hair"]  # not "a face with long hair" too (session 41)
    assert longer_geo.extra_edit_prompts == ["a face with long hair", "long hair"] and shape_note(longer_geo) == ""
    bigger = studio.make_config("synthetic", "eyes", "a face with Bigger eyes", deformation=True)
    assert bigger.source_prompts == ["a face with small eyes"] and shape_note(bigger) == ""
    assert bigger.extra_edit_prompts == ["a face with big eyes", "big eyes"]
    # another prompt with a comparative: MiniCLIP was never taught comparatives, say the base word
    red = studio.make_config("synthetic", "hair", "a face with longer red hair", texture_only=False)
    assert red.extra_edit_prompts == [] and red.source_prompts == ["a face with short hair"]
    assert shape_note(red).startswith("'longer': the synthetic world's MiniCLIPs were never taught comparatives")
    assert "say 'long'" in shape_note(red) and "other way" not in shape_note(red)
    shorter = studio.make_config("synthetic", "hair", "a face with shorter hair", texture_only=False)
    assert shorter.source_prompts == ["a face with long hair"] and shorter.extra_edit_prompts == []
    assert "say 'short'" in shape_note(shorter) and "which learn 'long'. The other way" in shape_note(shorter)
    assert "untick 'Texture only'" in shape_note(EditConfig("hair", "a face with longer hair", generator="ffhq"))
    q = TrainingQueue()
    job = q.submit("x", "me", 3, lambda j: Path("."), note=shape_note(long_hair))
    assert "'long' asks for a change of shape" in describe_job(job)  # queued, running or done: it is shown
    job = q.wait(job.id, 10)
    assert job.status == DONE and job.note in describe_job(job)


def test_limits_are_configurable(tmp_path):
    s = Studio(device="cpu", work_dir=tmp_path, limits=Limits(max_steps=5))
    with pytest.raises(InputError, match="between 1 and 5"):
        s.make_config("synthetic", "eyes", "blue eyes", steps=6)


def test_fast_edit_path_matches_the_plain_path(studio):
    import torch
    ed = studio.editor("synthetic", ["eyes_blue", "hair_red"][:1 + ("hair_red" in studio.available_edits("synthetic"))])
    ws = studio.latent("synthetic", 3, 1.0)
    c = ed.G.camera(0.2, 0.1)
    with torch.no_grad():
        a = ed.render(ws, c, generator=torch.Generator().manual_seed(0), fast=True)
        b = ed.render(ws, c, generator=torch.Generator().manual_seed(0), fast=False)
    assert torch.equal(a.source, b.source)
    assert (a.edited - b.edited).abs().max() < 2e-3  # only samples with ray weight <= 1e-4 / mask <= 1e-3 differ
    assert (a.mask - b.mask).abs().max() < 1e-3


def test_fc_stack_inference_equals_the_layers():
    import torch
    from lenerf.eg3d.layers import FullyConnectedLayer, fc_stack_inference
    torch.manual_seed(0)
    net = torch.nn.Sequential(FullyConnectedLayer(7, 16, activation="lrelu", lr_multiplier=0.5, bias_init=0.3),
                              FullyConnectedLayer(16, 16, activation="lrelu"), FullyConnectedLayer(16, 2))
    x = torch.randn(5, 9, 7)
    with torch.no_grad():
        assert torch.allclose(fc_stack_inference(net, x), net(x), atol=1e-5, rtol=1e-5)
        # a factor the input still owes (a preceding lrelu's sqrt 2) is folded into the first matrix
        assert torch.allclose(fc_stack_inference(net, x, carry=2 ** 0.5), net(x * 2 ** 0.5), atol=1e-5, rtol=1e-5)
