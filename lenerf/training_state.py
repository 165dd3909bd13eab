"""Resumable training state: modules + optimisers <-> ``train_state.safetensors`` and ``train_state.json``."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


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
    def load(folder: Path, modules: torch.nn.Module, opts: dict) -> tuple[int, dict]:
        meta = json.loads((folder / "train_state.json").read_text())
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
