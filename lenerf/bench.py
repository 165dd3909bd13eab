"""``python -m lenerf bench render``: time the full-size FFHQ EG3D architecture (random weights) per preset.

Reports median wall time of ``repeats`` runs after one warm-up, FLOPs per frame counted by
``torch.utils.flop_counter`` (matmuls and convolutions; elementwise work and tri-plane lookups are not counted)
and the achieved GFLOP/s. Batch 1, fp32, noise_mode 'const', psi 0.7.
"""
from __future__ import annotations

import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

FFHQ_INIT_KWARGS = {
    "z_dim": 512, "w_dim": 512, "c_dim": 25, "img_resolution": 512, "img_channels": 3,
    "mapping_kwargs": {"num_layers": 2}, "channel_base": 32768, "channel_max": 512, "num_fp16_res": 0,
    "conv_clamp": None, "sr_num_fp16_res": 4,
    "sr_kwargs": {"channel_base": 32768, "channel_max": 512, "fused_modconv_default": "inference_only"},
    "neural_rendering_resolution": 128,
}

OFFICIAL_FULL_FORWARD_S = 10.34  # shared/golden/eg3d/timing.json (official code, same machine class)


def _time(fn, repeats: int, sync) -> tuple[float, list[float]]:
    fn()
    sync()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), runs


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def bench_render(repeats: int = 3, threads: int = 2, device: str = "cpu", quick: bool = False) -> dict:
    from .eg3d import EG3D
    if device == "cpu":
        torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    repeats = 1 if quick else repeats
    torch.manual_seed(0)
    G = EG3D(**FFHQ_INIT_KWARGS).to(device)
    z = torch.from_numpy(np.random.RandomState(0).randn(1, 512)).float().to(device)
    c = G.camera(0.3, 0.1).to(device)
    gen = torch.Generator(device=device)
    rows = {}
    with torch.no_grad():
        ws = G.mapping(z, c, 0.7, 14)
        field = G.field(ws)

        def full():
            return G(z, c, truncation_psi=0.7, truncation_cutoff=14, generator=gen.manual_seed(0))

        def preview_frame():
            return G.render_field(field, ws, c, preset="preview", generator=gen.manual_seed(0))

        def preview_first():
            return G.render_field(G.field(ws), ws, c, preset="preview", generator=gen.manual_seed(0))

        feat = G.render_field(field, ws, c, generator=gen.manual_seed(0))["image_features"]
        parts = {
            "full: forward (mapping + tri-planes + render 128^2 x 96 + SR 512^2)": full,
            "full: tri-plane backbone only": lambda: G.planes(ws),
            "full: renderer only (128^2 rays, 48+48 samples)": lambda: G.render_field(
                field, ws, c, preset=_no_sr(), generator=gen.manual_seed(0)),
            "full: superresolution only (128 -> 512)": lambda: G.superresolve(feat[:, :3], feat, ws),
            "preview: frame, tri-planes cached (64^2 rays, 24+24 samples, bilinear to 256)": preview_frame,
            "preview: first frame incl. tri-planes": preview_first,
        }
        for name, fn in parts.items():
            median, runs = _time(fn, repeats, sync)
            flops = _flops(fn)
            rows[name] = {"median_s": round(median, 4), "runs_s": [round(r, 4) for r in runs],
                          "gflop": round(flops / 1e9, 2), "gflop_per_s": round(flops / 1e9 / median, 1)}
    result = {
        "device": device if device != "cpu" else f"cpu ({platform.processor() or platform.machine()}), "
                                                  f"{torch.get_num_threads()} threads",
        "torch": torch.__version__, "batch": 1, "dtype": "float32", "noise_mode": "const", "repeats": repeats,
        "official_full_forward_s": OFFICIAL_FULL_FORWARD_S, "results": rows,
    }
    _print_table(result)
    return result


def _no_sr():
    from .generator import Preset
    return Preset("full-no-sr", superresolution=False, output_resolution=128)


def _print_table(result: dict) -> None:
    print(f"EG3D ffhq512-128 (random weights) on {result['device']}, torch {result['torch']}, batch 1, fp32")
    print(f"{'stage':<82} {'ms':>9} {'GFLOP':>8} {'GFLOP/s':>8}")
    for name, r in result["results"].items():
        print(f"{name:<82} {r['median_s'] * 1000:>9.1f} {r['gflop']:>8.1f} {r['gflop_per_s']:>8.1f}")
    full = next(iter(result["results"].values()))["median_s"]
    print(f"official implementation, full forward: {result['official_full_forward_s']} s "
          f"-> speed-up {result['official_full_forward_s'] / full:.2f}x")


def bench_synthetic(repeats: int = 5) -> dict:
    """ms per frame of the synthetic heads field at 64^2 and 128^2 (its own 24 + 24 samples, no superresolution),
    with 1 and 2 torch threads, batch 1, the field rebuilt every frame (it is cheap); then, with 2 threads at 64^2,
    an edited frame (source + edited + mask) of the shipped ``eyes_blue`` (texture only), ``hair_long`` (new
    shape) and ``eyes_big`` (a deformation), the last two with the edited field's importance pass and without it
    (``edited_importance=0``)."""
    from .generator import Preset
    from .pipeline import latent_from_seed
    from .synthetic import SyntheticHeads
    G = SyntheticHeads()
    ws = latent_from_seed(G, 0)
    c = G.camera(0.3, 0.1)
    gen = torch.Generator()
    rows = {}
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for res in (64, 128):
                preset = Preset(f"{res}", res, superresolution=False, output_resolution=res)
                with torch.no_grad():
                    median, runs = _time(lambda: G.render_field(G.field(ws), ws, c, preset=preset,
                                                                generator=gen.manual_seed(0)), repeats, lambda: None)
                rows[f"{res}x{res}, {threads} thread{'s' if threads > 1 else ''}"] = {
                    "ms_per_frame": round(median * 1000, 1), "runs_ms": [round(r * 1000, 1) for r in runs]}
        from .editing import LocalEditor, load_edit
        from .studio.configs import SHIPPED_EDITS
        for name, extra in (("eyes_blue", None), ("hair_long", None), ("hair_long", 0), ("eyes_big", None),
                            ("eyes_big", 0)):
            editor = LocalEditor(G, [load_edit(SHIPPED_EDITS / name)[0]])
            with torch.no_grad():
                median, runs = _time(lambda: editor.render(ws, c, preset="preview", generator=gen.manual_seed(0),
                                                           edited_importance=extra), repeats, lambda: None)
            label = "" if extra is None else f", edited_importance={extra}"
            rows[f"edited 64x64, 2 threads: {name}{label}"] = {
                "ms_per_frame": round(median * 1000, 1), "runs_ms": [round(r * 1000, 1) for r in runs]}
    finally:
        torch.set_num_threads(before)
    result = {"device": f"cpu ({platform.processor() or platform.machine()})", "torch": torch.__version__,
              "samples_per_ray": G.render_settings.samples_per_ray, "results": rows}
    print(f"synthetic heads field, {result['samples_per_ray']} samples/ray, batch 1, torch {result['torch']}")
    for name, r in rows.items():
        print(f"{name:<58} {r['ms_per_frame']:>8.1f} ms/frame")
    return result


def bench_relevance(repeats: int = 5, threads: int = 2) -> dict:
    """ms per ``relevance_maps`` call on a training batch (4 renders of 64^2, MiniCLIP): the mask prompt alone,
    with the negative prompts of the shipped eyes recipe, and both averaged over 5 and 9 sub-patch shifts; the best
    prompt contrasted with the other expanded prompts (``select="contrast"``), alone and with 9 shifts; that with 10
    iterations of image-guided refinement (``refine``); and the refinement alone on 4 maps of 64^2 and 1 of 128^2."""
    import json

    from .clip import load_clip, relevance_maps
    from .clip.relevance import refine_maps
    from .hub import ROOT
    from .pipeline import latent_from_seed
    from .synthetic import SyntheticHeads
    from .synthetic.data import render_batch
    G = SyntheticHeads()
    clip = load_clip("miniclip")
    ws = torch.cat([latent_from_seed(G, s) for s in range(4)])
    cams = torch.cat([G.camera(0.2 * i - 0.3, 0.1) for i in range(4)])
    images = render_batch(G, ws, cams, 64)[0]
    prompts = G.expand_prompt("eyes")
    negative = json.loads((ROOT / "checkpoints" / "edits" / "eyes_blue.json").read_text())["negative_mask_prompts"]
    k = len(negative)
    cases = {"mask prompt": {}, f"+ {k} negative prompts": {"negative": negative},
             f"+ {k} negative, 5 shifts": {"negative": negative, "shift_px": 2, "shifts": 5},
             f"+ {k} negative, 9 shifts": {"negative": negative, "shift_px": 2, "shifts": 9},
             f"contrast ({len(prompts) - 1} other prompts)": {"select": "contrast"},
             "contrast, 9 shifts": {"select": "contrast", "shift_px": 2, "shifts": 9},
             "contrast, 9 shifts, refined": {"select": "contrast", "shift_px": 2, "shifts": 9, "refine": 10}}
    rows = {}
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for name, kw in cases.items():
            kw = {"select": "best", **kw}
            median, runs = _time(lambda: relevance_maps(clip, images, prompts, size=64, **kw), repeats, lambda: None)
            rows[name] = {"ms_per_call": round(median * 1000, 1), "runs_ms": [round(r * 1000, 1) for r in runs]}
        maps = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(0))
        big = F.interpolate(images[:1], size=(128, 128), mode="bilinear", align_corners=False)
        for name, (img, m) in {"refine alone, 4 x 64^2": (images, maps),
                               "refine alone, 1 x 128^2": (big, F.interpolate(maps[:1], size=(128, 128)))}.items():
            median, runs = _time(lambda: refine_maps(img, m, 10), repeats, lambda: None)
            rows[name] = {"ms_per_call": round(median * 1000, 1), "runs_ms": [round(r * 1000, 1) for r in runs]}
    finally:
        torch.set_num_threads(before)
    result = {"device": f"cpu ({platform.processor() or platform.machine()})", "torch": torch.__version__,
              "threads": threads, "batch": 4, "resolution": 64, "results": rows}
    print(f"relevance maps, MiniCLIP, batch 4 x 64^2, {threads} threads, torch {result['torch']}")
    for name, r in rows.items():
        print(f"{name:<26} {r['ms_per_call']:>8.1f} ms/call")
    return result


def bench_app(seeds: int = 5, frames: int = 48, train_recipe: str | None = None,
              train_steps: int | None = None) -> dict:
    """Latency of the app as a user sees it: ``python app.py`` is started on a local port (synthetic world, a fresh
    work folder) and driven over HTTP with gradio_client.

    Measures: edit preview (source + edited + mask, shipped edit ``eyes_blue``) per seed; a ``frames``-frame
    128x128 turntable; with ``train_recipe``, a training of that shipped recipe started from the Train tab (wall
    time until the finished package is listed, compared with the same training run by the CLI just before) and
    the preview latency while it runs (5 previews, which pause the training while they render)."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from gradio_client import Client

    from .studio.server import running_app
    root = Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="lenerf_bench_app_"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with running_app(work, "synthetic") as (url, startup):
        client = Client(url, verbose=False)

        def preview(seed):
            t = time.perf_counter()
            client.predict("synthetic", seed, 1.0, 0.2, 0.05, ["eyes_blue"], 1.0, api_name="/preview")
            return time.perf_counter() - t

        preview(0)  # warm-up (first request loads the edit)
        lat = [preview(s) for s in range(1, seeds + 1)]
        t = time.perf_counter()
        client.predict("synthetic", 1, 1.0, ["eyes_blue"], 1.0, frames, api_name="/turntable")
        tt = time.perf_counter() - t
        result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                  "torch": torch.__version__, "startup_s": round(startup, 1),
                  "preview_s": {"median": round(statistics.median(lat), 3), "max": round(max(lat), 3),
                                "runs": [round(x, 3) for x in lat]},
                  f"turntable_{frames}_frames_128px_s": round(tt, 1)}
        print(f"app startup {startup:.1f} s; edit preview median {statistics.median(lat):.3f} s "
              f"(max {max(lat):.3f}); {frames}-frame 128x128 turntable {tt:.1f} s")
        if train_recipe:
            import json
            recipe = root / "checkpoints" / "edits" / f"{train_recipe}.json"
            cfg = json.loads(recipe.read_text())
            steps = train_steps or cfg["steps"]
            # the app keeps the recipe's ratio of warm-up to edit steps: the CLI run gets the same warm-up
            warmup = round(cfg.get("afn_warmup", 0) * steps / cfg["steps"])
            # the same training by the CLI, now, on this machine (the app is idle meanwhile)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lenerf", "train", "--config", str(recipe), "--steps", str(steps),
                            "--afn-warmup", str(warmup), "--out", str(work / "cli_train")], cwd=root, env=env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cli_wall = time.perf_counter() - t
            t = time.perf_counter()
            job = client.submit("synthetic", train_recipe, cfg["mask_prompt"], cfg["edit_prompt"], steps,
                                cfg.get("strength", 1.0), cfg.get("texture_only", True), cfg.get("deformation", False),
                                api_name="/train")
            time.sleep(10)
            during = [preview(s) for s in range(1, seeds + 1)]
            status = job.result(timeout=7200)[0]
            wall = time.perf_counter() - t
            result["training"] = {"recipe": train_recipe, "steps": steps, "status": status[:120],
                                  "ui_wall_s": round(wall, 1), "cli_wall_s": round(cli_wall, 1),
                                  "preview_during_training_s": {"median": round(statistics.median(during), 3),
                                                                "max": round(max(during), 3)}}
            print(f"training '{train_recipe}' ({steps} steps) from the UI: {wall:.1f} s (CLI: {cli_wall:.1f} s); "
                  f"preview while training: median {statistics.median(during):.3f} s, max {max(during):.3f} s")
        return result


def bench_inversion(steps: int = 10, threads: int = 2) -> dict:
    """Seconds per projection step (render + perceptual + backward, preview preset, MiniCLIP perceptual) for the
    synthetic world and the full-size FFHQ EG3D architecture (random weights: the cost does not depend on them),
    plus one PTI step of the latter."""
    import os

    from .eg3d import EG3D
    from .generator import get_preset
    from .inversion import InversionConfig, invert, load_perceptual
    from .inversion.invert import _render
    from .synthetic import SyntheticHeads
    torch.set_num_threads(threads)
    per = load_perceptual("miniclip")
    rows = {}
    torch.manual_seed(0)
    for name, G in [("synthetic", SyntheticHeads()), ("eg3d ffhq512-128 (random weights)", EG3D(**FFHQ_INIT_KWARGS))]:
        G.eval()
        with torch.no_grad():
            ws = G.mapping(torch.randn(1, G.z_dim), G.camera(0.0, 0.0))
            target = _render(G, ws, torch.tensor(0.1), torch.tensor(0.0), get_preset("preview"), 256)
        for pti in (0, 2):
            if pti and name == "synthetic":
                continue
            cfg = InversionConfig(steps=steps, pti_steps=pti, early_stop_patience=10 ** 6)
            t = time.perf_counter()
            inv = invert(G, target, cfg, perceptual=per, progress=False)
            total = time.perf_counter() - t
            key = f"{name}, projection" + (f" + {pti} PTI steps" if pti else "")
            rows[key] = {"total_s": round(total, 2), "steps": steps, "pti_steps": pti,
                         "projection_s_per_step": round(inv.meta["projection_s"] / steps, 3)}
            if pti:
                rows[key]["pti_s_per_step"] = round((inv.meta["total_s"] - inv.meta["projection_s"]) / pti, 3)
            print(key, rows[key])
    return {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} threads",
            "torch": torch.__version__, "preset": "preview", "perceptual": per.name,
            "default_steps": InversionConfig().steps, "results": rows}


def bench_train(recipe: str = "eyes_big", steps: int = 10, threads: int = 2, device: str = "cpu",
                in_thread: bool = False, gate: bool = False, probe_every: float = 0.0) -> dict:
    """Seconds per training step of a shipped recipe (``checkpoints/edits/RECIPE.json``), by phase: ``steps`` steps
    of each phase the recipe has (mask warm-up, edit, mask cool-down), the median of each phase after its first
    step, and the run they project to at the recipe's own step counts (compare with its package's
    ``train_time_s``). Trains into a temporary folder that is removed; the recipe's seed and settings otherwise.
    ``in_thread``: the main thread renders one view of the generator first and the training runs in a worker
    thread, as the app did before session 35 (its worker trained while other threads rendered). ``gate``: as the app
    now: the generator's loading, the render and the training go through a :class:`lenerf.studio.ComputeGate`
    (one compute thread), the render from the main thread, the training from a worker thread (the training
    queue's), each step in ``gate.step()``. ``probe_every`` (with ``gate``): every that many seconds the main
    thread asks the gate to run an empty interactive task, as a preview asks it, and the result gives how long each
    waited (its median and maximum per phase of the step it arrived in): the time a preview waits for the step in
    flight."""
    import json
    import os
    import tempfile
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from .editing import EditConfig, train_edit
    from .hub import load_generator
    torch.set_num_threads(threads)
    path = Path(__file__).resolve().parents[1] / "checkpoints" / "edits" / f"{recipe}.json"
    if not path.is_file():
        from .errors import InputError
        raise InputError(f"no shipped recipe {recipe!r} (checkpoints/edits/{recipe}.json)")
    full = json.loads(path.read_text())
    counts = {"mask warm-up": full.get("afn_warmup", 0), "edit": full["steps"],
              "mask cool-down": full.get("afn_cooldown", 0)}
    cfg = EditConfig.from_file(path, afn_warmup=steps if counts["mask warm-up"] else 0, steps=steps,
                               afn_cooldown=steps if counts["mask cool-down"] else 0, save_every=10 ** 9,
                               preview_every=0)
    if in_thread and gate:
        from .errors import InputError
        raise InputError("bench train: --in-thread or --gate, not both")
    if probe_every and not gate:
        from .errors import InputError
        raise InputError("bench train: --probe-every needs --gate (it times requests to the app's compute thread)")
    from .studio.jobs import ComputeGate
    compute = ComputeGate() if gate else None
    load = lambda: load_generator(cfg.generator, device=device)  # noqa: E731
    G = compute.run(load) if gate else load()
    times: dict[str, list[float]] = {}
    last = [time.perf_counter()]
    phase_now = ["mask warm-up" if counts["mask warm-up"] else "edit"]  # the phase of the step in flight

    def tick(info: dict) -> None:
        now = time.perf_counter()
        times.setdefault(info["phase"], []).append(now - last[0])
        last[0] = now
        done, edit_end = info["step"], cfg.afn_warmup + cfg.steps
        phase_now[0] = ("mask warm-up" if done < cfg.afn_warmup else "edit" if done < edit_end
                        else "mask cool-down" if done < edit_end + cfg.afn_cooldown else "writing the package")

    waits: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="lenerf_bench_train_") as tmp:
        def run(step_guard=None) -> None:
            last[0] = time.perf_counter()
            train_edit(G, cfg, tmp, resume=False, progress=False, callback=tick, step_guard=step_guard)
        if in_thread or gate:
            from .pipeline import latent_from_seed, render_view
            view = lambda: render_view(G, latent_from_seed(G, 0, device=device))  # noqa: E731
            compute.run(view) if gate else view()
            job = (lambda: compute.run(run, compute.step, interactive=False)) if gate else run
            with ThreadPoolExecutor(1, thread_name_prefix="bench-train-worker") as worker:
                future = worker.submit(job)
                while probe_every and not future.done():  # a preview's wait for the step in flight
                    time.sleep(probe_every)
                    phase, asked = phase_now[0], time.perf_counter()
                    waits.setdefault(phase, []).append(compute.run(time.perf_counter) - asked)
                future.result()  # re-raises the worker's error here
        else:
            run()
    rows = {phase: {"median_s_per_step": round(statistics.median(ts[1:] or ts), 3), "steps_timed": len(ts),
                    "recipe_steps": counts[phase]} for phase, ts in times.items()}
    projected = sum(r["median_s_per_step"] * r["recipe_steps"] for r in rows.values())
    for phase, r in rows.items():
        print(f"{recipe}: {phase:<15} {r['median_s_per_step']:.3f} s/step (x {r['recipe_steps']} in the recipe)")
    print(f"{recipe}: projected full run {projected:.0f} s")
    for phase, wait in waits.items():
        rows.setdefault(phase, {}).update(request_wait_median_s=round(statistics.median(wait), 3),
                                          request_wait_max_s=round(max(wait), 3), requests=len(wait),
                                          request_waits_s=[round(w, 3) for w in wait])
        print(f"{recipe}: {phase:<15} a request waited {statistics.median(wait):.3f} s (median), "
              f"{max(wait):.3f} s (max), {len(wait)} requests")
    return {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} threads",
            "torch": torch.__version__, "device": device, "recipe": recipe, "in_thread": in_thread, "gate": gate,
            "phases": rows,
            "projected_run_s": round(projected, 1)}

