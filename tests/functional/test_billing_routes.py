"""Checkout, portal and subscription changes through the Stripe stand-in (events delivered
in-process through the real webhook verification)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib import clock, config
from chalicelib.billing import standin
from chalicelib.credits import ledger


@pytest.fixture(autouse=True)
def standin_secret(monkeypatch):
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_functional")
    config.reload()
    from chalicelib.billing import gateway

    gateway.gateway.cache_clear()
    yield
    config.reload()


def pay(api, user, ws, path, body):
    r = api.post(f"/v1/workspaces/{ws}/{path}", user, body)
    assert r.status_code == 201, r.body
    assert r.json["checkout_url"].endswith(f"/standin/checkout/{r.json['session_id']}")
    page = api.client.http.get(f"/standin/checkout/{r.json['session_id']}")
    assert page.status_code == 200 and b"Pay" in page.body
    done = api.client.http.post(f"/standin/checkout/{r.json['session_id']}/pay", body="")
    assert done.status_code == 303
    return r.json


def view(api, ws, user="alice"):
    return api.get(f"/v1/workspaces/{ws}/subscription", user).json


def test_topup_checkout_credits_the_pack(api):
    ws = api.workspace("alice")
    pay(api, "alice", ws, "checkout/topup", {"pack": "pack_1000"})
    assert view(api, ws)["balance"] == {"available": 1050, "plan": 50, "topup": 1000, "held": 0}
    assert ledger.audit().clean


def test_subscription_lifecycle_through_the_api(api):
    ws = api.workspace("alice")
    pay(api, "alice", ws, "checkout/subscription", {"plan": "creator", "interval": "month"})
    v = view(api, ws)
    assert (v["plan"]["id"], v["interval"], v["status"], v["balance"]["plan"]) == ("creator", "month", "active", 500)
    # A second checkout for a subscribed workspace is refused.
    r = api.post(f"/v1/workspaces/{ws}/checkout/subscription", "alice", {"plan": "pro", "interval": "month"})
    assert (r.status_code, r.json["error"]["code"]) == (409, "invalid_state")
    # Upgrade: billed now, credits in hand untouched; pro's credits come with the next renewal.
    v = api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "pro", "interval": "month"}).json
    assert (v["plan"]["id"], v["balance"]["plan"], v["pending_change"]) == ("pro", 500, None)
    # Downgrade: pending until the period ends, then withdrawn.
    v = api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "creator", "interval": "month"}).json
    assert (v["plan"]["id"], v["pending_change"]) == ("pro", {"plan": "creator", "interval": "month",
                                                              "effective_on": v["renews_on"]})
    v = api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "pro", "interval": "month"}).json
    assert v["pending_change"] is None
    # Cancel at period end, then resume.
    v = api.post(f"/v1/workspaces/{ws}/subscription/cancel", "alice", {"when": "period_end"}).json
    assert (v["status"], v["ends_on"]) == ("ending", v["renews_on"])
    v = api.post(f"/v1/workspaces/{ws}/subscription/resume", "alice").json
    assert (v["status"], v["ends_on"]) == ("active", None)
    # Cancel now: back to free that day with its 50 credits; the plan credits left expire.
    v = api.post(f"/v1/workspaces/{ws}/subscription/cancel", "alice", {"when": "now"}).json
    assert (v["plan"]["id"], v["status"], v["manage_payments"], v["balance"]["plan"]) == ("free", "active", False, 50)
    assert ledger.audit().clean


def test_next_renewal_grants_the_upgraded_plan(api):
    ws = api.workspace("alice")
    pay(api, "alice", ws, "checkout/subscription", {"plan": "creator", "interval": "month"})
    api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "pro", "interval": "month"})
    later = datetime(2027, 3, 1, tzinfo=timezone.utc)
    clock.set_now(later)
    assert standin.StandIn().tick(later) == 2  # Stripe renews: subscription.updated + invoice.paid
    v = view(api, ws)
    assert (v["plan"]["id"], v["status"], v["balance"]["plan"], v["cycle"]["start"]) == ("pro", "active", 2000, "2027-02-28")
    assert ledger.audit().clean


def test_portal_cancel_has_the_same_effect(api):
    ws = api.workspace("alice")
    pay(api, "alice", ws, "checkout/subscription", {"plan": "creator", "interval": "year"})
    url = api.post(f"/v1/workspaces/{ws}/portal", "alice").json["portal_url"]
    path = url[url.index("/standin/"):]
    assert b"Cancel at the end" in api.client.http.get(path).body
    assert api.client.http.post(path + "/cancel_period_end", body="").status_code == 303
    v = view(api, ws)
    assert (v["status"], v["ends_on"], v["interval"]) == ("ending", "2028-01-31", "year")


def test_billing_routes_are_for_owners_and_admins(api):
    ws = api.workspace("alice")
    r = api.post(f"/v1/workspaces/{ws}/checkout/topup", "mallory", {"pack": "pack_1000"})
    assert r.status_code == 404
    r = api.post(f"/v1/workspaces/{ws}/checkout/topup", "svc", {"pack": "pack_1000"}, scope="credits:service")
    assert r.status_code == 403
    r = api.post(f"/v1/workspaces/{ws}/checkout/topup", "alice", {"pack": "pack_9"})
    assert (r.status_code, r.json["error"]["code"]) == (400, "invalid_request")
    r = api.post(f"/v1/workspaces/{ws}/subscription/cancel", "alice", {"when": "later"})
    assert r.status_code == 400
    r = api.post(f"/v1/workspaces/{ws}/subscription/cancel", "alice", {"when": "now"})
    assert (r.status_code, r.json["error"]["code"]) == (409, "invalid_state")


def test_a_switch_scheduled_in_the_portal_is_the_same_pending_change_as_through_the_api(api):
    ws = api.workspace("alice")
    pay(api, "alice", ws, "checkout/subscription", {"plan": "pro", "interval": "month"})
    customer = api.post(f"/v1/workspaces/{ws}/portal", "alice").json["portal_url"].rsplit("/", 1)[1]
    page = api.client.http.get(f"/standin/portal/{customer}")
    assert b"Switch to Creator (monthly) at the end of the period" in page.body
    assert b"Switch to Team" not in page.body  # a personal workspace's portal offers personal plans
    done = api.client.http.post(f"/standin/portal/{customer}/switch-price_creator_month", body="")
    assert done.status_code == 303
    v = view(api, ws)
    assert (v["plan"]["id"], v["pending_change"]) == ("pro", {"plan": "creator", "interval": "month",
                                                              "effective_on": v["renews_on"]})
    assert api.client.http.post(f"/standin/portal/{customer}/keep", body="").status_code == 303
    assert view(api, ws)["pending_change"] is None
    # Through the API, then withdrawn in the portal: the same states.
    v = api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "creator", "interval": "year"}).json
    assert v["pending_change"]["plan"] == "creator" and v["pending_change"]["interval"] == "year"
    assert api.client.http.post(f"/standin/portal/{customer}/keep", body="").status_code == 303
    assert view(api, ws)["pending_change"] is None


def test_a_second_subscription_checkout_closes_the_first(api):
    """Two tabs, two checkouts: only the newest can be paid, so one subscription is started."""
    ws = api.workspace("alice")
    first = api.post(f"/v1/workspaces/{ws}/checkout/subscription", "alice", {"plan": "creator", "interval": "month"},
                     headers={"Idempotency-Key": "tab-1"}).json
    again = api.post(f"/v1/workspaces/{ws}/checkout/subscription", "alice", {"plan": "creator", "interval": "month"},
                     headers={"Idempotency-Key": "tab-1"}).json
    assert again == first  # the same key is the same checkout, still open
    second = pay(api, "alice", ws, "checkout/subscription", {"plan": "pro", "interval": "month"})
    assert second["session_id"] != first["session_id"]
    done = api.client.http.post(f"/standin/checkout/{first['session_id']}/pay", body="")
    assert (done.status_code, done.headers["Location"]) == (303, f"/standin/checkout/{first['session_id']}")
    page = api.client.http.get(f"/standin/checkout/{first['session_id']}")
    assert b"This checkout has expired" in page.body
    v = view(api, ws)
    assert (v["plan"]["id"], v["balance"]["plan"]) == ("pro", 2000)
    assert len([r for r in standin.StandinRecord.scan() if r.pk.startswith("standin#sub_local")]) == 1
