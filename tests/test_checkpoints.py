"""Official pickles (read without executing anything), conversion, save/from_pretrained, registry errors."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lenerf.eg3d import EG3D, read_official_pickle
from lenerf.errors import CheckpointError, InputError, NotAvailableError, UnsafePickleError
from lenerf.hub import load_generator

from .official_pickle import write_official_pickle

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def official_pkl(tiny_G, tmp_path_factory):
    path = tmp_path_factory.mktemp("pkl") / "tiny-official.pkl"
    write_official_pickle(tiny_G, path)
    return path


def test_official_pickle_is_read_exactly_without_executing(official_pkl, tiny_G, tiny_golden, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # module_src would write EXECUTED_MODULE_SRC here if it ran
    mods_before = set(sys.modules)
    ckpt = read_official_pickle(official_pkl)
    assert not (tmp_path / "EXECUTED_MODULE_SRC").exists()
    official = ("torch_utils", "dnnlib", "training", "_imported_module")
    assert not any(m.startswith(official) for m in set(sys.modules) - mods_before)
    cfg = tiny_golden[0]
    assert list(ckpt.state_dict) == cfg["state_dict_keys_in_official_order"]
    for k, v in tiny_G.state_dict().items():
        assert torch.equal(ckpt.state_dict[k], v), k
    assert ckpt.neural_rendering_resolution == 64
    assert ckpt.rendering_kwargs["superresolution_module"].endswith("SuperresolutionHybrid8XDC")
    assert ckpt.init_kwargs["z_dim"] == 64 and ckpt.init_kwargs["mapping_kwargs"] == {"num_layers": 2}


def test_from_official_pickle_renders_like_the_original(official_pkl, tiny_G, tiny_golden):
    G = EG3D.from_official_pickle(official_pkl)
    cs = tiny_golden[2]
    assert G.neural_rendering_resolution == 64
    with torch.no_grad():
        assert torch.equal(G.mapping(cs["z"], cs["c_frontal"]), tiny_G.mapping(cs["z"], cs["c_frontal"]))
        out = G.sample_mixed(cs["xyz"], None, cs["ws_case0"])
    assert (out["sigma"] - cs["sample_mixed_sigma"][:1]).abs().max() <= 1e-5


def test_convert_cli_and_from_pretrained_roundtrip(official_pkl, tiny_G, tiny_golden, tmp_path):
    out_dir = tmp_path / "converted"
    r = subprocess.run([sys.executable, "-m", "lenerf", "convert", str(official_pkl), str(out_dir)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (out_dir / "model.safetensors").is_file()
    cfg = json.loads((out_dir / "config.json").read_text())
    assert cfg["neural_rendering_resolution"] == 64 and cfg["z_dim"] == 64
    G = EG3D.from_pretrained(out_dir)
    for k, v in tiny_G.state_dict().items():
        assert torch.equal(G.state_dict()[k], v), k
    G2 = load_generator(out_dir)  # the same through the generic loader
    assert isinstance(G2, EG3D) and not G2.training
    cs = tiny_golden[2]
    torch.manual_seed(3)
    with torch.no_grad():
        a = G2.synthesis(cs["ws_case0"], cs["c_frontal"], preset="preview")
    torch.manual_seed(3)
    with torch.no_grad():
        b = tiny_G.synthesis(cs["ws_case0"], cs["c_frontal"], preset="preview")
    assert torch.equal(a["image"], b["image"])


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_malicious_global_is_refused_without_executing(tiny_G, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    write_official_pickle(tiny_G, path, extra_root_state={"payload": _Evil()})
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        EG3D.from_official_pickle(path)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    # a bare builtins.eval reference at the top level is refused too
    path2 = tmp_path / "evil2.pkl"
    with open(path2, "wb") as f:
        pickle.dump({"G_ema": eval}, f)
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        read_official_pickle(path2)


def test_bad_checkpoint_files_give_clear_errors(tmp_path, tiny_G):
    with pytest.raises(CheckpointError, match="not found"):
        EG3D.from_official_pickle(tmp_path / "missing.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="not a readable EG3D network pickle"):
        EG3D.from_official_pickle(junk)
    other = tmp_path / "other.pkl"
    with open(other, "wb") as f:
        pickle.dump({"weights": [1, 2, 3]}, f)
    with pytest.raises(CheckpointError, match="expected a dict with key 'G_ema'"):
        EG3D.from_official_pickle(other)
    good = tmp_path / "good.pkl"
    write_official_pickle(tiny_G, good)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        EG3D.from_official_pickle(truncated)
    zipfile = tmp_path / "model.pkl"
    torch.save(tiny_G.state_dict(), zipfile)
    with pytest.raises(CheckpointError):
        EG3D.from_official_pickle(zipfile)


def test_wrong_architecture_in_pickle_is_reported(tiny_G, tmp_path):
    path = tmp_path / "mismatch.pkl"
    write_official_pickle(tiny_G, path)
    ckpt = read_official_pickle(path)
    ckpt.state_dict.pop("decoder.net.0.weight")
    G = EG3D.from_init_kwargs({**ckpt.init_kwargs, "neural_rendering_resolution": 64})
    with pytest.raises(CheckpointError, match="missing: \\['decoder.net.0.weight'\\]"):
        G.load_official_state_dict(ckpt.state_dict)


def test_registry_ids_and_offline_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LENERF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(NotAvailableError) as e:
        load_generator("ffhq")
    msg = str(e.value)
    assert "ffhqrebalanced512-128.pkl" in msg and "HF_HUB_OFFLINE" in msg and "python -m lenerf convert" in msg
    with pytest.raises(InputError, match="unknown generator .nope.*afhqcats, ffhq, synthetic"):
        load_generator("nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_generator(tmp_path / "empty")
    with pytest.raises(NotAvailableError, match="Hub repo 'someone/converted-eg3d'"):
        load_generator("someone/converted-eg3d")


def test_registry_entries_name_repo_file_and_revision():
    reg = json.loads((ROOT / "checkpoints" / "registry.json").read_text())
    for gid in ("ffhq", "afhqcats"):
        entry = reg[gid]
        assert entry["format"] == "official-pickle"
        assert entry["repo_id"].count("/") == 1 and entry["filename"].endswith(".pkl") and entry["revision"]


def test_cli_reports_errors_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lenerf", "render", "--generator", "nope", "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: unknown generator 'nope'") and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "lenerf", "convert", str(tmp_path / "x.pkl"), str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "checkpoint file not found" in r.stderr and "Traceback" not in r.stderr
