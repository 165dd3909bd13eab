"""LENeRF Studio: the Gradio app and Hugging Face Space entry point, a thin UI over ``lenerf.studio.Studio``.

Run locally with ``python app.py`` (options: ``--generator ID_OR_PATH``, ``--port``, ``--share``); on a Space the
same file is the entry point (see the README's front matter).
"""
from __future__ import annotations

import argparse
import functools
import inspect
import logging
import os
import time

import gradio as gr

from lenerf.editing.editor import REORDER_REASON
from lenerf.errors import LENeRFError
from lenerf.runtime import tune_allocator
from lenerf.studio import Studio, describe_job

log = logging.getLogger("lenerf.app")
ROOT = os.path.dirname(os.path.abspath(__file__))

try:  # ZeroGPU on Hugging Face Spaces: borrow a GPU per request; a no-op everywhere else
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn=None, **_):
        return fn if fn is not None else (lambda f: f)

CUSTOM = "(new edit)"
#: under the recipe picker: what a recipe does with other prompts (lenerf.studio.configs.make_config; docs/app.md:
#: hair_red's recipe for white hair reached white on 30% of 20 held-out heads, the app's own settings on 100%)
RECIPE_HINT = ("A colour recipe with another edit prompt trains with the app's settings for that colour (the "
               "recipe's are tuned to its own); a shape recipe (eyes_big, hair_long) keeps its settings.")
#: the Edit tab's examples (seed, yaw, shipped edits; truncation 1): each seed's head differs from every target
#: (tests/test_app.py), so each example shows a change
EXAMPLES = [(7, 0.0, ["eyes_blue"]), (1, 0.3, ["eyes_blue", "hair_red"]), (11, -0.3, ["lips_green"]),
            (1, 0.3, ["hair_long"]), (3, 0.0, ["eyes_blue", "eyes_big"])]
#: under the deformation switch: a shape edit needs a CLIP that sees the shape (docs/app.md: before session 34 a
#: "big eyes" edit with the switch on recoloured the eyes and grew none of 20 held-out heads' eyes; now "eyes" take
#: eyes_big's settings, lenerf.studio.configs.part_shape_recipe; since session 36 "hair" with texture-only off and a
#: prompt that names a shape takes hair_long's)
DEFORMATION_HINT = ("A change of shape needs a CLIP that sees it. Synthetic world: with this on, 'eyes' take the "
                    "eyes_big recipe's settings (its MiniCLIP knows eye sizes); long hair grows without this network: "
                    "leave it off and untick 'Texture only' ('hair' with a length then takes the hair_long recipe's "
                    "settings); no MiniCLIP sees other parts' shapes. Switching this on switches 'Texture only' off")
#: under "Steps": empty = the count of the config the prompts and switches give (a number overrides it and scales the
#: warm-up with it). Until session 36 the field held 300, so the deformation switch on "eyes" trained eyes_big's
#: config for 300 steps and 545 warm-up steps instead of 110 and 200 (2.7 times as long, docs/app.md)
STEPS_HINT = ("Empty: the step count of the config the recipe, prompts and switches give (the job's status shows "
              "it); a number overrides it, and the warm-up scales with it")
#: under "Strength during training": empty = the config's strength (as "Steps"; until session 37 a slider that always
#: sent 1.0, which would have overridden a recipe's own strength)
STRENGTH_HINT = ("Empty: the config's own edit strength (the residual's scale while training; every shipped recipe "
                 "has 1.0); a number in [0.1, 3] overrides it")
#: under the edit pickers: stacked edits of one part combine (docs/editing.md, stacked edits)
STACK_HINT = ("Edits of the same part combine, in either order: red hair and long hair give long red hair, blue "
              "eyes and big eyes big blue eyes (a colour edit goes under its part's change of shape)")


def _mask_hint(S) -> str:
    """Under the mask prompt: which parts reuse a shipped texture recipe's mask (Studio.part_masks, docs/app.md)."""
    parts = S.part_masks("synthetic")
    if not parts:
        return "A new edit's mask is learnt from CLIP's relevance maps for this prompt"
    named = ", ".join(f"'{p}' ({r})" for p, r in parts.items())
    return (f"Synthetic world: {named} reuse that recipe's mask settings (tighter masks, measured); "
            "other parts learn theirs with the defaults")


def _ui_errors(fn):
    """Show user errors as a message and bugs as a short note (the traceback goes to the server log only)."""
    def convert(e: Exception) -> gr.Error:
        if isinstance(e, gr.Error):
            return e
        if isinstance(e, LENeRFError):
            return gr.Error(str(e))
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Something went wrong ({type(e).__name__}). The details are in the server log.")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*a, **k):
            try:
                yield from fn(*a, **k)
            except Exception as e:
                raise convert(e) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*a, **k):
        try:
            return fn(*a, **k)
        except Exception as e:
            raise convert(e) from None
    return wrapper


def build_ui(studio: Studio, default_generator: str, notice: str = "") -> gr.Blocks:
    S = studio

    @_ui_errors
    def on_generator(spec):
        G = S.generator(spec)
        edits = S.available_edits(spec)
        recipes = [CUSTOM, *S.recipes(spec)]
        return (gr.update(choices=edits, value=[]), gr.update(choices=recipes, value=CUSTOM),
                gr.update(choices=edits, value=edits[0] if edits else None), float(G.default_truncation),
                gr.update(choices=edits, value=[]), "")

    @_ui_errors
    @gpu(duration=60)
    def preview(spec, seed, truncation, yaw, pitch, edits, strength):
        t = time.perf_counter()
        v = S.preview(spec, seed, truncation, yaw, pitch, edits, strength)
        note = (f"{len(edits)} edit(s) at strength {strength:g}" if edits else "no edit picked: showing the source")
        order = S.applied_order(spec, edits) if edits else []
        if order != [e for e in edits if e]:
            note += f" (applied as {' then '.join(order)}: {REORDER_REASON})"
        return v.source, v.edited, v.overlay, f"{note} - rendered in {time.perf_counter() - t:.2f} s"

    @_ui_errors
    @gpu(duration=120)
    def turntable(spec, seed, truncation, edits, strength, frames, progress=gr.Progress()):
        t = time.perf_counter()
        strip, mask = S.turntable(spec, seed, truncation, edits, strength, frames,
                                  progress=lambda k, n: progress((k, n), desc="rendering turntable", unit="frames"))
        return str(strip), str(mask), f"{int(frames)} frames in {time.perf_counter() - t:.1f} s"

    @_ui_errors
    def invert_photo(spec, photo, kind, crop, steps, progress=gr.Progress()):
        name, aligned, rec, notes = S.invert_photo(
            spec, photo, kind, crop, steps,
            progress=lambda k, n: progress((k, n), desc="inverting the photo", unit="steps"))
        return name, aligned, rec, "\n".join(f"* {n}" for n in notes)

    @_ui_errors
    @gpu(duration=60)
    def photo_preview(spec, inversion, yaw, pitch, edits, strength):
        if not inversion:
            raise gr.Error("Invert a photo first.")
        v = S.preview(spec, 0, 1.0, yaw, pitch, edits, strength, inversion=inversion)
        return v.source, v.edited, v.overlay

    @_ui_errors
    @gpu(duration=120)
    def photo_turntable(spec, inversion, edits, strength, progress=gr.Progress()):
        if not inversion:
            raise gr.Error("Invert a photo first.")
        strip, mask = S.turntable(spec, 0, 1.0, edits, strength, 48, inversion=inversion,
                                  progress=lambda k, n: progress((k, n), desc="rendering turntable", unit="frames"))
        return str(strip), str(mask)

    @_ui_errors
    def on_recipe(spec, recipe):
        """A picked recipe fills in its prompts and switches (the switches override the recipe when training: left as
        they were, `eyes_big` lost its deformation and `hair_long` its geometry) and empties "Steps" and "Strength
        during training", so that the config's own count and strength apply (:data:`STEPS_HINT`)."""
        if recipe == CUSTOM or not recipe:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        cfg = S.make_config(spec, *_recipe_prompts(spec, recipe), recipe=recipe)
        return cfg.mask_prompt, cfg.edit_prompt, None, None, cfg.texture_only, cfg.deformation

    def on_deformation(on):
        """Switching the deformation network on switches "texture only" off (a change of shape needs the geometry)."""
        return gr.update(value=False) if on else gr.update()

    def _recipe_prompts(spec, recipe):
        import json
        base = json.loads(S.recipes(spec)[recipe].read_text())
        return base["mask_prompt"], base["edit_prompt"]

    @_ui_errors
    def train(spec, recipe, mask_prompt, edit_prompt, steps, strength, texture_only, deformation,
              request: gr.Request, progress=gr.Progress()):
        owner = getattr(request, "session_hash", None) or "local"
        job = S.submit_training(spec, mask_prompt, edit_prompt, owner=owner,
                                recipe=None if recipe == CUSTOM else recipe, steps=steps, strength=strength,
                                texture_only=texture_only, deformation=deformation)
        last = None
        while not job.done:  # send an update only when something changed (the training thread needs the GIL)
            state = (job.status, job.step, id(job.preview), S.queue.position(job))
            if state != last:
                preview = job.preview if last is None or state[2] != last[2] else gr.update()
                yield describe_job(job, state[3]), preview, job.id, gr.update(), gr.update(), gr.update()
                # after the yield: the browser draws the bar only until the next update arrives, so a bar sent
                # before the outputs could vanish (a race seen in CI); sent after them it stays until the next step
                progress((job.step, job.steps), desc=f"training '{job.name}'", unit="steps")
                last = state
            time.sleep(1.0)
        edits = S.available_edits(spec)
        picked = job.result.name if job.result is not None else None
        yield (describe_job(job), job.preview, job.id, gr.update(choices=edits),
               gr.update(choices=edits, value=picked or (edits[0] if edits else None)), gr.update(choices=edits))

    @_ui_errors
    def cancel(job_id):
        if not job_id:
            return "No training job to cancel."
        return describe_job(S.queue.cancel(int(job_id)))

    @_ui_errors
    def download(name):
        if not name:
            raise gr.Error("Pick an edit to download.")
        return str(S.export_zip(name))

    @_ui_errors
    def push(name, repo_id):
        if not name:
            raise gr.Error("Pick an edit to upload.")
        return f"Uploaded: {S.push(name, repo_id)}"

    with gr.Blocks(title="LENeRF Studio") as demo:
        gr.Markdown("# LENeRF Studio\nLocal 3D editing of generated heads with CLIP (LENeRF, CVPR'23): pick a "
                    "head, pick or train an edit such as *eyes -> blue eyes*, and see the edit, its 3D attention "
                    "mask and a turntable.")
        notice_md = gr.Markdown(notice, visible=bool(notice), elem_id="notice")
        with gr.Row():
            spec = gr.Dropdown(choices=S.generator_choices(), value=default_generator, allow_custom_value=True,
                               label="Generator (registry id, converted folder, .pkl or Hub repo)", scale=3)
            status = gr.Markdown()
        with gr.Tab("Edit", id="edit") as edit_tab:
            with gr.Row():
                with gr.Column(scale=1):
                    seed = gr.Number(value=0, precision=0, minimum=0, maximum=2 ** 32 - 1, label="Seed", elem_id="seed")
                    trunc = gr.Slider(0.0, 1.0, value=0.7, step=0.05, label="Truncation psi (1 = no truncation)")
                    yaw = gr.Slider(-0.6, 0.6, value=0.0, step=0.05, label="Camera yaw (rad)")
                    pitch = gr.Slider(-0.3, 0.3, value=0.0, step=0.05, label="Camera pitch (rad)")
                    edits = gr.Dropdown(choices=S.available_edits(default_generator), value=[], multiselect=True,
                                        label="Edits (applied in this order)", info=STACK_HINT, elem_id="edit-picker")
                    strength = gr.Slider(-1.0, 3.0, value=1.0, step=0.1, label="Edit strength")
                    render_btn = gr.Button("Render", variant="primary", elem_id="render-btn")
                    frames = gr.Slider(S.limits.min_frames, S.limits.max_frames, value=48, step=8,
                                       label="Turntable frames")
                    tt_btn = gr.Button("Render turntable", elem_id="turntable-btn")
                with gr.Column(scale=3):
                    with gr.Row():
                        src_img = gr.Image(label="Source", type="numpy", interactive=False)
                        edt_img = gr.Image(label="Edited", type="numpy", interactive=False)
                        msk_img = gr.Image(label="3D attention mask", type="numpy", interactive=False)
                    info = gr.Markdown(elem_id="render-info")
                    with gr.Row():
                        tt_video = gr.Video(label="Turntable: source | edited | mask", interactive=False)
                        mask_video = gr.Video(label="3D mask turntable", interactive=False)
        with gr.Tab("Your photo", id="photo"):
            gr.Markdown("Upload a portrait (or a cat with an AFHQ cats generator): the face is found and aligned, "
                        "inverted into the generator (latent + camera), and can then be edited like a generated "
                        "head. Inversion takes a minute or more on a CPU.")
            with gr.Row():
                with gr.Column(scale=1):
                    photo = gr.Image(label="Photo", type="filepath", sources=["upload", "clipboard"],
                                     elem_id="photo-input")
                    kind = gr.Radio(["human", "cat"], value="human", label="Subject")
                    crop = gr.Radio(["auto", "center", "none"], value="auto",
                                    label="Crop (auto = detect and align; center = already a close-up)")
                    inv_steps = gr.Slider(20, S.limits.max_inversion_steps, value=300, step=10,
                                          label="Inversion steps (at most 5 minutes)", elem_id="inv-steps")
                    inv_btn = gr.Button("Invert", variant="primary", elem_id="invert-btn")
                    inv_notes = gr.Markdown(elem_id="invert-notes")
                    inversion = gr.State(None)
                with gr.Column(scale=2):
                    with gr.Row():
                        aligned_img = gr.Image(label="Aligned crop", type="numpy", interactive=False)
                        recon_img = gr.Image(label="Reconstruction", type="numpy", interactive=False)
                    with gr.Row():
                        p_yaw = gr.Slider(-0.6, 0.6, value=0.0, step=0.05, label="Camera yaw (rad)")
                        p_pitch = gr.Slider(-0.3, 0.3, value=0.0, step=0.05, label="Camera pitch (rad)")
                    p_edits = gr.Dropdown(choices=S.available_edits(default_generator), value=[], multiselect=True,
                                          label="Edits (applied in this order)", info=STACK_HINT,
                                          elem_id="photo-edit-picker")
                    p_strength = gr.Slider(-1.0, 3.0, value=1.0, step=0.1, label="Edit strength")
                    with gr.Row():
                        p_render = gr.Button("Render edit", variant="primary", elem_id="photo-render-btn")
                        p_tt = gr.Button("Render turntable")
                    with gr.Row():
                        p_src = gr.Image(label="Source", type="numpy", interactive=False, elem_id="photo-source")
                        p_edt = gr.Image(label="Edited", type="numpy", interactive=False)
                        p_msk = gr.Image(label="3D attention mask", type="numpy", interactive=False)
                    with gr.Row():
                        p_video = gr.Video(label="Turntable: source | edited | mask", interactive=False)
                        p_mask_video = gr.Video(label="3D mask turntable", interactive=False)
            photo_examples = [[os.path.join(ROOT, "examples", "astronaut.png"), "human", "auto"],
                              [os.path.join(ROOT, "examples", "chelsea_cat.png"), "cat", "center"]]
            gr.Examples(photo_examples, [photo, kind, crop], label="Example photos (see examples/README.md)")
        with gr.Tab("Train", id="train"):
            gr.Markdown("Train a new edit: *where* (mask prompt) and *what* (edit prompt). Start from a shipped "
                        "recipe or type your own. Jobs run one at a time in the background; you may leave the page "
                        "and come back: finished edits appear in the Edit tab.")
            with gr.Row():
                with gr.Column():
                    recipe = gr.Dropdown(choices=[CUSTOM, *S.recipes(default_generator)], value=CUSTOM,
                                         label="Recipe", elem_id="recipe", info=RECIPE_HINT)
                    mask_prompt = gr.Textbox(label="Where to edit (mask prompt)", placeholder="eyes", max_lines=1,
                                             info=_mask_hint(S))
                    edit_prompt = gr.Textbox(label="What to do (edit prompt)", placeholder="a face with blue eyes",
                                             max_lines=1)
                    with gr.Accordion("Advanced", open=False):
                        steps = gr.Number(value=None, precision=0, minimum=1, maximum=S.limits.max_steps,
                                          label="Steps", info=STEPS_HINT, elem_id="steps")
                        t_strength = gr.Number(value=None, minimum=0.1, maximum=3.0, step=0.1,
                                               label="Strength during training", info=STRENGTH_HINT,
                                               elem_id="train-strength")
                        texture_only = gr.Checkbox(value=True, label="Texture only (keep the geometry)",
                                                   elem_id="texture-only")
                        deformation = gr.Checkbox(value=False, label="Train the deformation network",
                                                  info=DEFORMATION_HINT, elem_id="deformation")
                    with gr.Row():
                        train_btn = gr.Button("Train", variant="primary", elem_id="train-btn")
                        cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-btn")
                with gr.Column():
                    job_md = gr.Markdown("No training job yet.", elem_id="job-status")
                    job_preview = gr.Image(label="Preview (source | edited | mask)", type="numpy",
                                           interactive=False, elem_id="job-preview")
                    job_id = gr.State(None)
            with gr.Row():
                trained = gr.Dropdown(choices=S.available_edits(default_generator), label="Edit package")
                dl_btn = gr.Button("Download (.zip)")
                dl_file = gr.File(label="Edit package", interactive=False)
            with gr.Row():
                repo = gr.Textbox(label="Hub repo id (owner/name)", max_lines=1)
                push_btn = gr.Button("Push to the Hub", interactive=bool(os.environ.get("HF_TOKEN")))
                push_md = gr.Markdown("" if os.environ.get("HF_TOKEN") else "Pushing needs HF_TOKEN on the server.")

        preview_in = [spec, seed, trunc, yaw, pitch, edits, strength]
        preview_out = [src_img, edt_img, msk_img, info]
        shipped = set(S.available_edits(default_generator))
        examples = [[default_generator, sd, 1.0, yw, 0.0, ex, 1.0] for sd, yw, ex in
                    EXAMPLES if set(ex) <= shipped]
        if examples:  # cached on a Space (on first use), computed on demand locally
            with edit_tab:
                gr.Examples(examples, preview_in, preview_out, fn=preview, label="Examples",
                            cache_examples="lazy" if os.environ.get("SPACE_ID") else False)
        spec.change(on_generator, [spec], [edits, recipe, trained, trunc, p_edits, status], api_name="generator")
        render_btn.click(preview, preview_in, preview_out, api_name="preview")
        for slider in (yaw, pitch, strength, trunc):
            slider.release(preview, preview_in, preview_out, api_visibility="undocumented")
        edits.change(preview, preview_in, preview_out, api_visibility="undocumented")
        tt_btn.click(turntable, [spec, seed, trunc, edits, strength, frames], [tt_video, mask_video, info],
                     api_name="turntable")
        recipe.change(on_recipe, [spec, recipe], [mask_prompt, edit_prompt, steps, t_strength, texture_only,
                                                  deformation], api_name="recipe")
        deformation.input(on_deformation, [deformation], [texture_only], api_visibility="undocumented")
        train_btn.click(train, [spec, recipe, mask_prompt, edit_prompt, steps, t_strength, texture_only, deformation],
                        [job_md, job_preview, job_id, edits, trained, p_edits], api_name="train",
                        concurrency_limit=None, show_progress_on=[job_preview])  # the status text stays readable
        cancel_btn.click(cancel, [job_id], [job_md], api_name="cancel", concurrency_limit=None)
        dl_btn.click(download, [trained], [dl_file], api_name="download")
        inv_btn.click(invert_photo, [spec, photo, kind, crop, inv_steps],
                      [inversion, aligned_img, recon_img, inv_notes], api_name="invert")
        p_in = [spec, inversion, p_yaw, p_pitch, p_edits, p_strength]
        p_render.click(photo_preview, p_in, [p_src, p_edt, p_msk], api_name="photo_preview")
        p_tt.click(photo_turntable, [spec, inversion, p_edits, p_strength], [p_video, p_mask_video],
                   api_name="photo_turntable")
        push_btn.click(push, [trained, repo], [push_md], api_name="push")
        demo.load(on_generator, [spec], [edits, recipe, trained, trunc, p_edits, status],
                  api_visibility="undocumented").then(preview, preview_in, preview_out, api_visibility="undocumented")
        # the browser draws an empty number field as 0 until it is sent None: "Steps" at 0 made a new edit's training
        # fail in the browser ("less than minimum") until session 37
        demo.load(lambda: (None, None), None, [steps, t_strength], api_visibility="undocumented")
    return demo


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator", default=os.environ.get("LENERF_GENERATOR", "ffhq"),
                   help="generator shown first; falls back to 'synthetic' when it cannot be loaded")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)))
    p.add_argument("--share", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tune_allocator()
    studio = Studio()
    default, notice = studio.choose_default(a.generator)
    if notice:
        log.warning(notice)
    demo = build_ui(studio, default, notice)
    demo.queue(default_concurrency_limit=4, max_size=32).launch(
        server_name=a.host, server_port=a.port, share=a.share, allowed_paths=[str(studio.media_dir)])


if __name__ == "__main__":
    main()
