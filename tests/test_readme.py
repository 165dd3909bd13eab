"""The README's library example runs as written (the training shortened to 2 steps and written to a temporary
folder): docs that match the code."""
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_editing_example_runs(tmp_path, monkeypatch):
    block = next(b for b in _python_blocks((ROOT / "README.md").read_text()) if "render_edit" in b)
    for a, b in [('"a face with purple lips")', '"a face with purple lips", steps=2)'),
                 ('"runs/purple_lips"', repr(str(tmp_path / "purple_lips")))]:
        assert a in block, f"the README's example changed: {a!r} not found"
        block = block.replace(a, b)
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    view = scope["view"]
    assert view.source.shape == view.edited.shape == view.overlay.shape and view.source.dtype == np.uint8
    assert np.abs(view.edited.astype(int) - view.source.astype(int)).max() > 50  # blue eyes and red hair show
    assert scope["meta"]["edit_prompt"] and scope["cfg"].edit_prompt == "a face with purple lips"
    package = Path(scope["package"])
    assert (package / "edit.json").is_file() and (package / "modules.safetensors").is_file()
