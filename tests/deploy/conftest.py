"""Session fixtures for the deployment tests, both started once:

- `packaged`: `python -m infra.package` for dev and prod into a temporary directory (chalice
  package with infra/resources.json merged, then pinned to its stage), and cfn-lint on each;
- `recorded_calls`: a separate pytest run over representative functional flows with
  tests/deploy/record_calls.py loaded, giving every AWS permission those flows needed. It starts
  in the background when the first deployment test starts, so it runs while Chalice packages.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.cfn import Template

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "prod")
# Flows that reach every kind of request the service makes: routes (charges, holds, members,
# ledger pages), billing and the Stripe webhook, the scheduled job and the queue handler through
# app.py. About 20 s; the whole functional suite records the same handler permissions in 2 min.
FLOWS = (
    "tests/functional/test_billing_routes.py",
    "tests/functional/test_members.py",
    "tests/functional/test_webhook.py",
    "tests/functional/test_holds.py",
    "tests/functional/test_charges.py",
    "tests/functional/test_renewal.py::test_scheduled_and_sqs_handlers",
    "tests/deploy/flow_cold_start.py",  # the API handler's cold start: secrets from SSM
)
RECORD_TIMEOUT = 240


@dataclass
class Packaged:
    stage: str
    path: Path
    template: Template
    lint: subprocess.CompletedProcess


class Recording:
    def __init__(self, out: Path):
        self.out = out
        env = {**os.environ, "RECORD_CALLS_OUT": str(out), "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "tests.deploy.record_calls", *FLOWS],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._result: list[dict] | None = None

    def result(self) -> list[dict]:
        if self._result is None:
            try:
                output, _ = self.proc.communicate(timeout=RECORD_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                output, _ = self.proc.communicate()
                pytest.fail(f"recording the flows took over {RECORD_TIMEOUT} s:\n{output[-3000:]}")
            assert self.proc.returncode == 0, f"the recorded flows failed:\n{output[-3000:]}"
            self._result = json.loads(self.out.read_text())
        return self._result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="session", autouse=True)
def _recording(tmp_path_factory):
    if os.environ.get("RECORD_CALLS_OUT"):  # this process is the recorded run itself
        yield None
        return
    recording = Recording(tmp_path_factory.mktemp("recorded") / "calls.json")
    yield recording
    recording.stop()


@pytest.fixture(scope="session")
def recorded_calls(_recording) -> list[dict]:
    return _recording.result()


@pytest.fixture(scope="session")
def packaged(tmp_path_factory) -> dict[str, Packaged]:
    from infra import package

    out = tmp_path_factory.mktemp("packaged")
    result = {}
    for stage in STAGES:
        sam = package.package(stage, out / stage)
        result[stage] = Packaged(stage, sam, Template(json.loads(sam.read_text())), package.lint(sam))
    return result
