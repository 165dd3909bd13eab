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

from lenerf.errors import LENeRFError
from lenerf.studio import Studio, describe_job

log = logging.getLogger("lenerf.app")

try:  # ZeroGPU on Hugging Face Spaces: borrow a GPU per request; a no-op everywhere else
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn=None, **_):
        return fn if fn is not None else (lambda f: f)

CUSTOM = "(new edit)"


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
                gr.update(choices=edits, value=edits[0] if edits else None), float(G.default_truncation), "")

    @_ui_errors
    @gpu(duration=60)
    def preview(spec, seed, truncation, yaw, pitch, edits, strength):
        t = time.perf_counter()
        v = S.preview(spec, seed, truncation, yaw, pitch, edits, strength)
        note = (f"{len(edits)} edit(s) at strength {strength:g}" if edits else "no edit picked: showing the source")
        return v.source, v.edited, v.overlay, f"{note} - rendered in {time.perf_counter() - t:.2f} s"

    @_ui_errors
    @gpu(duration=120)
    def turntable(spec, seed, truncation, edits, strength, frames, progress=gr.Progress()):
        t = time.perf_counter()
        strip, mask = S.turntable(spec, seed, truncation, edits, strength, frames,
                                  progress=lambda k, n: progress((k, n), desc="rendering turntable", unit="frames"))
        return str(strip), str(mask), f"{int(frames)} frames in {time.perf_counter() - t:.1f} s"

    @_ui_errors
    def on_recipe(spec, recipe):
        if recipe == CUSTOM or not recipe:
            return gr.update(), gr.update(), gr.update()
        cfg = S.make_config(spec, *_recipe_prompts(spec, recipe), recipe=recipe)
        return cfg.mask_prompt, cfg.edit_prompt, cfg.steps

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
        while not job.done:
            progress((job.step, job.steps), desc=f"training '{job.name}'", unit="steps")
            yield describe_job(job, S.queue.position(job)), job.preview, job.id, gr.update(), gr.update()
            time.sleep(0.5)
        edits = S.available_edits(spec)
        picked = job.result.name if job.result is not None else None
        yield (describe_job(job), job.preview, job.id, gr.update(choices=edits),
               gr.update(choices=edits, value=picked or (edits[0] if edits else None)))

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
        with gr.Tab("Edit", id="edit"):
            with gr.Row():
                with gr.Column(scale=1):
                    seed = gr.Number(value=0, precision=0, minimum=0, maximum=2 ** 32 - 1, label="Seed", elem_id="seed")
                    trunc = gr.Slider(0.0, 1.0, value=0.7, step=0.05, label="Truncation psi (1 = no truncation)")
                    yaw = gr.Slider(-0.6, 0.6, value=0.0, step=0.05, label="Camera yaw (rad)")
                    pitch = gr.Slider(-0.3, 0.3, value=0.0, step=0.05, label="Camera pitch (rad)")
                    edits = gr.Dropdown(choices=S.available_edits(default_generator), value=[], multiselect=True,
                                        label="Edits (applied in this order)", elem_id="edit-picker")
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
        with gr.Tab("Train", id="train"):
            gr.Markdown("Train a new edit: *where* (mask prompt) and *what* (edit prompt). Start from a shipped "
                        "recipe or type your own. Jobs run one at a time in the background; you may leave the page "
                        "and come back: finished edits appear in the Edit tab.")
            with gr.Row():
                with gr.Column():
                    recipe = gr.Dropdown(choices=[CUSTOM, *S.recipes(default_generator)], value=CUSTOM,
                                         label="Recipe", elem_id="recipe")
                    mask_prompt = gr.Textbox(label="Where to edit (mask prompt)", placeholder="eyes", max_lines=1)
                    edit_prompt = gr.Textbox(label="What to do (edit prompt)", placeholder="a face with blue eyes",
                                             max_lines=1)
                    with gr.Accordion("Advanced", open=False):
                        steps = gr.Number(value=300, precision=0, minimum=1, maximum=S.limits.max_steps,
                                          label="Steps", elem_id="steps")
                        t_strength = gr.Slider(0.1, 3.0, value=1.0, step=0.1, label="Strength during training")
                        texture_only = gr.Checkbox(value=True, label="Texture only (keep the geometry)")
                        deformation = gr.Checkbox(value=False, label="Train the deformation network")
                    with gr.Row():
                        train_btn = gr.Button("Train", variant="primary", elem_id="train-btn")
                        cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-btn")
                with gr.Column():
                    job_md = gr.Markdown("No training job yet.", elem_id="job-status")
                    job_preview = gr.Image(label="Preview (source | edited | mask)", type="numpy",
                                           interactive=False)
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
        spec.change(on_generator, [spec], [edits, recipe, trained, trunc, status], api_name="generator")
        render_btn.click(preview, preview_in, preview_out, api_name="preview")
        for slider in (yaw, pitch, strength, trunc):
            slider.release(preview, preview_in, preview_out, api_visibility="undocumented")
        edits.change(preview, preview_in, preview_out, api_visibility="undocumented")
        tt_btn.click(turntable, [spec, seed, trunc, edits, strength, frames], [tt_video, mask_video, info],
                     api_name="turntable")
        recipe.change(on_recipe, [spec, recipe], [mask_prompt, edit_prompt, steps], api_name="recipe")
        train_btn.click(train, [spec, recipe, mask_prompt, edit_prompt, steps, t_strength, texture_only, deformation],
                        [job_md, job_preview, job_id, edits, trained], api_name="train", concurrency_limit=None)
        cancel_btn.click(cancel, [job_id], [job_md], api_name="cancel", concurrency_limit=None)
        dl_btn.click(download, [trained], [dl_file], api_name="download")
        push_btn.click(push, [trained, repo], [push_md], api_name="push")
        demo.load(on_generator, [spec], [edits, recipe, trained, trunc, status], api_visibility="undocumented").then(
            preview, preview_in, preview_out, api_visibility="undocumented")
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
    studio = Studio()
    default, notice = studio.choose_default(a.generator)
    if notice:
        log.warning(notice)
    demo = build_ui(studio, default, notice)
    demo.queue(default_concurrency_limit=4, max_size=32).launch(
        server_name=a.host, server_port=a.port, share=a.share, allowed_paths=[str(studio.media_dir)])


if __name__ == "__main__":
    main()
