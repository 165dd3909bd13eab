"""Command line: ``python -m lenerf {convert,render,bench} ...`` (run with -h for options)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from .errors import LENeRFError


def _threads(n: int | None) -> None:
    import torch
    if n:
        torch.set_num_threads(n)


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
    from .bench import bench_render
    result = bench_render(repeats=a.repeats, threads=a.threads or 2, device=_device(a.device), quick=a.quick)
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
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

    b = sub.add_parser("bench", help="benchmarks")
    b.add_argument("what", choices=["render"])
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--json", default="outputs/bench_render.json")
    b.add_argument("--device", default="cpu")
    b.add_argument("--quick", action="store_true", help="one repeat, for smoke tests")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    _threads(args.threads)
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
