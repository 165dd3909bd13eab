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
    return json.loads((d / "config.json").read_text()), load_file(d / "G_ema.safetensors"), load_file(d / "cases.safetensors")


@pytest.fixture(scope="session")
def tiny_G(tiny_golden):
    from lenerf.eg3d import EG3D
    cfg, sd, _ = tiny_golden
    G = EG3D.from_init_kwargs({**cfg["init_kwargs"], "neural_rendering_resolution": cfg["neural_rendering_resolution"]})
    G.load_official_state_dict(sd)
    return G


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """``python app.py`` on a free local port, offline (so it falls back to the synthetic world); yields its URL."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path_factory.mktemp("app")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LENERF_CACHE": str(work / "cache"),
           "LENERF_STUDIO_DIR": str(work / "studio"), "GRADIO_ANALYTICS_ENABLED": "False", "PORT": str(port)}
    log = open(work / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--generator", "ffhq"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() - t0 > 180:
                proc.kill()
                pytest.fail("app did not start:\n" + (work / "server.log").read_text()[-3000:])
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
