"""Edit packages: ``edit.json`` (prompts, generator, hyper-parameters, code version, metrics) +
``modules.safetensors`` (mapper, attention field, optional deformation). Local folders or Hub repos."""
from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from .. import __version__
from ..errors import CheckpointError, InputError, NotAvailableError
from .editor import Edit, EditModules

FORMAT = "lenerf-edit"


def save_edit(folder: str | Path, modules: EditModules, meta: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "modules.partial"
    save_file({k: v.detach().contiguous() for k, v in modules.state_dict().items()}, tmp)
    tmp.replace(folder / "modules.safetensors")
    info = {"format": FORMAT, "format_version": 1, "code_version": __version__, **meta}
    (folder / "edit.json").write_text(json.dumps(info, indent=1))
    return folder


def update_metrics(folder: str | Path, metrics: dict) -> None:
    path = Path(folder) / "edit.json"
    info = json.loads(path.read_text())
    info["metrics"] = {**info.get("metrics", {}), **metrics}
    path.write_text(json.dumps(info, indent=1))


def set_threshold(folder: str | Path, threshold: float, calibration: dict | None = None) -> None:
    """Set an edit package's inference mask threshold (``calibration``: how it was chosen, kept in edit.json)."""
    path = Path(folder) / "edit.json"
    info = json.loads(path.read_text())
    info["threshold"] = threshold_ok(threshold)
    if calibration is not None:
        info["threshold_calibration"] = calibration
    path.write_text(json.dumps(info, indent=1))


def _resolve(spec: str | os.PathLike, revision: str | None) -> Path:
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    s = str(spec)
    if s.count("/") == 1 and not s.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download
            return Path(snapshot_download(s, revision=revision, allow_patterns=["edit.json", "modules.safetensors"]))
        except Exception as e:
            raise NotAvailableError(f"could not get edit '{s}' from the Hub ({type(e).__name__}); offline? "
                                    "Use a local folder, or HF_HUB_OFFLINE=1 with a filled cache.") from None
    raise CheckpointError(f"edit not found: {spec} (expected a folder with edit.json + modules.safetensors, "
                          "or a Hub repo id)")


def load_edit(spec: str | os.PathLike, revision: str | None = None, device=None) -> tuple[Edit, dict]:
    """-> (Edit ready for :class:`~lenerf.editing.LocalEditor`, the edit.json contents)."""
    folder = _resolve(spec, revision)
    if not (folder / "edit.json").is_file() or not (folder / "modules.safetensors").is_file():
        raise CheckpointError(f"{folder} is not an edit package (needs edit.json and modules.safetensors)")
    info = json.loads((folder / "edit.json").read_text())
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{folder}/edit.json is not a {FORMAT} file")
    modules = EditModules(**info["module_config"])
    try:
        modules.load_state_dict(load_file(folder / "modules.safetensors"), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{folder}: weights do not match edit.json's module_config ({e})") from None
    modules.eval().requires_grad_(False)
    if device is not None:
        modules.to(device)
    edit = Edit(modules, strength=float(info.get("strength", 1.0)), texture_only=bool(info.get("texture_only")),
                threshold=info.get("threshold"), name=info.get("name", folder.name),
                use_mask=bool(info.get("config", {}).get("use_mask", True)),
                binarize=bool(info.get("config", {}).get("binarize_mask", False)), part=info.get("mask_prompt"),
                deform_target=bool(info.get("config", {}).get("deform_target", False)))
    return edit, info


def push_edit_to_hub(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload an edit package (needs a token: argument, HF_TOKEN, or a cached login)."""
    from huggingface_hub import HfApi
    token = token or os.environ.get("HF_TOKEN")
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                             allow_patterns=["edit.json", "modules.safetensors", "*.png", "README.md"])
    return str(getattr(info, "commit_url", info))


def threshold_ok(x: float, name: str = "a mask threshold") -> float:
    if not 0.0 <= float(x) < 1.0:
        raise InputError(f"{name} must be in [0, 1), got {x}")
    return float(x)


def strength_ok(x: float) -> float:
    if not -1.0 <= float(x) <= 3.0:
        raise InputError(f"edit strength must be between -1 and 3, got {x}")
    return float(x)


__all__ = ["load_edit", "push_edit_to_hub", "save_edit", "update_metrics"]
