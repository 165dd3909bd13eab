import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(os.environ.get("LENERF_GOLDEN", ROOT.parent / "shared" / "golden"))

torch.set_num_threads(int(os.environ.get("LENERF_TEST_THREADS", "2")))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network


def golden_dir(*parts) -> Path:
    path = GOLDEN.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"golden data missing at {path} (shared/ must sit beside the repo in CI)")
        pytest.skip(f"golden data not found at {path}; set LENERF_GOLDEN")
    return path


@pytest.fixture(scope="session")
def tiny_golden():
    """(init_kwargs config, state_dict, cases) of the tiny official EG3D generator."""
    import json

    from safetensors.torch import load_file
    d = golden_dir("eg3d", "tiny")
    return (json.loads((d / "config.json").read_text()), load_file(d / "G_ema.safetensors"),
            load_file(d / "cases.safetensors"))


@pytest.fixture(scope="session")
def tiny_G(tiny_golden):
    from lenerf.eg3d import EG3D
    cfg, sd, _ = tiny_golden
    G = EG3D.from_init_kwargs({**cfg["init_kwargs"], "neural_rendering_resolution": cfg["neural_rendering_resolution"]})
    G.load_official_state_dict(sd)
    return G


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """``python app.py`` on a free local port, offline (so it falls back to the synthetic world); yields its URL.
    Module-scoped: the server (and any training job a failed test left running in it) stops with its module, so
    it never competes for the CPU with the rest of the suite."""
    from lenerf.studio.server import running_app
    with running_app(tmp_path_factory.mktemp("app"), generator="ffhq", timeout_s=180) as (url, _):
        yield url
