"""End to end: ``python app.py`` on a local port, driven by gradio_client and by a real (headless) browser."""
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def client(app_server):
    return gradio_client.Client(app_server, verbose=False)


def _img(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_generate_edit_turntable_and_errors(client):
    # generate (no edit): source == edited
    src, edt, msk, info = client.predict("synthetic", 5, 0.7, 0.0, 0.0, [], 1.0, api_name="/preview")
    assert "no edit" in info and _img(src).shape == (256, 256, 3)
    assert np.array_equal(_img(src), _img(edt))
    # apply a shipped edit
    src, edt, msk, info = client.predict("synthetic", 5, 0.7, 0.2, 0.0, ["eyes_blue"], 1.0, api_name="/preview")
    assert "1 edit(s)" in info
    diff = np.abs(_img(edt).astype(int) - _img(src).astype(int)).max(-1)
    assert (diff > 8).mean() > 0.001 and not np.array_equal(_img(msk), _img(src))
    # turntable with progress, two videos
    video, mask_video, info = client.predict("synthetic", 5, 0.7, ["eyes_blue"], 1.0, 8, api_name="/turntable")
    v = video["video"] if isinstance(video, dict) else video
    assert Path(v).is_file() and Path(v).stat().st_size > 1000 and "8 frames" in info
    # clear messages, never a traceback
    for args, msg in [(("synthetic", 5, 0.7, 0.0, 0.0, ["no_such_edit"], 1.0),
                       "unknown edit|not in the list of choices"),
                      (("synthetic", -3, 0.7, 0.0, 0.0, [], 1.0), "seed|less than minimum"),
                      (("nowhere", 5, 0.7, 0.0, 0.0, [], 1.0), "unknown generator")]:
        with pytest.raises(Exception, match=msg) as e:
            client.predict(*args, api_name="/preview")
        assert "Traceback" not in str(e.value)


def test_train_in_background_then_use_the_edit(client):
    # "Steps" starts empty: the config's own count (with 300 in it, the deformation switch on "eyes" trained
    # eyes_big's config for 300 + 545 warm-up steps instead of 110 + 200)
    steps = [c for c in client.config["components"] if c.get("props", {}).get("elem_id") == "steps"]
    assert len(steps) == 1 and steps[0]["props"].get("value") is None  # (a None value is left out)
    # so is the training strength (until session 37 a slider that always sent 1.0 over the config's own)
    strength = [c for c in client.config["components"] if c.get("props", {}).get("elem_id") == "train-strength"]
    assert len(strength) == 1 and strength[0]["props"].get("value") is None
    # a recipe fills in its prompts and switches (eyes_big: the deformation, with the geometry), empties "Steps"
    got = client.predict("synthetic", "eyes_big", api_name="/recipe")
    assert list(got) == ["eyes", "a face with big eyes", None, None, False, True]  # ... and the strength
    assert list(client.predict("synthetic", "hair_long", api_name="/recipe"))[4:] == [False, False]
    with pytest.raises(Exception, match="empty"):
        client.predict("synthetic", "(new edit)", "", "blue eyes", 2, 1.0, True, False, api_name="/train")
    with pytest.raises(Exception, match="steps|greater than maximum"):
        client.predict("synthetic", "(new edit)", "eyes", "blue eyes", 99999, 1.0, True, False, api_name="/train")
    job = client.submit("synthetic", "(new edit)", "eyes", "a face with green eyes", 2, None, True, False,
                        api_name="/train")  # strength empty: the config's
    status, preview, edits, trained, _ = job.result(timeout=600)  # (the job id is session state)
    assert status.startswith("**Done**"), status
    name = trained["value"] if isinstance(trained, dict) else trained
    assert name.startswith("a_face_with_green_eyes")
    # the edit is usable and downloadable at once
    _, edt, _, info = client.predict("synthetic", 1, 0.7, 0.0, 0.0, [name], 1.0, api_name="/preview")
    assert "1 edit(s)" in info
    z = client.predict(name, api_name="/download")
    assert str(z).endswith(".zip") and Path(z).stat().st_size > 1000
    import json
    import zipfile
    with zipfile.ZipFile(z) as zf:
        meta = json.loads(zf.read(next(n for n in zf.namelist() if n.endswith("edit.json"))))
    assert meta["config"]["steps"] == 2 and meta["config"]["strength"] == 1.0
    assert client.predict(api_name="/cancel").startswith("**Done**")  # cancelling a finished job changes nothing


def test_photo_tab_inverts_and_edits(client):
    pytest.importorskip("cv2")
    from gradio_client import handle_file
    root = Path(__file__).resolve().parents[1]
    with pytest.raises(Exception, match="no face found"):
        client.predict("synthetic", handle_file(str(root / "examples" / "chelsea_cat.png")), "human", "auto", 20,
                       api_name="/invert")
    aligned, rec, notes = client.predict("synthetic", handle_file(str(root / "examples" / "astronaut.png")), "human",
                                         "auto", 20, api_name="/invert")
    assert _img(aligned).shape == (512, 512, 3) and "PSNR" in notes and "perceptual" in notes
    assert re.search(r"\(\d+ steps, (all steps run|stopped early: the loss no longer fell|stopped at the time budget),",
                     notes), notes  # why it stopped, in words (it read "20 steps, steps")
    src, edt, msk = client.predict("synthetic", 0.0, 0.0, ["eyes_blue"], 1.0, api_name="/photo_preview")
    assert _img(src).shape == _img(edt).shape == (256, 256, 3)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_browser_applies_an_edit_and_screenshots(app_server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    out = Path(os.environ.get("LENERF_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(app_server, wait_until="domcontentloaded")
        page.get_by_text("synthetic heads", exact=False).first.wait_for(timeout=60_000)  # the fallback notice
        page.locator("#seed input").fill("7")
        page.locator("#edit-picker input").click()
        page.get_by_role("option", name="eyes_blue").click()
        page.keyboard.press("Escape")
        page.locator("#render-btn").click()
        page.locator("#render-info").get_by_text("1 edit(s)").wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        shot = page.screenshot(path=str(out / "edit_tab.png"), full_page=True)
        assert len(shot) > 20_000
        # photo tab: upload, invert (few steps), apply an edit
        page.get_by_role("tab", name="Your photo").click()
        root = Path(__file__).resolve().parents[1]
        page.locator("#photo-input input[type=file]").set_input_files(str(root / "examples" / "astronaut.png"))
        page.locator("#inv-steps input[type=number]").fill("20")
        page.locator("#inv-steps input[type=number]").press("Enter")
        page.wait_for_timeout(1000)
        page.locator("#invert-btn").click()
        page.locator("#invert-notes").get_by_text("PSNR").wait_for(timeout=120_000)
        page.locator("#photo-edit-picker input").click()
        page.get_by_role("option", name="eyes_blue").click()
        page.keyboard.press("Escape")
        page.locator("#photo-render-btn").click()
        page.locator("#photo-source img").wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "photo_tab.png"), full_page=True)
        # train tab: a recipe sets the switches; the deformation switch turns "texture only" off
        page.get_by_role("tab", name="Train").click()
        page.get_by_text("Advanced").first.click()
        texture, deform = page.locator("#texture-only input"), page.locator("#deformation input")
        texture.wait_for(timeout=10_000)
        assert texture.is_checked() and not deform.is_checked()
        # the empty number fields show empty, not 0 (until session 37 the browser drew them as 0 and sent it: a new
        # edit's training failed with "less than minimum" unless a recipe had emptied "Steps")
        expect = sync_api.expect
        expect(page.locator("#steps input")).to_have_value("", timeout=10_000)
        expect(page.locator("#train-strength input")).to_have_value("", timeout=10_000)
        page.locator("#steps input").fill("50")  # typed values ...
        page.locator("#train-strength input").fill("2")
        page.locator("#train-strength input").press("Enter")
        page.locator("#recipe input").click()
        page.get_by_role("option", name="eyes_big").click()
        expect(deform).to_be_checked(timeout=10_000)
        expect(texture).not_to_be_checked()
        # ... give way to the recipe's own count and strength
        expect(page.locator("#steps input")).to_have_value("")
        expect(page.locator("#train-strength input")).to_have_value("")
        page.locator("#recipe input").click()
        page.get_by_role("option", name="eyes_blue").click()
        expect(texture).to_be_checked(timeout=10_000)
        expect(deform).not_to_be_checked()
        deform.click()
        expect(texture).not_to_be_checked(timeout=10_000)
        # ... start a recipe, watch it run, cancel it
        page.locator("#recipe input").click()
        page.get_by_role("option", name="hair_red").click()
        page.get_by_text("Where to edit").first.wait_for(timeout=10_000)
        page.wait_for_timeout(500)
        page.locator("#train-btn").click()
        # the status shows a bold "Training" and a progress bar whose text also says "training ..."
        page.locator("#job-status").get_by_text("Training", exact=True).first.wait_for(timeout=120_000)
        # training has made progress (the status is polled, so any step >= 1: a fast step may skip a given one)
        page.locator("#job-status").get_by_text(re.compile(r"step [1-9]\d*/")).first.wait_for(timeout=120_000)
        # the progress bar is drawn over the preview only: the status text stays readable (until session 36 Gradio's
        # overlay covered it and the edit package picker). The browser shows a bar between an update and the next
        # one, so wait for it (asserted at one instant, it failed once in CI in session 36, before the app sent the
        # bar after the outputs)
        page.locator("#job-preview .progress-text").first.wait_for(timeout=30_000)
        assert page.locator("#job-status .progress-text").count() == 0
        page.screenshot(path=str(out / "train_tab.png"), full_page=True)
        page.locator("#cancel-btn").click()
        page.locator("#job-status").get_by_text("Cancelled").first.wait_for(timeout=60_000)
        # a new edit without a recipe, the fields left empty, starts too (in session 36 the browser sent "Steps" as 0:
        # "less than minimum")
        page.locator("#recipe input").click()
        page.get_by_role("option", name="(new edit)").click()
        page.get_by_label("Where to edit (mask prompt)").fill("lips")
        page.get_by_label("What to do (edit prompt)").fill("a face with green lips")
        page.locator("#train-btn").click()
        page.locator("#job-status").get_by_text(re.compile(r"a_face_with_green_lips.*step")).first.wait_for(
            timeout=120_000)
        assert "less than minimum" not in page.content()
        page.locator("#cancel-btn").click()
        page.locator("#job-status").get_by_text("Cancelled").first.wait_for(timeout=60_000)
        browser.close()
    img = np.asarray(Image.open(out / "edit_tab.png").convert("RGB"))
    assert img.std() > 10  # not a blank page


def test_every_example_changes_its_head():
    """The Edit tab's examples: each names shipped edits, and its head (seed, truncation 1) does not already carry a
    target of its edits (until session 24 the lips example used a head whose lips were green already)."""
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from app import EXAMPLES
    from lenerf.pipeline import latent_from_seed
    from lenerf.synthetic import SyntheticHeads
    root = Path(__file__).resolve().parents[1] / "checkpoints" / "edits"
    G = SyntheticHeads()
    for seed, _, names in EXAMPLES:
        source = G.attribute_names(latent_from_seed(G, seed, 1.0))[0]
        for name in names:
            target = json.loads((root / name / "edit.json").read_text())["config"]["eval"]["target"]
            for k, v in target.items():
                assert k == "eye_size" or source[k] != v, (seed, name, source)
