"""Read official EG3D network pickles without executing anything from them (eg3d.md §12).

Official pickles store each network as ``torch_utils.persistence`` records whose reconstruction would ``exec``
the Python source embedded in the file. Here a restricted unpickler resolves every global through an
allow-list: persistence records become inert :class:`Record` objects (their ``module_src`` is never looked at),
module classes become inert stand-ins that only keep their pickled state, tensors are rebuilt with
``torch.load(weights_only=True)``, and any other global aborts loading with :class:`UnsafePickleError`.
"""
from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, UnsafePickleError

try:  # numpy >= 2
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core.multiarray import scalar as _np_scalar


class Record:
    """A persistent object from the pickle: class name + pickled ``__dict__``; nothing was executed."""

    def __init__(self, class_name: str, state: dict):
        self.class_name, self.state = class_name, state

    def __repr__(self) -> str:
        return f"Record({self.class_name})"


class StandIn:
    """Placeholder for an allow-listed module class; ``__setstate__`` keeps the state, nothing else runs."""

    class_name = "?"

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"_state": state}

    def __repr__(self) -> str:
        return f"StandIn({self.class_name})"


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class" or "state" not in meta:
        raise CheckpointError("malformed torch_utils.persistence record in the pickle")
    return Record(str(meta.get("class_name", "?")), meta["state"])


def _load_storage_from_bytes(b: bytes):
    return torch.load(io.BytesIO(b), weights_only=True)


_ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("numpy", "dtype"): np.dtype,
    ("dnnlib.util", "EasyDict"): dict,
}
_STANDIN_PREFIXES = ("torch.nn.modules.", "training.", "torch_utils.", "dnnlib.")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` only returns data-only callables or inert stand-in classes."""

    def __init__(self, file):
        super().__init__(file)
        self._standins: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        if module.startswith(_STANDIN_PREFIXES) and name.isidentifier():
            if key not in self._standins:
                self._standins[key] = type(name, (StandIn,), {"class_name": f"{module}.{name}"})
            return self._standins[key]
        raise UnsafePickleError(f"refusing to load global '{module}.{name}': it is not on the allow-list of "
                                "data-only objects in an EG3D checkpoint; nothing from the file was executed")

    def persistent_load(self, pid):
        raise UnsafePickleError("the pickle uses persistent ids (a torch.save zip file?), not an official "
                                "EG3D network pickle")


@dataclass
class OfficialCheckpoint:
    """What an official pickle holds for ``G_ema``."""

    state_dict: dict[str, torch.Tensor]  # official names and order
    init_kwargs: dict
    init_args: tuple
    rendering_kwargs: dict | None
    neural_rendering_resolution: int | None
    class_name: str


def _state(obj) -> dict:
    if isinstance(obj, Record):
        return obj.state
    if isinstance(obj, StandIn):
        return obj.state
    raise CheckpointError(f"unexpected object {type(obj).__name__} in the network tree")


def _collect(obj, prefix: str, out: dict) -> None:
    st = _state(obj)
    for name, p in (st.get("_parameters") or {}).items():
        if p is not None:
            out[prefix + name] = p.detach() if isinstance(p, torch.Tensor) else p
    skip = set(st.get("_non_persistent_buffers_set") or ())
    for name, b in (st.get("_buffers") or {}).items():
        if b is not None and name not in skip:
            out[prefix + name] = b
    for name, child in (st.get("_modules") or {}).items():
        if child is not None:
            _collect(child, f"{prefix}{name}.", out)


def read_official_pickle(path: str | Path, key: str = "G_ema") -> OfficialCheckpoint:
    """Read network ``key`` of an official EG3D pickle. Raises :class:`CheckpointError` (or
    :class:`UnsafePickleError`) with a readable message for anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        with open(path, "rb") as f:
            data = RestrictedUnpickler(f).load()
    except CheckpointError:
        raise
    except Exception as e:  # truncated file, wrong format, ...
        raise CheckpointError(f"{path} is not a readable EG3D network pickle ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or key not in data:
        raise CheckpointError(f"{path} is not an EG3D network pickle: expected a dict with key {key!r}"
                              + (f", found keys {sorted(map(str, data))[:8]}" if isinstance(data, dict) else ""))
    net = data[key]
    if not isinstance(net, Record):
        raise CheckpointError(f"{path}: {key} is not a persistent network record")
    st = net.state
    if "_init_kwargs" not in st or not isinstance(st.get("_modules"), dict):
        raise CheckpointError(f"{path}: {key} ({net.class_name}) has no constructor arguments / sub-modules")
    if net.class_name != "TriPlaneGenerator":
        raise CheckpointError(f"{path}: {key} is a {net.class_name}, not an EG3D TriPlaneGenerator")
    sd: dict[str, torch.Tensor] = {}
    _collect(net, "", sd)
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: non-tensor values among the network parameters")
    nrr = st.get("neural_rendering_resolution")
    return OfficialCheckpoint(sd, dict(st["_init_kwargs"]), tuple(st.get("_init_args") or ()),
                              st.get("rendering_kwargs"), None if nrr is None else int(nrr), net.class_name)
