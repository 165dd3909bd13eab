"""The engine behind the app: generators, the edit catalogue, previews, turntables and training jobs.

Everything here is plain Python over the ``lenerf`` API (no Gradio), so it is tested and benchmarked directly
and ``app.py`` only lays out widgets. Every user input is validated here; errors are :class:`LENeRFError`
subclasses with messages meant for the user.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..editing import EditConfig, LocalEditor, load_edit, push_edit_to_hub, train_edit
from ..editing.package import strength_ok
from ..errors import InputError, LENeRFError
from ..generator import Generator, Preset
from ..hub import cache_dir, load_generator, load_registry, probe_generator
from ..media import write_video
from ..pipeline import EditView, latent_from_seed, render_edit, render_edit_turntable
from .configs import (SHIPPED_EDITS, make_config, part_mask_recipe, part_masks, part_shape_recipe, recipes,
                      shape_note)
from .jobs import ComputeGate, TrainingQueue, TrainJob

log = logging.getLogger(__name__)

#: turntables of the synthetic world: raw 128^2 renders with 16 + 16 samples per ray (30 dB against 48 + 48)
TURNTABLE_PRESET = Preset("turntable", neural_rendering_resolution=128, depth_resolution=16,
                          depth_resolution_importance=16, superresolution=False, output_resolution=128)
@dataclass(frozen=True)
class Limits:
    max_prompt_chars: int = 200
    max_prompt_tokens: int = 75  # CLIP's context is 77 tokens including start/end
    max_steps: int = 2000
    max_edits: int = 4
    min_frames: int = 8
    max_frames: int = 96
    max_pending_jobs: int = 4
    max_inversion_steps: int = 1000


@lru_cache(maxsize=1)
def _bpe():
    from open_clip.tokenizer import SimpleTokenizer
    return SimpleTokenizer()


def check_prompt(text, what: str, limits: Limits = Limits()) -> str:
    """Strip and validate a text prompt (non-empty, printable, not longer than CLIP's context)."""
    if not isinstance(text, str):
        raise InputError(f"{what} must be text")
    text = " ".join(text.split())
    if not text:
        raise InputError(f"{what} is empty: type what to edit, e.g. 'eyes' and 'blue eyes'")
    if len(text) > limits.max_prompt_chars:
        raise InputError(f"{what} is too long ({len(text)} characters, at most {limits.max_prompt_chars})")
    if any(not ch.isprintable() for ch in text):
        raise InputError(f"{what} contains control characters")
    n = len(_bpe().encode(text))
    if n > limits.max_prompt_tokens:
        raise InputError(f"{what} is too long for CLIP ({n} tokens, at most {limits.max_prompt_tokens})")
    return text


def check_seed(seed) -> int:
    try:
        f = float(seed)
    except (TypeError, ValueError):
        raise InputError(f"seed must be a whole number, got {seed!r}") from None
    if not f.is_integer():
        raise InputError(f"seed must be a whole number, got {seed!r}")
    s = int(f)
    if not 0 <= s < 2 ** 32:
        raise InputError(f"seed must be between 0 and {2 ** 32 - 1}, got {s}")
    return s


def _on_compute_thread(method):
    """Run a :class:`Studio` method on its gate's compute thread (every torch op of the app runs there)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        return self.gate.run(method, self, *args, **kwargs)
    return wrapper


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "edit"


class Studio:
    """State of one app process: loaded generators, edits, the device gate and the training queue.

    ``work_dir`` holds edits trained from the app (``edits/``) and rendered videos (``media/``); default
    ``$LENERF_STUDIO_DIR`` or ``~/.cache/lenerf/studio`` (``/data/lenerf-studio`` on a Space with persistent
    storage)."""

    def __init__(self, device: str | None = None, work_dir: str | os.PathLike | None = None,
                 edit_dirs: list[Path] | None = None, limits: Limits = Limits()):
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if work_dir is None:
            work_dir = os.environ.get("LENERF_STUDIO_DIR") or (
                "/data/lenerf-studio" if os.path.isdir("/data") and os.access("/data", os.W_OK)
                else cache_dir() / "studio")
        self.work_dir = Path(work_dir)
        self.user_edits = self.work_dir / "edits"
        self.media_dir = self.work_dir / "media"
        self.inversions_dir = self.work_dir / "inversions"
        for d in (self.user_edits, self.media_dir, self.inversions_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.edit_dirs = [*(edit_dirs if edit_dirs is not None else [SHIPPED_EDITS]), self.user_edits]
        self.limits = limits
        self.gate = ComputeGate()
        self.queue = TrainingQueue(limits.max_pending_jobs)
        self._generators: dict[str, Generator] = {}
        self._edits: dict[Path, tuple] = {}
        self._clips: dict[tuple, object] = {}
        self._perceptual = None

    # -- generators -----------------------------------------------------------------------------------------
    def generator_choices(self) -> list[str]:
        return sorted(load_registry())

    def choose_default(self, preferred: str = "ffhq", fallback: str = "synthetic") -> tuple[str, str]:
        """-> (generator id to show first, notice for the user or ""). Falls back to the offline synthetic world
        when ``preferred`` cannot be loaded, and says why and how to get it."""
        if preferred == fallback:
            return fallback, ""
        ok, why = probe_generator(preferred)
        if ok:
            try:
                self.generator(preferred)
                return preferred, ""
            except LENeRFError as e:
                why = str(e).splitlines()[0]
        entry = load_registry().get(preferred, {})
        how = (f"`huggingface-cli download {entry['repo_id']} {entry['filename']}` on a machine with network "
               f"(then `HF_HUB_OFFLINE=1`), or pass a local copy: `python app.py --generator PATH.pkl`"
               if "repo_id" in entry else "pass a local checkpoint with `python app.py --generator PATH`")
        return fallback, (f"Showing the offline **synthetic heads** world because EG3D `{preferred}` is not "
                          f"available: {why}. To use it: {how}.")

    def generator(self, spec: str) -> Generator:
        spec = str(spec).strip()
        if not spec:
            raise InputError("choose a generator")
        G = self._generators.get(spec)
        return G if G is not None else self.gate.run(self._load_generator, spec)

    # the caches below are filled on the compute thread only (one at a time): no lock
    def _load_generator(self, spec: str) -> Generator:
        if spec not in self._generators:
            t = time.time()
            self._generators[spec] = load_generator(spec, device=self.device)
            log.info("loaded generator %s in %.1f s", spec, time.time() - t)
        return self._generators[spec]

    @_on_compute_thread
    def _clip(self, name: str, pretrained: str | None):
        from ..clip import load_clip
        key = (name, pretrained)
        if key not in self._clips:
            self._clips[key] = load_clip(name, pretrained, device=self.device)
        return self._clips[key]

    def _load_edit(self, folder: Path, stamp: float) -> tuple:
        if self._edits.get(folder, (None, None))[0] != stamp:
            self._edits[folder] = (stamp, load_edit(folder, device=self.device))
        return self._edits[folder][1]

    # -- edits ----------------------------------------------------------------------------------------------
    def _edit_folders(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for d in self.edit_dirs:
            for f in sorted(Path(d).glob("*/edit.json")) if Path(d).is_dir() else []:
                if (f.parent / "modules.safetensors").is_file():
                    found.setdefault(f.parent.name, f.parent)
        return found

    def available_edits(self, spec: str) -> list[str]:
        """Names of the trained edits for generator ``spec`` (shipped ones first, then those trained here)."""
        out = []
        for name, folder in self._edit_folders().items():
            try:
                gen = json.loads((folder / "edit.json").read_text()).get("generator")
            except (OSError, ValueError):
                continue
            if gen == spec:
                out.append(name)
        return out

    def edit_info(self, name: str) -> dict:
        folder = self._edit_folders().get(name)
        if folder is None:
            raise InputError(f"unknown edit '{name}'")
        return json.loads((folder / "edit.json").read_text())

    def applied_order(self, spec: str, names: list[str] | None) -> list[str]:
        """The picked edits in the order the editor applies them (a colour edit goes under an earlier deformation
        edit of its part: :func:`lenerf.editing.editor.application_order`)."""
        names = [n for n in (names or []) if n]
        return [names[i] for i in self.editor(spec, names).order]

    def editor(self, spec: str, names: list[str] | None) -> LocalEditor:
        names = [n for n in (names or []) if n]
        if len(names) > self.limits.max_edits:
            raise InputError(f"at most {self.limits.max_edits} edits at once, got {len(names)}")
        G = self.generator(spec)
        folders, edits = self._edit_folders(), []
        for n in names:
            if n not in folders:
                raise InputError(f"unknown edit '{n}' (available: {', '.join(self.available_edits(spec)) or 'none'})")
            folder = folders[n]
            stamp = (folder / "modules.safetensors").stat().st_mtime
            cached = self._edits.get(folder, (None, None))
            edit, info = cached[1] if cached[0] == stamp else self.gate.run(self._load_edit, folder, stamp)
            if info.get("generator") != spec:
                raise InputError(f"edit '{n}' was trained for generator '{info.get('generator')}', not '{spec}'")
            edits.append(edit)
        return LocalEditor(G, edits)

    # -- rendering ------------------------------------------------------------------------------------------
    @_on_compute_thread
    def latent(self, spec: str, seed, truncation: float) -> torch.Tensor:
        G = self.generator(spec)
        return latent_from_seed(G, check_seed(seed), float(truncation), device=self.device)

    def _source(self, spec: str, seed, truncation: float, inversion: str | None):
        """-> (generator to render with, ws): a seed's latent, or an inverted photo's (with its PTI generator)."""
        if not inversion:
            return self.generator(spec), self.latent(spec, seed, truncation)
        inv = self.inversion(inversion)
        if inv.meta.get("generator") != spec:
            raise InputError(f"this photo was inverted into '{inv.meta.get('generator')}', not '{spec}'")
        return inv.generator(self.generator(spec)), inv.ws.to(self.device)

    @_on_compute_thread
    def inversion(self, name: str):
        from ..inversion import Inversion
        folder = self.inversions_dir / str(name)
        if not re.fullmatch(r"[\w.-]+", str(name)) or not folder.is_dir():
            raise InputError(f"unknown inverted photo '{name}'")
        return Inversion.load(folder, device=self.device)

    @_on_compute_thread
    def invert_photo(self, spec: str, photo, kind: str = "human", crop: str = "auto", steps: int = 300,
                     time_budget_s: float | None = 300.0, progress: Callable[[int, int], None] | None = None):
        """Photo (path / bytes / PIL) -> (inversion id, aligned crop uint8, reconstruction uint8, notes)."""
        from ..inversion import InversionConfig, align_face, image_to_tensor, invert, load_perceptual, load_photo
        from ..pipeline import render_view
        steps = int(steps)
        if not 10 <= steps <= self.limits.max_inversion_steps:
            raise InputError(f"inversion steps must be between 10 and {self.limits.max_inversion_steps}")
        if photo is None:
            raise InputError("upload a photo first")
        G = self.generator(spec)
        p = load_photo(photo)
        if crop == "none":
            aligned, notes = p.image, list(p.notes)
        else:
            face = align_face(p.image, kind=kind, crop=crop)
            aligned, notes = face.image, p.notes + face.notes
        if self._perceptual is None:
            self._perceptual = load_perceptual(device=self.device)
        cfg = InversionConfig(steps=steps, time_budget_s=time_budget_s)
        inv = invert(G, image_to_tensor(aligned).to(self.device), cfg, perceptual=self._perceptual, progress=False,
                     callback=(lambda info: progress(info["step"], info["steps"])) if progress else None,
                     step_guard=self.gate.step)
        name = f"photo_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:8]}"  # unique when two finish together
        inv.meta.update({"generator": spec, "notes": notes, "crop": crop, "kind": kind})
        inv.save(self.inversions_dir / name)
        aligned.save(self.inversions_dir / name / "aligned.png")
        rec = render_view(inv.generator(G), inv.ws, inv.yaw, inv.pitch).image
        stop = _STOPS.get(inv.meta["stop"], inv.meta["stop"])
        notes = notes + [f"reconstruction PSNR {inv.meta['psnr_input_view']} dB at the photo's view "
                         f"({inv.meta['steps_run']} steps, {stop}, {inv.meta['total_s']} s; perceptual "
                         f"loss: {inv.meta['perceptual']})"]
        return name, np.asarray(aligned.convert("RGB")), rec, notes

    def _strengths(self, editor: LocalEditor, strength: float | None) -> list[float] | None:
        return None if strength is None else [strength_ok(strength)] * len(editor.edits)

    @_on_compute_thread
    def preview(self, spec: str, seed, truncation: float = 0.7, yaw: float = 0.0, pitch: float = 0.0,
                edits: list[str] | None = None, strength: float | None = None,
                preset: str | Preset = "preview", inversion: str | None = None) -> EditView:
        """Source, edited and mask-overlay images for one camera (edited = source when no edit is picked); the
        source is the seed's head, or an inverted photo when ``inversion`` (an id from :meth:`invert_photo`)."""
        if not (-0.8 <= float(yaw) <= 0.8 and -0.5 <= float(pitch) <= 0.5):
            raise InputError("yaw must be within +-0.8 rad and pitch within +-0.5 rad")
        editor = self.editor(spec, edits)
        editor.G, ws = self._source(spec, seed, truncation, inversion)
        return render_edit(editor, ws, float(yaw), float(pitch), preset=preset,
                           strengths=self._strengths(editor, strength))

    def turntable(self, spec: str, seed, truncation: float = 0.7, edits: list[str] | None = None,
                  strength: float | None = None, frames: int = 48, preset: str | Preset | None = None,
                  fps: int = 24, progress: Callable[[int, int], None] | None = None,
                  inversion: str | None = None) -> tuple[Path, Path]:
        """-> (video of source | edited | mask overlay, video of the 3D mask overlay alone). Default quality:
        :data:`TURNTABLE_PRESET` for the synthetic world; for EG3D the checkpoint's own on a GPU, else 'preview'."""
        if preset is None:
            preset = TURNTABLE_PRESET if spec == "synthetic" else ("full" if self.device.startswith("cuda")
                                                                   else "preview")
        frames = int(frames)
        if not self.limits.min_frames <= frames <= self.limits.max_frames:
            raise InputError(f"frames must be between {self.limits.min_frames} and {self.limits.max_frames}")

        def render() -> list[EditView]:
            editor = self.editor(spec, edits)
            editor.G, ws = self._source(spec, seed, truncation, inversion)
            return render_edit_turntable(editor, ws, frames, preset=preset,
                                         strengths=self._strengths(editor, strength), progress=progress,
                                         guard=self.gate.step)
        views = self.gate.run(render)  # the videos are encoded here, off the compute thread
        out = Path(tempfile.mkdtemp(prefix="turntable_", dir=self.media_dir))
        strip = write_video([v.strip() for v in views], out / "turntable.mp4", fps=fps)
        mask = write_video([v.overlay for v in views], out / "mask_turntable.mp4", fps=fps)
        return strip, mask

    # -- training -------------------------------------------------------------------------------------------
    def recipes(self, spec: str) -> dict[str, Path]:
        """Shipped training configs (``checkpoints/edits/*.json``) for generator ``spec``."""
        return recipes(spec)

    def make_config(self, spec: str, mask_prompt: str, edit_prompt: str, recipe: str | None = None,
                    steps: int | None = None, strength: float | None = None, texture_only: bool | None = None,
                    deformation: bool | None = None) -> EditConfig:
        """The config of a training job (:func:`lenerf.studio.configs.make_config`), prompts checked first."""
        mask_prompt = check_prompt(mask_prompt, "the mask prompt (where to edit)", self.limits)
        edit_prompt = check_prompt(edit_prompt, "the edit prompt (what to do)", self.limits)
        return make_config(spec, mask_prompt, edit_prompt, recipe, steps, strength, texture_only, deformation,
                           max_steps=self.limits.max_steps, generator=self.generator)

    def part_masks(self, spec: str) -> dict[str, str]:
        return part_masks(spec)

    def part_mask_recipe(self, spec: str, mask_prompt: str, deformation: bool = False) -> str | None:
        return part_mask_recipe(spec, mask_prompt, deformation)

    def part_shape_recipe(self, spec: str, mask_prompt: str, deformation: bool = True) -> str | None:
        return part_shape_recipe(spec, mask_prompt, deformation)

    def submit_training(self, spec: str, mask_prompt: str, edit_prompt: str, owner: str = "local",
                        recipe: str | None = None, **overrides) -> TrainJob:
        """Validate and queue a training job; the finished edit appears in :meth:`available_edits`."""
        cfg = self.make_config(spec, mask_prompt, edit_prompt, recipe, **overrides)
        self.generator(spec)  # fail now (not in the worker) when the generator cannot be loaded
        name = f"{_slug(cfg.edit_prompt)}_{time.strftime('%Y%m%d_%H%M%S')}"
        final = self.user_edits / name
        staging = self.work_dir / "training" / name

        def train(job: TrainJob) -> Path:
            G = self.generator(spec)
            clip = self._clip(cfg.clip, cfg.clip_pretrained)
            train_edit(G, cfg, staging, clip=clip, progress=False, callback=job.update,
                       should_stop=job.cancel_event.is_set, step_guard=self.gate.step)
            shutil.copytree(staging, final, ignore=shutil.ignore_patterns("train_state.*"))
            return final  # the staging folder (with its resumable checkpoint) is kept until cleaned up

        def run(job: TrainJob) -> Path:  # the queue's worker waits while the compute thread trains
            return self.gate.run(train, job, interactive=False)

        return self.queue.submit(name, owner, cfg.afn_warmup + cfg.steps + cfg.afn_cooldown, run, note=shape_note(cfg))

    def export_zip(self, name: str) -> Path:
        """Zip of an edit package (edit.json, modules.safetensors, previews) for download."""
        folder = self._edit_folders().get(name)
        if folder is None:
            raise InputError(f"unknown edit '{name}'")
        out = Path(tempfile.mkdtemp(prefix="export_", dir=self.media_dir)) / name
        return Path(shutil.make_archive(str(out), "zip", root_dir=folder.parent, base_dir=folder.name))

    def push(self, name: str, repo_id: str, token: str | None = None) -> str:
        token = token or os.environ.get("HF_TOKEN")
        if not token:
            raise InputError("pushing to the Hub needs a token: set HF_TOKEN for the app (a Space secret)")
        repo_id = (repo_id or "").strip()
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
            raise InputError(f"'{repo_id}' is not a Hub repo id (owner/name)")
        folder = self._edit_folders().get(name)
        if folder is None:
            raise InputError(f"unknown edit '{name}'")
        try:
            return push_edit_to_hub(folder, repo_id, token=token)
        except Exception as e:
            raise LENeRFError(f"upload to {repo_id} failed: {type(e).__name__}: {e}") from None


#: why an inversion stopped (``invert``'s meta "stop"), as the photo tab says it (it read "20 steps, steps" until
#: session 36)
_STOPS = {"steps": "all steps run", "early stop": "stopped early: the loss no longer fell",
          "time budget": "stopped at the time budget", "cancelled": "cancelled"}


def describe_job(job: TrainJob, position: int = 0) -> str:
    """A one-paragraph Markdown status of a training job for the UI."""
    note = f"\n\n*{job.note}*" if job.note else ""
    if job.status == "queued":
        return f"**Queued** ({position} in line): '{job.name}'{note}"
    pct = 100 * job.step / max(1, job.steps)
    losses = ", ".join(f"{k} {v:.3f}" for k, v in job.losses.items() if k in ("clip", "afn_mask", "coverage"))
    head = {"running": "Training", "done": "Done", "failed": "Failed", "cancelled": "Cancelled"}[job.status]
    eta = f", ETA {job.eta_s:.0f} s" if job.status == "running" and job.eta_s is not None else ""
    msg = f" - {job.message}" if job.message else ""
    phase = f" ({job.phase})" if job.status == "running" and job.phase else ""
    return f"**{head}** '{job.name}': step {job.step}/{job.steps}{phase} ({pct:.0f}%){eta}. {losses}{msg}{note}"


__all__ = ["Limits", "Studio", "check_prompt", "check_seed", "describe_job"]
