"""What a person running `make run` relies on when clients burst."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests


def test_forty_concurrent_charges_on_fifty_credits(server):
    me = server.session("burst-user")
    ws = me.get(server.url + "/v1/me").json()["workspaces"][0]["workspace_id"]
    token = me.headers["Authorization"]

    def charge(i: int) -> int:
        r = requests.post(f"{server.url}/v1/workspaces/{ws}/charges",
                          json={"service": "image", "options": {"quality": "standard"}},
                          headers={"Authorization": token, "Idempotency-Key": f"burst-{i}"}, timeout=60)
        return r.status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        codes = list(pool.map(charge, range(40)))

    assert codes.count(201) == 5
    assert codes.count(402) == 35
    view = me.get(f"{server.url}/v1/workspaces/{ws}/subscription").json()
    assert view["balance"] == {"available": 0, "plan": 0, "topup": 0, "held": 0}
    entries = me.get(f"{server.url}/v1/workspaces/{ws}/ledger?limit=100").json()["entries"]
    assert [e["kind"] for e in entries] == ["charge"] * 5 + ["grant"]
    assert [e["balance"]["available"] for e in entries] == [0, 10, 20, 30, 40, 50]
    audit = server.cli("audit")
    assert audit.returncode == 0, audit.stdout
    assert "clean" in audit.stdout
