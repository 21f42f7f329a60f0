"""End-to-end: the real local server, started as `make run` starts it, driven over HTTP."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-0123456789abcdef0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PORT": str(self.port), "DATA_DIR": str(data_dir), "STAGE": "local",
                    "AUTH_DEV_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
        for var in ("DYNAMODB_ENDPOINT", "TABLE_NAME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            self.env.pop(var, None)
        self.proc: subprocess.Popen | None = None

    def start(self, *args: str) -> "Server":
        self.log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "devserver", *args], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/v1/catalog", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("the local server did not start; see " + self.log.name)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.log.close()

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "chalicelib.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def token(self, user: str, scope: str = "") -> str:
        out = self.cli("token", "--user", user, *(["--scope", scope] if scope else []))
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def session(self, user: str, scope: str = "") -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token(user, scope)}"
        return s


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("e2e") / "data").start("--fresh")
    yield srv
    srv.stop()
