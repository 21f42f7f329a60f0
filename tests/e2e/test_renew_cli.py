"""`python -m chalicelib.cli renew --date` against the real local server's store, checked over HTTP:
a wallet charged to 20 renews to 50 with the 20 expired, and a second run for the date changes
nothing."""
from __future__ import annotations

import re

SUMMARY = re.compile(
    r"renew as of (\d{4}-\d\d-\d\d)T23:59:59Z: (\d+) wallet\(s\) due, (\d+) renewed, (\d+) cycle\(s\) closed, "
    r"(\d+) credits granted, (\d+) credits expired"
)


def test_renew_cli_for_the_renewal_date(server):
    s = server.session("renew-cli-user")
    ws = s.get(server.url + "/v1/me").json()["workspaces"][0]["workspace_id"]
    base = f"{server.url}/v1/workspaces/{ws}"
    r = s.post(base + "/charges", json={"service": "image", "options": {"count": 3}},
               headers={"Idempotency-Key": "renew-cli-1"})
    assert r.status_code == 201, r.text
    view = s.get(base + "/subscription").json()
    assert view["balance"] == {"available": 20, "plan": 20, "topup": 0, "held": 0}
    renews_on = view["renews_on"]

    out = server.cli("renew", "--date", renews_on)
    assert out.returncode == 0, out.stderr
    m = SUMMARY.search(out.stdout)
    assert m, out.stdout
    date, due, renewed, cycles, granted, expired = m.group(1), *map(int, m.groups()[1:])
    assert date == renews_on
    assert renewed >= 1 and due >= renewed and cycles >= renewed, out.stdout
    assert granted >= 50 and expired >= 20, out.stdout

    view = s.get(base + "/subscription").json()
    assert view["balance"] == {"available": 50, "plan": 50, "topup": 0, "held": 0}
    assert view["cycle"]["start"] == renews_on
    ledger = s.get(base + "/ledger?limit=100").json()["entries"]
    newest = [(e["kind"], e["plan_delta"], e["topup_delta"]) for e in ledger[:2]]
    assert newest == [("grant", 50, 0), ("expire", -20, 0)]
    assert ledger[0]["ref"]["start"].startswith(renews_on)
    assert ledger[1]["ref"]["end"].startswith(renews_on)
    assert ledger[0]["balance"] == {"available": 50, "plan": 50, "topup": 0, "held": 0}
    assert [e["kind"] for e in ledger] == ["grant", "expire", "charge", "grant"]

    again = server.cli("renew", "--date", renews_on)
    assert again.returncode == 0, again.stderr
    m = SUMMARY.search(again.stdout)
    assert m, again.stdout
    assert (m.group(3), m.group(5), m.group(6)) == ("0", "0", "0"), again.stdout
    assert "0 renewed" in again.stdout
    assert s.get(base + "/ledger?limit=100").json()["entries"] == ledger
    assert s.get(base + "/subscription").json()["balance"] == view["balance"]
    audit = server.cli("audit")
    assert audit.returncode == 0, audit.stdout
