"""Start ``python app.py`` as a subprocess on a free local port (for the end-to-end tests and ``bench app``)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(work: Path, generator: str = "synthetic", timeout_s: float = 300.0, env: dict | None = None):
    """Run the app offline with its studio folder under ``work``; yields (url, seconds until it answered).
    The server log is ``work/server.log``; the process is stopped on exit."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LENERF_CACHE": str(work / "cache"),
           "LENERF_STUDIO_DIR": str(work / "studio"), "GRADIO_ANALYTICS_ENABLED": "False", "PORT": str(port),
           **(env or {})}
    url = f"http://127.0.0.1:{port}/"
    with open(work / "server.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--generator", generator], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            t0 = time.perf_counter()
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None or time.perf_counter() - t0 > timeout_s:
                        raise RuntimeError("the app did not start:\n"
                                           + (work / "server.log").read_text()[-3000:]) from None
                    time.sleep(0.25)
            yield url, time.perf_counter() - t0
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
