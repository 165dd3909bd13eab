"""Resumable training state: modules + optimisers <-> ``train_state.safetensors`` and ``train_state.json``."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import InputError


class TrainingState:
    """modules + optimisers <-> ``train_state.safetensors`` / ``train_state.json``."""

    @staticmethod
    def save(folder: Path, modules: torch.nn.Module, opts: dict, step: int, extra: dict) -> None:
        t = {f"model/{k}": v.detach().contiguous() for k, v in modules.state_dict().items()}
        for name, opt in opts.items():
            for i, st in opt.state_dict()["state"].items():
                for k, v in st.items():
                    t[f"opt/{name}/{i}/{k}"] = torch.as_tensor(v).contiguous()
        save_file(t, folder / "train_state.partial")
        (folder / "train_state.partial").replace(folder / "train_state.safetensors")
        (folder / "train_state.json").write_text(json.dumps({"step": step, **extra}))

    @staticmethod
    def load(folder: Path, modules: torch.nn.Module, opts: dict, config: dict | None = None,
             ignore: tuple[str, ...] = (), defaults: dict | None = None) -> tuple[int, dict]:
        """-> (step, saved extras). With ``config``: the saved state must have been trained with the same settings
        (its ``extra["config"]``, keys in ``ignore`` aside), else InputError: resuming another configuration's
        state would silently continue (or return) the wrong model. States saved without a config are not checked;
        ``defaults``: see :meth:`check`."""
        meta = json.loads((folder / "train_state.json").read_text())
        if config is not None:
            TrainingState.check(folder, config, ignore, defaults)
        t = load_file(folder / "train_state.safetensors")
        modules.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model/")})
        for name, opt in opts.items():
            sd = opt.state_dict()
            state: dict = {}
            for k, v in t.items():
                if k.startswith(f"opt/{name}/"):
                    _, _, i, key = k.split("/")
                    state.setdefault(int(i), {})[key] = v
            sd["state"] = state
            opt.load_state_dict(sd)
        return int(meta["step"]), meta

    @staticmethod
    def check(folder: Path, config: dict, ignore: tuple[str, ...] = (), defaults: dict | None = None) -> None:
        """InputError when ``folder`` holds a state saved with another ``config`` (keys in ``ignore`` aside). A key
        the saved config lacks (a setting added since) agrees when ``config`` has its value from ``defaults``."""
        path = Path(folder) / "train_state.json"
        if not path.is_file():
            return
        meta = json.loads(path.read_text())
        saved = meta.get("config")
        if not isinstance(saved, dict):
            return

        def key(d: dict, k: str) -> str:
            return json.dumps(d.get(k), sort_keys=True)

        def same(k: str) -> bool:
            if k not in saved and defaults is not None and k in defaults:
                return key(defaults, k) == key(config, k)
            return key(saved, k) == key(config, k)

        differ = sorted(k for k in set(saved) | set(config) if k not in ignore and not same(k))
        if differ:
            raise InputError(f"{folder} holds a training state (step {meta['step']}) of another configuration "
                             f"(different: {', '.join(differ)}); start afresh with --restart or use another folder")

    @staticmethod
    def clear(folder: Path) -> None:
        """Remove a saved state (cached data in the folder stays)."""
        for name in ("train_state.json", "train_state.safetensors"):
            (Path(folder) / name).unlink(missing_ok=True)
