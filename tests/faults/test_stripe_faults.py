"""Stripe failing under checkout, portal and subscription changes: stripe-python's real client over
a fake network. Every resend of a request carries the same Idempotency-Key (so Stripe applies it
once); rate limits are resent a bounded number of times; the client then gets 503 (rate limit,
with Retry-After) or 502 (anything else from Stripe), with nothing changed, and can try again."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.billing import gateway, service
from tests.conftest import T0
from tests.faults.conftest import deliver, entries
from tests.faults.fake_stripe import FakeStripeHTTP
from tests.stripe_events import Stripe

CUSTOMERS, SESSIONS = "POST /v1/customers", "POST /v1/checkout/sessions"
PORTAL, UPDATE = "POST /v1/billing_portal/sessions", "POST /v1/subscriptions/{id}"
RETRIEVE, CANCEL, REFUNDS = "GET /v1/subscriptions/{id}", "DELETE /v1/subscriptions/{id}", "POST /v1/refunds"
END = T0 + timedelta(days=28)


@pytest.fixture
def waits(monkeypatch):
    """The gateway's waits between 429 resends, at the top of their jitter, not slept."""
    slept: list[float] = []
    clock = [0.0]
    monkeypatch.setattr(gateway, "sleep", lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)))
    monkeypatch.setattr(gateway, "monotonic", lambda: clock[0])
    monkeypatch.setattr(gateway, "rng", type("Max", (), {"uniform": staticmethod(lambda lo, hi: hi)})())
    return slept


@pytest.fixture
def stripe_net(api, monkeypatch, waits):
    ws = api.workspace("alice")
    net = FakeStripeHTTP(ws, start=int(T0.timestamp()), end=int(END.timestamp()))
    real = gateway.StripeGateway("sk_test_fake", http_client=net)
    monkeypatch.setattr(service, "gateway", lambda: real)
    net.ws = ws
    return net


def topup(api, ws, key="ck1"):
    return api.post(f"/v1/workspaces/{ws}/checkout/topup", "alice", {"pack": "pack_1000"},
                    headers={"Idempotency-Key": key})


def assert_error(r, status, code):
    assert (r.status_code, r.json["error"]["code"]) == (status, code)
    assert set(r.json) == {"error"} and r.json["error"]["message"].startswith("Stripe")


def test_5xx_and_dropped_connections_are_resent_with_the_same_key(api, stripe_net):
    ws = stripe_net.ws
    stripe_net.fail(CUSTOMERS, "500", "network")
    stripe_net.fail(SESSIONS, "network", "500")
    r = topup(api, ws)
    assert r.status_code == 201
    assert r.json == {"checkout_url": "https://checkout.stripe.com/c/pay/cs_fake_2", "session_id": "cs_fake_2"}
    assert stripe_net.keys(CUSTOMERS) == [f"customer-{ws}"] * 3
    assert stripe_net.keys(SESSIONS) == [f"topup-{ws}-ck1"] * 3
    assert stripe_net.applied == [CUSTOMERS, SESSIONS]


def test_rate_limits_are_resent_then_503_and_the_clients_retry_is_the_same_checkout(api, stripe_net, waits):
    ws = stripe_net.ws
    stripe_net.fail(SESSIONS, "429", "429")
    r = topup(api, ws)
    assert r.status_code == 201
    assert waits == [1.0, 2.0]
    stripe_net.fail(SESSIONS, "429", "429", "429")
    r = topup(api, ws, key="ck2")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "2"
    assert r.json["error"]["code"] == "unavailable"
    assert len(stripe_net.calls(SESSIONS)) == 6  # 3 + 3: 429s are not resent by stripe-python
    r = topup(api, ws, key="ck2")
    assert r.status_code == 201
    assert stripe_net.keys(SESSIONS) == [f"topup-{ws}-ck1"] * 3 + [f"topup-{ws}-ck2"] * 4
    assert stripe_net.keys(CUSTOMERS) == [f"customer-{ws}"]  # the customer was made once


@pytest.mark.parametrize("failure", ["500", "network"])
def test_stripe_failing_past_its_retries_is_502_and_changes_nothing(api, stripe_net, failure):
    ws = stripe_net.ws
    stripe_net.fail(CUSTOMERS, failure, failure, failure)
    r = topup(api, ws)
    assert_error(r, 502, "payment_provider_error")
    assert stripe_net.keys(CUSTOMERS) == [f"customer-{ws}"] * 3  # stripe-python: 1 + 2 resends
    assert api.get(f"/v1/workspaces/{ws}/subscription", "alice").json["manage_payments"] is False
    assert topup(api, ws).status_code == 201


def test_portal_is_resent_with_one_key(api, stripe_net):
    ws = stripe_net.ws
    topup(api, ws)  # makes the customer
    stripe_net.fail(PORTAL, "500", "429")
    r = api.post(f"/v1/workspaces/{ws}/portal", "alice")
    assert (r.status_code, r.json) == (200, {"portal_url": "https://billing.stripe.com/p/session/1"})
    keys = stripe_net.keys(PORTAL)
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0].startswith("portal-")


def _subscribe(api, ws, price="price_creator_month"):
    s = Stripe("new")
    start, end = int(T0.timestamp()), int(END.timestamp())
    assert deliver(api, s.event("customer.subscription.created",
                                s.subscription(ws, "sub_1", price, start, end, customer="cus_fake"),
                                created=start - 60)).status_code == 200
    assert deliver(api, s.event("invoice.paid", s.invoice(ws, "sub_1", price, start, end, "in_1",
                                                          reason="subscription_create"))).status_code == 200


def test_an_upgrade_is_resent_with_one_key_and_applied_once(api, stripe_net, webhook_secret):
    ws = stripe_net.ws
    _subscribe(api, ws)
    stripe_net.fail(RETRIEVE, "500")
    stripe_net.fail(UPDATE, "429", "network", "500")
    r = api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "pro", "interval": "month"})
    assert r.status_code == 200
    assert (r.json["plan"]["id"], r.json["balance"]["plan"]) == ("pro", 500)  # credits from the next renewal
    keys = stripe_net.keys(UPDATE)
    assert len(keys) == 4 and len(set(keys)) == 1  # our 429 resend and stripe-python's two, one key
    assert stripe_net.calls(UPDATE)[0]["params"]["items[0][price]"] == ["price_pro_month"]
    assert stripe_net.applied.count(UPDATE) == 1


def test_a_rate_limited_change_is_503_and_the_wallet_unchanged(api, stripe_net, webhook_secret, ticking):
    ws = stripe_net.ws
    _subscribe(api, ws)
    stripe_net.fail(UPDATE, "429", "429", "429")
    r = api.post(f"/v1/workspaces/{ws}/subscription/cancel", "alice", {"when": "period_end"})
    assert (r.status_code, r.json["error"]["code"], r.headers["Retry-After"]) == (503, "unavailable", "2")
    v = api.get(f"/v1/workspaces/{ws}/subscription", "alice").json
    assert (v["plan"]["id"], v["status"], v["ends_on"]) == ("creator", "active", None)
    r = api.post(f"/v1/workspaces/{ws}/subscription/cancel", "alice", {"when": "period_end"})
    assert (r.status_code, r.json["status"], r.json["ends_on"]) == (200, "ending", "2027-02-28")
    ticking.advance(1)  # the wallet orders Stripe's answers by the second they came
    r = api.post(f"/v1/workspaces/{ws}/subscription/resume", "alice")
    assert (r.status_code, r.json["status"]) == (200, "active")
    ticking.advance(1)
    r = api.post(f"/v1/workspaces/{ws}/subscription/cancel", "alice", {"when": "period_end"})
    assert (r.status_code, r.json["status"]) == (200, "ending")
    # Three requests made at Stripe, three keys: a second cancellation is not Stripe's replay of the first.
    assert len(set(stripe_net.keys(UPDATE)[3:])) == 3


def test_cancel_now_is_resent_with_its_keys_and_a_retry_refunds_once(api, stripe_net, webhook_secret):
    ws = stripe_net.ws
    _subscribe(api, ws)
    stripe_net.fail(CANCEL, "network")
    stripe_net.fail(REFUNDS, "500", "500", "500")
    r = api.post(f"/v1/workspaces/{ws}/subscription/cancel", "alice", {"when": "now"})
    assert_error(r, 502, "payment_provider_error")  # cancelled at Stripe, the refund failed
    r = api.post(f"/v1/workspaces/{ws}/subscription/cancel", "alice", {"when": "now"})
    assert (r.status_code, r.json["plan"]["id"]) == (200, "free")
    assert stripe_net.keys(CANCEL) == ["cancel-sub_1"] * 3
    assert stripe_net.keys(REFUNDS) == ["cancel-refund-sub_1"] * 4
    # One amount under that key, from when Stripe cancelled (a day into 28): 1200 * 27 / 28.
    assert [c["params"]["amount"] for c in stripe_net.calls(REFUNDS)] == [["1157"]] * 4
    assert stripe_net.applied.count(REFUNDS) == 1
    assert entries(api, ws)[0][0] == "grant"  # the free plan's credits


SCHEDULES, SCHEDULE = "POST /v1/subscription_schedules", "POST /v1/subscription_schedules/{id}"
RELEASE = "POST /v1/subscription_schedules/{id}/release"


def test_a_downgrade_and_its_withdrawal_are_resent_with_one_key_each(api, stripe_net, webhook_secret):
    ws = stripe_net.ws
    stripe_net.sub["items"]["data"][0]["price"]["id"] = "price_pro_month"
    _subscribe(api, ws, price="price_pro_month")
    stripe_net.fail(SCHEDULES, "500", "network")
    stripe_net.fail(SCHEDULE, "429")
    r = api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "creator", "interval": "month"})
    assert r.status_code == 200
    assert r.json["pending_change"] == {"plan": "creator", "interval": "month", "effective_on": "2027-02-28"}
    for route in (SCHEDULES, SCHEDULE):
        keys = stripe_net.keys(route)
        assert len(set(keys)) == 1 and stripe_net.applied.count(route) == 1
    assert len(stripe_net.keys(SCHEDULES)) == 3 and len(stripe_net.keys(SCHEDULE)) == 2
    # A client retry after a lost answer finds the schedule: none is created twice.
    r = api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "creator", "interval": "month"})
    assert r.status_code == 200 and stripe_net.applied.count(SCHEDULES) == 1
    stripe_net.fail(RELEASE, "network")
    r = api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "pro", "interval": "month"})
    assert (r.status_code, r.json["pending_change"], r.json["plan"]["id"]) == (200, None, "pro")
    keys = stripe_net.keys(RELEASE)
    assert len(keys) == 2 and len(set(keys)) == 1
    stripe_net.fail(SCHEDULES, "429", "429", "429")
    r = api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "creator", "interval": "month"})
    assert (r.status_code, r.json["error"]["code"]) == (503, "unavailable")
    assert api.get(f"/v1/workspaces/{ws}/subscription", "alice").json["pending_change"] is None


def test_cancelling_at_period_end_releases_a_scheduled_downgrade_first(api, stripe_net, webhook_secret):
    """Stripe refuses cancel_at_period_end on a subscription a schedule manages."""
    ws = stripe_net.ws
    stripe_net.sub["items"]["data"][0]["price"]["id"] = "price_pro_month"
    _subscribe(api, ws, price="price_pro_month")
    r = api.post(f"/v1/workspaces/{ws}/subscription/change", "alice", {"plan": "creator", "interval": "month"})
    assert r.json["pending_change"]["plan"] == "creator"
    r = api.post(f"/v1/workspaces/{ws}/subscription/cancel", "alice", {"when": "period_end"})
    assert (r.status_code, r.json["status"], r.json["ends_on"], r.json["pending_change"]) == (200, "ending", "2027-02-28", None)
    changes = [c["route"] for c in stripe_net.requests if c["route"] in (RELEASE, UPDATE)]
    assert changes == [RELEASE, UPDATE]
    assert stripe_net.calls(UPDATE)[0]["params"]["cancel_at_period_end"] == ["true"]


def subscription_checkout(api, ws, key):
    return api.post(f"/v1/workspaces/{ws}/checkout/subscription", "alice", {"plan": "creator", "interval": "month"},
                    headers={"Idempotency-Key": key})


def test_a_newer_subscription_checkout_expires_the_older_once(api, stripe_net):
    ws = stripe_net.ws
    first = subscription_checkout(api, ws, "tab-1").json["session_id"]
    expire = f"POST /v1/checkout/sessions/{first}/expire"
    stripe_net.fail(expire, "500")
    second = subscription_checkout(api, ws, "tab-2")
    assert second.status_code == 201 and second.json["session_id"] != first
    assert stripe_net.keys(expire) == [f"expire-{first}"] * 2  # stripe-python resent the 500, same key
    assert stripe_net.applied.count(expire) == 1


def test_an_older_checkout_already_paid_or_expired_is_left_as_it_is(api, stripe_net):
    ws = stripe_net.ws
    first = subscription_checkout(api, ws, "tab-1").json["session_id"]
    stripe_net.fail(f"POST /v1/checkout/sessions/{first}/expire", "400")
    r = subscription_checkout(api, ws, "tab-2")
    assert r.status_code == 201
    assert stripe_net.applied.count(f"POST /v1/checkout/sessions/{first}/expire") == 0
