"""Test helper: write a pickle in the official NVlabs EG3D format (eg3d.md §12) from one of our models.

The official modules are not importable here, so the globals the official pickles reference
(``torch_utils.persistence._reconstruct_persistent_obj``, ``dnnlib.util.EasyDict``, ``training.triplane.OSGDecoder``,
...) are registered as fake modules just while pickling. ``module_src`` is a placeholder that would leave a marker
file if anyone ever executed it.
"""
from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

PERSISTENT = {"TriPlaneGenerator", "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock",
              "SynthesisBlockNoUp", "SynthesisLayer", "ToRGBLayer", "FullyConnectedLayer",
              "SuperresolutionHybrid8XDC", "SuperresolutionHybrid8X", "SuperresolutionHybrid4X",
              "SuperresolutionHybrid2X"}
MODULE_OF = {"TriPlaneGenerator": "training.triplane", "Generator": "training.networks_stylegan2",
             "MappingNetwork": "training.networks_stylegan2", "SynthesisNetwork": "training.networks_stylegan2",
             "SynthesisBlock": "training.networks_stylegan2", "SynthesisLayer": "training.networks_stylegan2",
             "ToRGBLayer": "training.networks_stylegan2", "FullyConnectedLayer": "training.networks_stylegan2",
             "SynthesisBlockNoUp": "training.superresolution"}


def _fake_module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules.get(parent) or _fake_module(parent), child, mod)
    return mod


@contextlib.contextmanager
def official_globals():
    """Temporarily register the official globals so that pickle can reference them by name."""
    before = set(sys.modules)
    persistence = _fake_module("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called by lenerf's reader
        raise RuntimeError("not for loading")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = _fake_module("dnnlib.util")
    util.EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    classes = {}
    for mod, cls in [("training.triplane", "OSGDecoder"),
                     ("training.volumetric_rendering.renderer", "ImportanceRenderer"),
                     ("training.volumetric_rendering.ray_marcher", "MipRayMarcher2"),
                     ("training.volumetric_rendering.ray_sampler", "RaySampler"),
                     ("training.augment", "AugmentPipe")]:
        m = sys.modules.get(mod) or _fake_module(mod)
        c = type(cls, (), {"__module__": mod})
        setattr(m, cls, c)
        classes[cls] = c
    try:
        yield persistence._reconstruct_persistent_obj, util.EasyDict, classes
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]


class _Persistent:
    def __init__(self, fn, meta):
        self.fn, self.meta = fn, meta

    def __reduce__(self):
        return self.fn, (self.meta,), None


def _module_state(module: nn.Module, convert) -> dict:
    params = OrderedDict((k, None if v is None else nn.Parameter(v.detach().clone(), requires_grad=False))
                         for k, v in module._parameters.items())
    buffers = OrderedDict((k, v.detach().clone()) for k, v in module._buffers.items())
    state = {"training": False, "_parameters": params, "_buffers": buffers,
             "_non_persistent_buffers_set": set(), "_backward_hooks": OrderedDict(), "_forward_hooks": OrderedDict(),
             "_forward_pre_hooks": OrderedDict(), "_state_dict_hooks": OrderedDict(),
             "_load_state_dict_pre_hooks": OrderedDict(),
             "_modules": OrderedDict((k, convert(v)) for k, v in module._modules.items())}
    for k in ("weight_gain", "bias_gain"):
        if hasattr(module, k):
            state[k] = np.float64(getattr(module, k))  # numpy scalars, as in official files
    return state


def official_class(module: nn.Module) -> str:
    from lenerf.eg3d.layers import FullyConnectedLayer, SynthesisBlock, SynthesisLayer, ToRGBLayer
    from lenerf.eg3d.networks import MappingNetwork, StyleGAN2Backbone, SynthesisNetwork
    from lenerf.eg3d.superresolution import SuperResolution
    if isinstance(module, StyleGAN2Backbone):
        return "Generator"
    if isinstance(module, SuperResolution):
        return module.class_name
    if isinstance(module, SynthesisBlock):
        return "SynthesisBlock" if module.up else "SynthesisBlockNoUp"
    for cls in (MappingNetwork, SynthesisNetwork, SynthesisLayer, ToRGBLayer, FullyConnectedLayer):
        if isinstance(module, cls):
            return cls.__name__
    raise TypeError(type(module))


def write_official_pickle(G, path, module_src: str = "open('EXECUTED_MODULE_SRC', 'w').write('pwned')\n",
                          extra_root_state: dict | None = None, top_level_extra: dict | None = None):
    """Write ``G`` (a lenerf EG3D) as an official training snapshot {training_set_kwargs, G, D, G_ema, augment_pipe}."""
    with official_globals() as (fn, EasyDict, classes):
        def easy(x):
            if isinstance(x, dict):
                return EasyDict({k: easy(v) for k, v in x.items()})
            return x

        def convert(module, class_name=None):
            name = class_name or official_class(module)
            state = _module_state(module, convert)
            state["_init_args"], state["_init_kwargs"] = (), EasyDict()
            meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": name,
                    "state": state}
            return _Persistent(fn, meta)

        def plain(cls_name, state):
            obj = classes[cls_name]()
            obj.__dict__.update(state)
            return obj

        decoder_net = nn.Sequential.__new__(nn.Sequential)
        decoder_net.__dict__.update(_module_state(G.decoder.net,
                                                  lambda m: m if isinstance(m, nn.Softplus) else convert(m)))
        decoder = plain("OSGDecoder", {**_module_state(G.decoder, lambda m: m),
                                       "_modules": OrderedDict(net=decoder_net), "hidden_dim": 64})
        marcher = plain("MipRayMarcher2", {"training": False, "_modules": OrderedDict()})
        renderer = plain("ImportanceRenderer", {"training": False, "_modules": OrderedDict(ray_marcher=marcher),
                                                "plane_axes": torch.eye(3).repeat(3, 1, 1)})
        sampler = plain("RaySampler", {"training": False, "_modules": OrderedDict(), "ray_origins_h": None})
        root = _module_state(G, lambda m: m)
        init_kwargs = {k: v for k, v in G._hub_mixin_config.items() if k != "neural_rendering_resolution"}
        root.update({"_modules": OrderedDict(backbone=convert(G.backbone), superresolution=convert(G.superresolution),
                                             decoder=decoder, renderer=renderer, ray_sampler=sampler),
                     "_init_args": (), "_init_kwargs": easy(init_kwargs), "z_dim": G.z_dim, "c_dim": G.c_dim,
                     "w_dim": G.w_dim, "img_resolution": G.img_resolution, "img_channels": 3,
                     "neural_rendering_resolution": G.neural_rendering_resolution,
                     "rendering_kwargs": easy(dict(G.rendering_kwargs)), "_last_planes": None,
                     **(extra_root_state or {})})
        g_ema = _Persistent(fn, {"type": "class", "version": 6, "module_src": module_src,
                                 "class_name": "TriPlaneGenerator", "state": root})
        data = {"training_set_kwargs": EasyDict(class_name="training.dataset.ImageFolderDataset", path="x.zip",
                                                use_labels=True, max_size=10, xflip=False, resolution=512,
                                                random_seed=0),
                "G": g_ema, "D": None, "G_ema": g_ema, "augment_pipe": None, **(top_level_extra or {})}
        with open(path, "wb") as f:
            pickle.dump(data, f)
