"""The MONAI Label environment and a real server on 127.0.0.1 for the ``monailabel``-marked tests.

MONAI Label 0.8.5 needs its own virtual environment (numpy<2, old DICOM packages). The first use builds it with
``scripts/setup_monailabel_env.sh`` (cached afterwards); when it cannot be built the marked tests are skipped
with the reason. The server is started by ``scripts/monailabel_app.sh`` exactly as a user starts it, on a free
loopback port, and stopped after the module.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
_BUILD: dict[str, str | None] = {}


def monailabel_python() -> str:
    """The MONAI Label environment's python, built on first use; skips the test when it cannot be built."""
    if "python" not in _BUILD:
        try:
            res = subprocess.run(
                ["bash", str(REPO / "scripts" / "setup_monailabel_env.sh")],
                capture_output=True,
                text=True,
                timeout=3600,
            )
            ok = res.returncode == 0
            _BUILD["python"] = res.stdout.strip().splitlines()[-1] if ok else None
            _BUILD["reason"] = None if ok else res.stderr[-1500:]
        except (OSError, subprocess.TimeoutExpired) as e:
            _BUILD["python"], _BUILD["reason"] = None, repr(e)
    if _BUILD["python"] is None:
        pytest.skip(f"the MONAI Label environment could not be built: {_BUILD['reason']}")
    return str(_BUILD["python"])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A MONAI Label server started with ``scripts/monailabel_app.sh``; ``url`` is its loopback address."""

    def __init__(self, studies: Path, app_dir: Path, log: Path, timeout: float = 180.0) -> None:
        monailabel_python()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app_dir = app_dir
        self.log = log
        env = {
            **os.environ,
            "MONAI_NOISYLABEL_APP_DIR": str(app_dir),
            "MONAI_LABEL_AUTO_UPDATE_SCORING": "false",  # the tests run scoring themselves, in order
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO),
        }
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                ["bash", str(REPO / "scripts" / "monailabel_app.sh"), str(studies), str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the MONAI Label server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if requests.get(f"{self.url}/info/", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"the MONAI Label server did not answer within {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and the task processes it started
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory) -> Iterator:
    started: list[Server] = []

    def start(studies: Path, name: str = "app") -> Server:
        root = tmp_path_factory.mktemp(name)
        server = Server(studies, root / "app", root / "server.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
