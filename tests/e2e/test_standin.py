"""`make run` with no Stripe account: the stand-in's pages complete purchases over real HTTP, by
posting signed events to the server's own webhook."""
from __future__ import annotations

import requests


def _buy(server, s, ws, path, body):
    r = s.post(f"{server.url}/v1/workspaces/{ws}/{path}", json=body)
    assert r.status_code == 201, r.text
    page = requests.get(r.json()["checkout_url"], timeout=30)
    assert page.status_code == 200 and "Pay" in page.text
    paid = requests.post(r.json()["checkout_url"] + "/pay", allow_redirects=False, timeout=30)
    assert paid.status_code == 303


def test_topup_and_subscription_through_the_standin_pages(server):
    s = server.session("standin-buyer")
    ws = s.get(server.url + "/v1/me").json()["workspaces"][0]["workspace_id"]
    _buy(server, s, ws, "checkout/topup", {"pack": "pack_1000"})
    assert s.get(f"{server.url}/v1/workspaces/{ws}/subscription").json()["balance"] == {
        "available": 1050, "plan": 50, "topup": 1000, "held": 0}
    _buy(server, s, ws, "checkout/subscription", {"plan": "creator", "interval": "month"})
    view = s.get(f"{server.url}/v1/workspaces/{ws}/subscription").json()
    assert (view["plan"]["id"], view["status"], view["manage_payments"]) == ("creator", "active", True)
    assert view["balance"] == {"available": 1500, "plan": 500, "topup": 1000, "held": 0}
    portal = s.post(f"{server.url}/v1/workspaces/{ws}/portal").json()["portal_url"]
    assert "Cancel at the end" in requests.get(portal, timeout=30).text
    assert server.cli("audit").returncode == 0
