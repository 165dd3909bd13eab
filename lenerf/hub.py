"""Finding generators: short registry ids, local folders/pickles, Hugging Face Hub repos, and the cache.

``load_generator(spec)`` accepts
* a registry id from ``checkpoints/registry.json`` (``ffhq``, ``afhqcats``): the official pickle is fetched with
  ``hf_hub_download`` (or taken from the Hub cache), converted once to config.json + model.safetensors under
  the lenerf cache, and loaded from there afterwards;
* a local folder written by ``save_pretrained`` / ``python -m lenerf convert``;
* a local official ``.pkl`` file (read without executing anything);
* a Hub repo id ``owner/name`` holding a converted checkpoint (``revision`` selects a branch/tag/commit).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import CheckpointError, InputError, NotAvailableError

ROOT = Path(__file__).resolve().parents[1]


def registry_path() -> Path:
    return Path(os.environ.get("LENERF_REGISTRY", ROOT / "checkpoints" / "registry.json"))


def load_registry() -> dict[str, dict]:
    path = registry_path()
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def cache_dir() -> Path:
    return Path(os.environ.get("LENERF_CACHE", Path.home() / ".cache" / "lenerf"))


def convert_official(pkl: str | Path, out_dir: str | Path):
    """Convert an official EG3D pickle to ``out_dir`` (config.json + model.safetensors); returns the model."""
    from .eg3d import EG3D
    model = EG3D.from_official_pickle(pkl)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".partial"
    model.save_pretrained(tmp)
    for f in tmp.iterdir():  # move into place only when complete
        f.replace(out / f.name)
    tmp.rmdir()
    return model


def _fetch_registry_entry(gid: str, entry: dict, revision: str | None):
    from .eg3d import EG3D
    rev = revision or entry.get("revision", "main")
    converted = cache_dir() / "converted" / gid / rev
    if (converted / "model.safetensors").is_file() and (converted / "config.json").is_file():
        return EG3D.from_pretrained(converted)
    try:
        from huggingface_hub import hf_hub_download
        pkl = hf_hub_download(entry["repo_id"], entry["filename"], revision=rev)
    except Exception as e:  # offline, not in cache, repo moved, ...
        raise NotAvailableError(
            f"generator '{gid}' is not available: could not get {entry['filename']} from the Hugging Face Hub repo "
            f"{entry['repo_id']} (revision {rev}) and it is not in the local cache ({type(e).__name__}).\n"
            f"Provide it in one of these ways:\n"
            f"  * download {entry['filename']} (source: {entry.get('source_url', entry['repo_id'])}) and pass its "
            f"path instead of '{gid}', or convert it once: python -m lenerf convert {entry['filename']} DIR\n"
            f"  * fill the Hugging Face cache on a machine with network (huggingface-cli download {entry['repo_id']} "
            f"{entry['filename']}) and run with HF_HUB_OFFLINE=1") from None
    return convert_official(pkl, converted)


def load_generator(spec: str | os.PathLike, revision: str | None = None, device: str | None = None):
    """Return a :class:`~lenerf.generator.Generator` (in eval mode) for an id, folder, pickle or Hub repo."""
    from .eg3d import EG3D
    s = str(spec)
    path = Path(s).expanduser()
    registry = load_registry()
    if path.is_dir() and (path / "G_ema.safetensors").is_file():  # official state dict re-saved as safetensors
        try:
            cfg = json.loads((path / "config.json").read_text())
            from safetensors.torch import load_file
            model = EG3D.from_init_kwargs({**cfg["init_kwargs"], "neural_rendering_resolution":
                                           cfg.get("neural_rendering_resolution", 64)})
            model.load_official_state_dict(load_file(path / "G_ema.safetensors"))
        except (OSError, KeyError, ValueError) as e:
            raise CheckpointError(f"{path}: expected config.json with the official init_kwargs next to "
                                  f"G_ema.safetensors ({type(e).__name__}: {e})") from None
    elif path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path} is a folder but has no config.json (expected a converted checkpoint "
                                  "written by save_pretrained or `python -m lenerf convert`)")
        try:
            model = EG3D.from_pretrained(path)
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"could not load the checkpoint in {path}: {type(e).__name__}: {e}") from None
    elif path.is_file():
        if path.suffix.lower() != ".pkl":
            raise CheckpointError(f"{path}: expected an official EG3D .pkl file or a converted checkpoint folder")
        model = EG3D.from_official_pickle(path)
    elif s in registry and registry[s].get("format") == "builtin":
        if s != "synthetic":
            raise InputError(f"unknown builtin generator '{s}'")
        from .synthetic import SyntheticHeads
        model = SyntheticHeads()
    elif s in registry:
        model = _fetch_registry_entry(s, registry[s], revision)
    elif "/" in s and not s.startswith((".", "/", "~")) and s.count("/") == 1:
        try:
            model = EG3D.from_pretrained(s, revision=revision)
        except Exception as e:
            raise NotAvailableError(f"could not load Hub repo '{s}' (revision {revision or 'main'}): "
                                    f"{type(e).__name__}. Offline? Use a local folder or HF_HUB_OFFLINE=1 with a "
                                    "filled cache.") from None
    else:
        known = ", ".join(sorted(registry)) or "(none)"
        raise InputError(f"unknown generator '{s}': not a registry id ({known}), an existing folder or .pkl file, "
                         "or a Hub repo id 'owner/name'")
    if device is not None:
        model = model.to(device)
    return model.eval()


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection (False at once under HF_HUB_OFFLINE)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        return False
    try:
        socket.create_connection((urlparse(constants.ENDPOINT).hostname or "huggingface.co", 443),
                                 timeout=timeout_s).close()
        return True
    except OSError:
        return False


def probe_generator(spec: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """Cheap check whether :func:`load_generator` can be expected to succeed, without downloading anything.

    -> (True, "") or (False, reason). Registry ids count as available when converted once, in the Hugging Face
    cache, or when the Hub answers a TCP connection within ``timeout_s`` (so the app does not hang on a
    machine with no network)."""
    s = str(spec)
    path = Path(s).expanduser()
    if path.exists():
        return True, ""
    registry = load_registry()
    entry = registry.get(s)
    if entry is None:
        return (True, "") if s.count("/") == 1 else (False, f"unknown generator '{s}'")
    if entry.get("format") == "builtin":
        return True, ""
    rev = entry.get("revision", "main")
    if (cache_dir() / "converted" / s / rev / "model.safetensors").is_file():
        return True, ""
    from huggingface_hub import constants, try_to_load_from_cache
    cached = try_to_load_from_cache(entry["repo_id"], entry["filename"], revision=rev)
    if isinstance(cached, str):
        return True, ""
    if constants.HF_HUB_OFFLINE:
        return False, f"HF_HUB_OFFLINE is set and {entry['filename']} is not in the local cache"
    import socket
    from urllib.parse import urlparse
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError as e:
        return False, f"no network connection to {host} ({type(e).__name__}) and {entry['filename']} is not cached"
    return True, ""
