"""Command line: ``python -m lenerf {convert,render,bench} ...`` (run with -h for options)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import InputError, LENeRFError
from .runtime import setup


def _device(name: str | None) -> str:
    import torch
    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def cmd_convert(a) -> int:
    from .hub import convert_official
    model = convert_official(a.pickle, a.out_dir)
    print(f"converted {a.pickle} -> {a.out_dir} ({model.parameter_count():,} parameters, "
          f"{model.img_resolution}px, neural rendering {model.neural_rendering_resolution})")
    return 0


def cmd_render(a) -> int:
    from tqdm import tqdm

    from .hub import load_generator
    from .media import save_png, side_by_side, write_video
    from .pipeline import latent_from_seed, render_turntable, render_view
    out = Path(a.out)
    G = load_generator(a.generator, revision=a.revision, device=_device(a.device))
    for seed in a.seed:
        ws = latent_from_seed(G, seed, a.truncation)
        view = render_view(G, ws, a.yaw, a.pitch, preset=a.preset)
        p = save_png(view.image, out / f"seed{seed:04d}.png")
        save_png(view.depth, out / f"seed{seed:04d}_depth.png")
        print(f"wrote {p} and its depth map")
        if a.turntable:
            bar = tqdm(total=a.frames, desc=f"turntable seed {seed}", unit="frame")
            views = render_turntable(G, ws, a.frames, a.preset, progress=lambda k, n: bar.update(1))
            bar.close()
            frames = [side_by_side(v.image, v.depth) for v in views]
            if a.save_frames:
                for k, f in enumerate(frames):
                    save_png(f, out / f"seed{seed:04d}_frames" / f"{k:04d}.png")
            video = write_video(frames, out / f"seed{seed:04d}_turntable.mp4", fps=a.fps)
            print(f"wrote {video}")
    return 0


def cmd_bench(a) -> int:
    from .bench import bench_app, bench_inversion, bench_relevance, bench_render, bench_synthetic, bench_train
    if a.what == "train":
        result = bench_train(a.train_recipe or "eyes_big", steps=a.train_steps or (3 if a.quick else 10),
                             threads=a.threads or 2, device=_device(a.device), in_thread=a.in_thread, gate=a.gate,
                             probe_every=a.probe_every)
        if a.json == "outputs/bench_render.json":
            how = "_in_thread" if a.in_thread else "_gate" if a.gate else ""
            a.json = f"outputs/bench_train_{result['recipe']}{how}.json"
    elif a.what == "inversion":
        result = bench_inversion(steps=3 if a.quick else 10)
        if a.json == "outputs/bench_render.json":
            a.json = "outputs/bench_inversion.json"
    elif a.what == "app":
        result = bench_app(seeds=2 if a.quick else 5, frames=8 if a.quick else 48, train_recipe=a.train_recipe,
                           train_steps=a.train_steps)
        if a.json == "outputs/bench_render.json":
            a.json = "outputs/bench_app.json"
    elif a.what == "relevance":
        result = bench_relevance(repeats=1 if a.quick else max(a.repeats, 3), threads=a.threads or 2)
        if a.json == "outputs/bench_render.json":
            a.json = "outputs/bench_relevance.json"
    elif a.what == "synthetic":
        result = bench_synthetic(repeats=1 if a.quick else max(a.repeats, 3))
        if a.json == "outputs/bench_render.json":
            a.json = "outputs/bench_synthetic.json"
    else:
        result = bench_render(repeats=a.repeats, threads=a.threads or 2, device=_device(a.device), quick=a.quick)
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


#: the most edit steps `train` and `config` accept without a config file (the app's limit is lower: Limits.max_steps)
CLI_MAX_STEPS = 100_000


def cmd_train(a) -> int:
    from dataclasses import replace

    from .editing import EditConfig, train_edit
    from .hub import load_generator
    overrides = {"mask_prompt": a.mask_prompt, "edit_prompt": a.edit_prompt, "generator": a.generator,
                 "steps": a.steps, "seed": a.seed, "strength": a.strength, "deformation": a.deformation or None,
                 "clip": a.clip, "edit_clip": a.edit_clip}
    if a.texture_only is not None:
        overrides["texture_only"] = a.texture_only
    if a.afn_warmup is not None:
        overrides["afn_warmup"] = a.afn_warmup
    if a.global_edit:  # the ablation: no attention field, the raw target everywhere (nothing that reads the mask)
        overrides.update(use_mask=False, afn_warmup=0, lambda_outside=0.0, lambda_outside_target=0.0)
    if a.config and a.official:
        raise InputError("--official trains every field at its default; with --config the file's fields: pick one")
    if a.config:
        cfg = EditConfig.from_file(a.config, **overrides)
    else:
        if not a.mask_prompt or not a.edit_prompt:
            raise InputError("--mask-prompt and --edit-prompt are required (or --config FILE)")
        if a.official:  # every field at its default: the official recipe
            cfg = EditConfig(**{k: v for k, v in overrides.items() if v is not None})
        else:  # the app's config for a new edit (what `python -m lenerf config` writes), the flags on top
            from .studio import check_prompt
            from .studio.configs import make_config, shape_note
            cfg = make_config(a.generator or EditConfig.generator, check_prompt(a.mask_prompt, "--mask-prompt"),
                              check_prompt(a.edit_prompt, "--edit-prompt"), None, a.steps, a.strength,
                              a.texture_only, a.deformation or None, max_steps=CLI_MAX_STEPS)
            made = ("mask_prompt", "edit_prompt", "generator", "steps", "strength", "texture_only", "deformation")
            rest = {k: v for k, v in overrides.items() if v is not None and k not in made}
            cfg = replace(cfg, **rest)
            _print_note(shape_note(cfg))
    if a.clip_pretrained is not None:  # after the config: "none" (random weights) must override it too
        cfg = replace(cfg, clip_pretrained=None if a.clip_pretrained.lower() == "none" else a.clip_pretrained)
    G = load_generator(cfg.generator, device=_device(a.device))
    out = train_edit(G, cfg, a.out, resume=not a.restart)
    print(f"wrote edit package {out}")
    return 0


def cmd_config(a) -> int:
    from dataclasses import asdict

    from .studio import check_prompt
    from .studio.configs import make_config, shape_note
    cfg = make_config(a.generator, check_prompt(a.mask_prompt, "--mask-prompt"),
                      check_prompt(a.edit_prompt, "--edit-prompt"), a.recipe, a.steps, a.strength,
                      texture_only=a.texture_only, deformation=a.deformation or None, max_steps=CLI_MAX_STEPS)
    if a.eval_target:
        target = {}
        for kv in a.eval_target:
            key, sep, value = kv.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise InputError(f"--eval-target takes KEY=VALUE (e.g. hair=white), got {kv!r}")
            target[key.strip()] = value.strip()
        part = a.eval_part or next(iter(target))
        if a.generator == "synthetic":
            from .synthetic.world import PARTS
            if part not in PARTS:
                raise InputError(f"--eval-part: {part!r} is not a part of the synthetic world (one of "
                                 f"{', '.join(PARTS)}); e.g. --eval-target hair_length=long --eval-part hair")
        cfg.eval = {"part": part, "target": target}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(cfg), indent=1))
    print(f"wrote {out} (train it with: python -m lenerf train --config {out} --out DIR)")
    _print_note(shape_note(cfg))
    return 0


def _print_note(note: str) -> None:
    """A config's note for the user (:func:`lenerf.studio.configs.shape_note`), as the app's job status shows it."""
    if note:
        print(f"note: {note}")


def _load_edits(specs, device):
    from .editing import load_edit
    edits, infos = [], []
    for spec in specs:
        e, info = load_edit(spec, device=device)
        edits.append(e)
        infos.append(info)
    from .editing.editor import REORDER_REASON, application_order
    order = application_order(edits)
    if order != sorted(order):
        print(f"applying the edits in this order: {', then '.join(str(specs[i]) for i in order)} ({REORDER_REASON})")
    return edits, infos


def _override(edits, strength: float | None, threshold: float | None) -> None:
    """--strength / --threshold given on the command line replace each edit's own."""
    from .editing.package import strength_ok, threshold_ok
    for e in edits:
        e.strength = e.strength if strength is None else strength_ok(strength)
        e.threshold = e.threshold if threshold is None else threshold_ok(threshold, "--threshold")


def cmd_edit(a) -> int:
    from tqdm import tqdm

    from .editing import LocalEditor
    from .hub import load_generator
    from .media import save_png, write_video
    from .pipeline import latent_from_seed, render_edit, render_edit_turntable
    dev = _device(a.device)
    G = load_generator(a.generator, device=dev)
    edits, _ = _load_edits(a.edit, dev)
    _override(edits, a.strength, a.threshold)
    out = Path(a.out)
    if a.inversion:  # a photo inverted by `lenerf invert`: its ws, camera and (PTI) tuned generator
        from .inversion import Inversion
        inv = Inversion.load(a.inversion, device=dev)
        G.check_ws(inv.ws)
        jobs = [("photo", inv.ws, inv.generator(G), inv.yaw if a.yaw is None else a.yaw,
                 inv.pitch if a.pitch is None else a.pitch)]
    else:
        jobs = [(f"seed{seed:04d}", latent_from_seed(G, seed, a.truncation, device=dev), G, a.yaw or 0.0,
                 a.pitch or 0.0) for seed in a.seed]
    for name, ws, Gk, yaw, pitch in jobs:
        editor = LocalEditor(Gk, edits)
        v = render_edit(editor, ws, yaw, pitch, preset=a.preset)
        save_png(v.source, out / f"{name}_before.png")
        save_png(v.edited, out / f"{name}_after.png")
        save_png(v.overlay, out / f"{name}_mask.png")
        print(f"wrote {out}/{name}_before.png, _after.png, _mask.png")
        if a.turntable:
            with tqdm(total=a.frames, desc=f"turntable {name}", unit="frame") as bar:
                views = render_edit_turntable(editor, ws, a.frames, preset=a.preset,
                                              progress=lambda k, n: bar.update(1))
            print(f"wrote {write_video([v.strip() for v in views], out / f'{name}_turntable.mp4', fps=a.fps)}")
    return 0


def cmd_invert(a) -> int:
    from tqdm import tqdm

    from .hub import load_generator
    from .inversion import InversionConfig, align_face, image_to_tensor, invert, load_perceptual, load_photo
    from .media import save_png, write_video
    from .pipeline import render_turntable
    dev = _device(a.device)
    G = load_generator(a.generator, device=dev)
    photo = load_photo(a.photo)
    crop = a.crop or ("none" if a.generator == "synthetic" else "auto")
    kind = a.kind or ("cat" if "cat" in str(a.generator) else "human")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if crop == "none":
        aligned, notes = photo.image, list(photo.notes)
    else:
        face = align_face(photo.image, kind=kind, crop=crop)
        aligned, notes = face.image, photo.notes + face.notes
    for n in notes:
        print(f"note: {n}")
    aligned.save(out / "aligned.png")
    cfg = InversionConfig(steps=a.steps, pti_steps=a.pti_steps, w_plus=not a.w, optimize_camera=not a.fixed_camera,
                          time_budget_s=a.time_budget, preset=a.preset, seed=a.seed)
    per = load_perceptual(a.perceptual, device=dev)
    print(f"perceptual loss: {per.name}")
    inv = invert(G, image_to_tensor(aligned).to(dev), cfg, perceptual=per)
    inv.meta.update({"photo": str(a.photo), "generator": a.generator, "notes": notes, "crop": crop, "kind": kind})
    inv.save(out)
    Gi = inv.generator(G)
    from .pipeline import render_view
    save_png(render_view(Gi, inv.ws, inv.yaw, inv.pitch, preset=a.preset).image, out / "reconstruction.png")
    if a.frames:
        with tqdm(total=a.frames, desc="turntable", unit="frame") as bar:
            views = render_turntable(Gi, inv.ws, a.frames, a.preset, progress=lambda k, n: bar.update(1))
        write_video([v.image for v in views], out / "turntable.mp4")
    print(f"PSNR at the input view {inv.meta['psnr_input_view']} dB after {inv.meta['steps_run']} steps "
          f"({inv.meta['stop']}, {inv.meta['total_s']} s); camera yaw {inv.yaw:.3f} pitch {inv.pitch:.3f}")
    print(f"wrote {out}/aligned.png, reconstruction.png, turntable.mp4 and the inversion package")
    return 0


def cmd_eval(a) -> int:
    from .editing.evaluate import evaluate_edits
    from .editing.package import update_metrics
    from .hub import load_generator
    from .media import save_png
    from .synthetic.classifier import load_classifier
    if a.heads is None:
        a.heads = 96 if a.what == "labels" else 20
    if a.what == "inversion":  # synthetic: against the truth; any other generator: images it made itself
        import torch

        from .inversion import InversionConfig, load_perceptual
        from .inversion.evaluate import evaluate_inversion
        G = load_generator(a.generator, device=_device(a.device))
        synthetic = a.generator == "synthetic"
        cfg = InversionConfig(steps=a.steps, pti_steps=0, preset=a.preset, optimize_camera=synthetic,
                              lambda_perceptual=0.1 if synthetic else 0.0)
        metrics, sheet = evaluate_inversion(G, heads=a.heads, cfg=cfg, novel_yaw=0.4,
                                            perceptual=load_perceptual("miniclip"), same_view=not synthetic)
        metrics["machine"] = f"{torch.get_num_threads()} torch threads, {_device(a.device)}"
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        save_png(sheet, out / "contact_sheet.png")
        print(json.dumps({k: v for k, v in metrics.items() if k != "per_head"}, indent=1))
        print(f"wrote {out / 'metrics.json'} and {out / 'contact_sheet.png'}")
        return 0
    if a.generator != "synthetic":
        raise InputError(f"{a.what} evaluation needs ground truth: use --generator synthetic")
    G = load_generator("synthetic")
    if a.what == "labels":
        return _eval_labels(a, G)
    if not a.edit:
        raise InputError(f"--edit is required for eval {a.what}")
    edits, infos = _load_edits(a.edit, "cpu")
    if a.what == "threshold":
        return _eval_threshold(a, G, edits, infos)
    if a.what == "mapper":
        return _eval_mapper(a, G, edits, infos)
    _override(edits, a.strength, a.threshold)
    targets = [info.get("eval", {}).get("target", {}) for info in infos]
    parts = [info.get("eval", {}).get("part") for info in infos]
    if not all(parts) or not all(targets):
        raise InputError("every edit needs eval.target and eval.part in its edit.json (e.g. "
                         '{"eval": {"part": "eyes", "target": {"eyes": "blue"}}})')
    if a.classifier and a.write_metrics:
        raise InputError("--write-metrics stores the shipped classifier's verdict; drop --classifier to use it")
    if a.training_heads and a.write_metrics:
        raise InputError("--write-metrics stores the held-out verdict; drop --training-heads to store it")
    if a.edited_importance is not None and a.edited_importance < 0:
        raise InputError(f"--edited-importance must be >= 0 (0: the source's samples only), not {a.edited_importance}")
    from .synthetic.data import EVAL_SEED_BASE, TRAIN_SEED_BASE
    seed_base = (TRAIN_SEED_BASE if a.training_heads else EVAL_SEED_BASE) + 70_000
    metrics, sheet = evaluate_edits(G, edits, targets, parts, heads=a.heads, classifier=load_classifier(a.classifier),
                                    seed_base=seed_base, edited_importance=a.edited_importance)
    metrics["strengths"] = [e.strength for e in edits]
    metrics["thresholds"] = [e.threshold for e in edits]
    metrics["edited_importance"] = a.edited_importance  # None: the render's importance count
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    save_png(sheet, out / "contact_sheet.png")
    print(json.dumps(metrics, indent=1))
    if a.write_metrics and len(a.edit) == 1:
        key = "synthetic_eval" + ("" if a.strength is None else f"_strength_{a.strength:g}") \
            + ("" if a.threshold is None else f"_threshold_{a.threshold:g}") \
            + ("" if a.edited_importance is None else f"_edited_importance_{a.edited_importance}")
        update_metrics(a.edit[0], {key: metrics})
    print(f"wrote {out / 'metrics.json'} and {out / 'contact_sheet.png'}")
    return 0


def _eval_labels(a, G) -> int:
    from .editing import EditConfig, load_edit
    from .editing.evaluate import pseudo_label_table
    from .media import save_png
    if bool(a.config) == bool(a.edit):
        raise InputError("eval labels measures one config: give --config FILE (an edit config) or one --edit DIR")
    if a.edit and len(a.edit) > 1:
        raise InputError("eval labels measures one config: give one --edit DIR")
    if a.config:
        cfg = EditConfig.from_file(a.config)
    else:
        cfg = EditConfig(**load_edit(a.edit[0])[1]["config"])
    part = a.part or (cfg.eval or {}).get("part")
    if not part:
        raise InputError("which part do the labels mark? give --part (e.g. hair) or eval.part in the config")
    metrics, sheet = pseudo_label_table(G, cfg, part, heads=a.heads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "labels.json").write_text(json.dumps(metrics, indent=1))
    save_png(sheet, out / "contact_sheet.png")
    print(json.dumps(metrics, indent=1))
    print(f"wrote {out / 'labels.json'} and {out / 'contact_sheet.png'}")
    return 0


def _eval_mapper(a, G, edits, infos) -> int:
    from .editing.evaluate import mapper_table
    ev = infos[0].get("eval", {}) if len(edits) == 1 else {}
    if not ev.get("part") or not ev.get("target"):
        raise InputError("eval mapper takes one edit with eval.part and eval.target in its edit.json")
    table = mapper_table(G, edits[0], ev["part"], ev["target"], heads=a.heads, strength=a.strength)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mapper.json").write_text(json.dumps(table, indent=1))
    print(json.dumps(table, indent=1))
    print(f"wrote {out / 'mapper.json'}")
    return 0


def _eval_threshold(a, G, edits, infos) -> int:
    from .editing.evaluate import threshold_sweep
    from .editing.package import set_threshold
    if len(edits) != 1 or not infos[0].get("eval", {}).get("part"):
        raise InputError("eval threshold takes one edit with eval.part in its edit.json")
    if a.write_threshold and infos[0].get("module_config", {}).get("deformation"):
        raise InputError("a geometry edit's threshold is not calibrated by IoU (it does not see where the deformed "
                         "density goes): measure candidates with eval edit --threshold X instead")
    sweep = threshold_sweep(G, edits[0], infos[0]["eval"]["part"], heads=a.heads,
                            target=infos[0]["eval"].get("target"))
    sweep["threshold_before"] = infos[0].get("threshold")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "threshold.json").write_text(json.dumps(sweep, indent=1))
    print(json.dumps(sweep, indent=1))
    if a.write_threshold:
        set_threshold(a.edit[0], sweep["best_threshold"], calibration=sweep)
        stale = "; its stored metrics are now stale: run eval edit --write-metrics" \
            if sweep["best_threshold"] != sweep["threshold_before"] else ""
        print(f"set the threshold of {a.edit[0]} to {sweep['best_threshold']} (was {sweep['threshold_before']}){stale}")
    print(f"wrote {out / 'threshold.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lenerf", description=__doc__)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="official EG3D .pkl -> config.json + model.safetensors (no code execution)")
    c.add_argument("pickle")
    c.add_argument("out_dir")
    c.set_defaults(func=cmd_convert)

    r = sub.add_parser("render", help="render heads (PNG + depth, optional turntable video)")
    r.add_argument("--generator", required=True, help="registry id (ffhq, afhqcats), folder, .pkl or Hub repo id")
    r.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    r.add_argument("--seed", type=int, nargs="+", default=[0])
    r.add_argument("--out", required=True)
    r.add_argument("--preset", choices=["preview", "full"], default="preview")
    r.add_argument("--truncation", type=float, default=None, help="psi (default: the generator's own, 0.7 for EG3D)")
    r.add_argument("--yaw", type=float, default=0.0, help="radians from frontal, + moves the camera to +x")
    r.add_argument("--pitch", type=float, default=0.0, help="radians from frontal, + raises the camera")
    r.add_argument("--turntable", action="store_true")
    r.add_argument("--frames", type=int, default=48)
    r.add_argument("--fps", type=int, default=24)
    r.add_argument("--save-frames", action="store_true", help="also write every turntable frame as PNG")
    r.add_argument("--device", default="auto")
    r.set_defaults(func=cmd_render)

    t = sub.add_parser("train", help="train an edit (mask prompt + edit prompt) into an edit package")
    t.add_argument("--generator", default=None)
    t.add_argument("--mask-prompt", default=None)
    t.add_argument("--edit-prompt", default=None)
    t.add_argument("--config", default=None, help="JSON config (EditConfig fields); flags override it")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--strength", type=float, default=None)
    t.add_argument("--deformation", action="store_true", help="train the deformation network too")
    t.add_argument("--texture-only", dest="texture_only", action="store_true", default=None)
    t.add_argument("--geometry", dest="texture_only", action="store_false", help="let the edit change geometry")
    t.add_argument("--clip", default=None,
                   help="'miniclip' (default), a shipped MiniCLIP ('miniclip-length', 'miniclip-color', "
                        "'miniclip-palette', 'miniclip-eyes'), a MiniCLIP folder or an open_clip model name")
    t.add_argument("--clip-pretrained", default=None,
                   help="weights of an open_clip --clip: 'openai', a local file, or 'none' for random weights (a "
                        "smoke test offline); default: the config's (EG3D: 'openai')")
    t.add_argument("--edit-clip", default=None,
                   help="another CLIP for the mapper's loss only (the masks still come from --clip)")
    t.add_argument("--afn-warmup", type=int, default=None, help="attention-field-only steps before the edit steps")
    t.add_argument("--official", action="store_true",
                   help="without --config: the official recipe (every config field at its default) instead of the "
                        "app's config for a new edit of the generator (`python -m lenerf config`)")
    t.add_argument("--global-edit", action="store_true",
                   help="ablation: train without the attention field (the edit applies everywhere; the losses "
                        "that need the mask, lambda_outside and lambda_outside_target, are off)")
    t.add_argument("--restart", action="store_true", help="ignore a checkpoint in --out instead of resuming")
    t.add_argument("--device", default="auto")
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("config", help="write the config the app trains for a new edit (a shipped recipe or the "
                                      "generator's defaults for a new edit) as JSON, for `train --config`")
    g.add_argument("--generator", required=True)
    g.add_argument("--mask-prompt", required=True)
    g.add_argument("--edit-prompt", required=True)
    g.add_argument("--recipe", default=None, help="a shipped recipe (checkpoints/edits/NAME.json) to start from")
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--strength", type=float, default=None)
    g.add_argument("--deformation", action="store_true", help="train the deformation network too")
    g.add_argument("--texture-only", dest="texture_only", action="store_true", default=None,
                   help="keep the geometry (as the app's 'Texture only'; default: the recipe's, else on)")
    g.add_argument("--geometry", dest="texture_only", action="store_false",
                   help="let the edit change geometry (the app's 'Texture only' unticked)")
    g.add_argument("--eval-target", action="append", default=None, metavar="KEY=VALUE",
                   help="synthetic world: the attribute the edit should produce, for `eval edit` (e.g. hair=white; "
                        "repeat for several)")
    g.add_argument("--eval-part", default=None, help="the ground-truth part of the edit (default: the first KEY)")
    g.add_argument("--out", required=True, help="the JSON file to write")
    g.set_defaults(func=cmd_config)

    e = sub.add_parser("edit", help="apply trained edits: before / after / mask PNGs, optional turntable")
    e.add_argument("--generator", required=True)
    e.add_argument("--edit", action="append", required=True, help="edit package folder or Hub repo (repeat to stack)")
    e.add_argument("--seed", type=int, nargs="+", default=[0])
    e.add_argument("--inversion", default=None, help="an inversion package (from `lenerf invert`) instead of seeds")
    e.add_argument("--out", required=True)
    e.add_argument("--strength", type=float, default=None, help="edit strength (default: each edit's own)")
    e.add_argument("--threshold", type=float, default=None,
                   help="inference mask threshold in [0, 1) (default: each edit's own)")
    e.add_argument("--truncation", type=float, default=None)
    e.add_argument("--yaw", type=float, default=None, help="default 0 (or the inverted photo's camera)")
    e.add_argument("--pitch", type=float, default=None)
    e.add_argument("--preset", choices=["preview", "full"], default="full")
    e.add_argument("--turntable", action="store_true")
    e.add_argument("--frames", type=int, default=48)
    e.add_argument("--fps", type=int, default=24)
    e.add_argument("--device", default="auto")
    e.set_defaults(func=cmd_edit)

    v = sub.add_parser("eval", help="measure edits or inversion on the synthetic world (JSON + PNG contact sheet)")
    v.add_argument("what", choices=["edit", "inversion", "threshold", "mapper", "labels"],
                   help="threshold: the 3D mask's precision / recall / IoU per inference threshold on training heads "
                        "(with a colour target also the colour fill and the PSNR outside, and the pick by them); "
                        "mapper: per source colour, the colour of the raw target latents (no rendering); labels: "
                        "a config's 2D pseudo-labels against the true part on training renders (no training)")
    v.add_argument("--generator", default="synthetic")
    v.add_argument("--edit", action="append", help="repeat to evaluate a sequential edit")
    v.add_argument("--config", default=None, help="labels: an edit config JSON (instead of --edit's package)")
    v.add_argument("--part", default=None, help="labels: the part the labels should mark (default: eval.part)")
    v.add_argument("--steps", type=int, default=500, help="inversion: projection steps")
    v.add_argument("--preset", choices=["preview", "full"], default="preview", help="inversion: render quality")
    v.add_argument("--device", default="cpu")
    v.add_argument("--heads", type=int, default=None,
                   help="held-out heads, default 20 (threshold: training heads; labels: training renders, default 96)")
    v.add_argument("--out", required=True)
    v.add_argument("--strength", type=float, default=None, help="edit strength (default: the edit's own)")
    v.add_argument("--threshold", type=float, default=None,
                   help="inference mask threshold in [0, 1) (default: the edit's own)")
    v.add_argument("--write-metrics", action="store_true", help="store the metrics in the edit's edit.json")
    v.add_argument("--edited-importance", type=int, default=None,
                   help="edit: importance samples per ray of the edited field where an edit changes the shape "
                        "(default: the render's importance count; 0: the source's samples only, as before session 37)")
    v.add_argument("--training-heads", action="store_true",
                   help="edit: measure on heads of the training seed range instead of held-out ones (a check of how "
                        "much the figures depend on the heads drawn)")
    v.add_argument("--classifier", default=None,
                   help="edit: the attribute classifier that judges success (default: the shipped one)")
    v.add_argument("--write-threshold", action="store_true",
                   help="threshold: store the best threshold (and the sweep) in the edit's edit.json")
    v.set_defaults(func=cmd_eval)

    i = sub.add_parser("invert", help="photo -> aligned crop, reconstruction, turntable, inversion package")
    i.add_argument("photo")
    i.add_argument("--generator", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--kind", choices=["human", "cat"], default=None, help="default: cat for cat generators")
    i.add_argument("--crop", choices=["auto", "center", "none"], default=None,
                   help="auto = detect and align (default; 'none' for the synthetic world)")
    i.add_argument("--steps", type=int, default=500)
    i.add_argument("--pti-steps", type=int, default=0, help="pivotal tuning steps (EG3D only; 0 = off)")
    i.add_argument("--w", action="store_true", help="optimise a single w instead of w+")
    i.add_argument("--fixed-camera", action="store_true", help="do not optimise yaw/pitch")
    i.add_argument("--time-budget", type=float, default=None, help="seconds")
    i.add_argument("--perceptual", choices=["auto", "lpips", "vit-b-32", "miniclip"], default="auto")
    i.add_argument("--preset", choices=["preview", "full"], default="preview")
    i.add_argument("--frames", type=int, default=48, help="turntable frames (0 = none)")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--device", default="auto")
    i.set_defaults(func=cmd_invert)

    b = sub.add_parser("bench", help="benchmarks")
    b.add_argument("what", choices=["render", "synthetic", "relevance", "app", "inversion", "train"])
    b.add_argument("--train-recipe", default=None,
                   help="app: also train this shipped recipe from the UI; train: the recipe to time (eyes_big)")
    b.add_argument("--train-steps", type=int, default=None,
                   help="app: steps of that training (default: the recipe's); train: steps timed per phase (10)")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--json", default="outputs/bench_render.json")
    b.add_argument("--device", default="cpu")
    b.add_argument("--quick", action="store_true", help="one repeat, for smoke tests")
    b.add_argument("--in-thread", action="store_true",
                   help="train: render once in the main thread, then train in a worker thread (the app before "
                        "its compute thread)")
    b.add_argument("--gate", action="store_true",
                   help="train: render and train through a ComputeGate, from the main and a worker thread (as the app)")
    b.add_argument("--probe-every", type=float, default=0.0,
                   help="train --gate: every that many seconds ask the compute thread for an empty request, as a "
                        "preview does, and report how long it waited")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    setup(args.threads)
    try:
        return args.func(args)
    except LENeRFError as e:
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
