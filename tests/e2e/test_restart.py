"""Data survives a restart of the local server; --fresh starts empty."""
from __future__ import annotations

from tests.e2e.conftest import Server


def _snapshot(srv: Server, user: str):
    s = srv.session(user)
    ws = s.get(srv.url + "/v1/me").json()["workspaces"][0]["workspace_id"]
    view = s.get(f"{srv.url}/v1/workspaces/{ws}/subscription").json()
    ledger = s.get(f"{srv.url}/v1/workspaces/{ws}/ledger?limit=100").json()
    return ws, view["balance"], ledger["entries"]


def test_balances_and_ledger_survive_a_restart(tmp_path):
    srv = Server(tmp_path / "data").start("--fresh")
    try:
        s = srv.session("restart-user")
        ws = s.get(srv.url + "/v1/me").json()["workspaces"][0]["workspace_id"]
        for i, quality in enumerate(["standard", "hd"]):
            r = s.post(f"{srv.url}/v1/workspaces/{ws}/charges", json={"service": "image", "options": {"quality": quality}},
                       headers={"Idempotency-Key": f"r{i}"})
            assert r.status_code == 201
        hold = s.post(f"{srv.url}/v1/workspaces/{ws}/holds", json={"service": "image"},
                      headers={"Idempotency-Key": "h"}).json()
        before = _snapshot(srv, "restart-user")
        assert before[1] == {"available": 10, "plan": 10, "topup": 0, "held": 10}
    finally:
        srv.stop()

    again = Server(tmp_path / "data")
    again.start()
    try:
        assert _snapshot(again, "restart-user") == before
        # The hold taken before the restart can still be captured, exactly once.
        s = again.session("restart-user")
        r = s.post(f"{again.url}/v1/workspaces/{ws}/holds/{hold['hold_id']}/capture", json={"credits": 4})
        assert r.json()["balance"] == {"available": 16, "plan": 16, "topup": 0, "held": 0}
        audit = again.cli("audit")
        assert audit.returncode == 0, audit.stdout
    finally:
        again.stop()

    fresh = Server(tmp_path / "data")
    fresh.start("--fresh")
    try:
        audit = fresh.cli("audit")
        assert "audited 0 wallets" in audit.stdout
    finally:
        fresh.stop()
