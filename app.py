"""LENeRF Studio Gradio app (also the Hugging Face Space entry point): a thin UI over the ``lenerf`` API.

Run locally with ``python app.py`` (options: ``--generator ID_OR_PATH``, ``--port``, ``--share``).
"""
from __future__ import annotations

import argparse
import os

import gradio as gr
import torch

from lenerf.errors import LENeRFError
from lenerf.hub import load_generator, load_registry
from lenerf.pipeline import latent_from_seed, render_view

_MODELS: dict[str, object] = {}


def get_generator(spec: str):
    if spec not in _MODELS:
        _MODELS[spec] = load_generator(spec, device="cuda" if torch.cuda.is_available() else "cpu")
    return _MODELS[spec]


def generate(spec: str, seed: float, truncation: float, yaw: float, pitch: float, preset: str):
    try:
        G = get_generator(spec.strip())
        ws = latent_from_seed(G, int(seed), truncation)
        view = render_view(G, ws, yaw, pitch, preset=preset)
        return view.image, view.depth, ""
    except LENeRFError as e:
        return None, None, f"**Cannot render:** {e}"


def build_ui(default_generator: str) -> gr.Blocks:
    choices = sorted(load_registry())
    with gr.Blocks(title="LENeRF Studio") as demo:
        gr.Markdown("# LENeRF Studio\nLocal 3D editing of EG3D heads. Pick a generator and a seed.")
        with gr.Row():
            with gr.Column():
                spec = gr.Dropdown(choices=choices, value=default_generator, allow_custom_value=True,
                                   label="Generator (registry id, converted folder, .pkl or Hub repo)")
                seed = gr.Number(value=0, precision=0, label="Seed")
                trunc = gr.Slider(0.0, 1.0, value=0.7, label="Truncation psi")
                yaw = gr.Slider(-0.6, 0.6, value=0.0, label="Yaw (rad)")
                pitch = gr.Slider(-0.3, 0.3, value=0.0, label="Pitch (rad)")
                preset = gr.Radio(["preview", "full"], value="preview", label="Quality")
                btn = gr.Button("Render", variant="primary")
            with gr.Column():
                image = gr.Image(label="Render", type="numpy")
                depth = gr.Image(label="Depth", type="numpy")
                notice = gr.Markdown()
        btn.click(generate, [spec, seed, trunc, yaw, pitch, preset], [image, depth, notice])
    return demo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--generator", default=os.environ.get("LENERF_GENERATOR", "ffhq"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)))
    p.add_argument("--share", action="store_true")
    a = p.parse_args()
    build_ui(a.generator).queue().launch(server_port=a.port, share=a.share)


if __name__ == "__main__":
    main()
