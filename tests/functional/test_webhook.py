"""Stripe's webhook, both API shapes: signatures, top-ups, subscriptions, invoices, refunds."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
from dateutil.relativedelta import relativedelta

from chalicelib import config
from chalicelib.credits import ledger
from tests.conftest import T0
from tests.stripe_events import Stripe, sign

SECRET = config.LOCAL_DEFAULTS["STRIPE_WEBHOOK_SECRET"]


@pytest.fixture(autouse=True)
def webhook_secret(monkeypatch):
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", f"whsec_old_rotated_out,{SECRET}")
    config.reload()
    yield
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    config.reload()


@pytest.fixture(params=["new", "old"])
def stripe(request):
    return Stripe(request.param)


def deliver(api, event: dict, secret: str = SECRET, timestamp: int | None = None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(event).encode()
    return api.call("POST", "/stripe/webhook", raw=body, headers={"Stripe-Signature": sign(body, secret, timestamp)})


def view(api, ws, user="alice"):
    return api.get(f"/v1/workspaces/{ws}/subscription", user).json


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def kinds(api, ws, user="alice"):
    return [(e["kind"], e["plan_delta"], e["topup_delta"]) for e in
            api.get(f"/v1/workspaces/{ws}/ledger?limit=100", user).json["entries"]]


def test_bad_signatures_change_nothing(api, stripe):
    ws = api.workspace("alice")
    e = stripe.event("checkout.session.completed", stripe.checkout_topup(ws, "pack_1000", "cs_1", "pi_1", 1200))
    before = kinds(api, ws)
    r = deliver(api, e, secret="whsec_forged")
    assert (r.status_code, r.json["error"]["code"]) == (400, "invalid_signature")
    r = deliver(api, e, timestamp=int(time.time()) - 301)
    assert (r.status_code, r.json["error"]["code"]) == (400, "invalid_signature")
    r = deliver(api, e, raw=b"{not json")
    assert (r.status_code, r.json["error"]["code"]) == (400, "invalid_request")
    r = api.call("POST", "/stripe/webhook", raw=json.dumps(e).encode())  # no signature at all
    assert r.status_code == 400
    assert kinds(api, ws) == before
    assert view(api, ws)["balance"]["topup"] == 0


def test_unknown_event_type_is_200_without_effect(api, stripe):
    ws = api.workspace("alice")
    r = deliver(api, stripe.event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert r.status_code == 200
    assert kinds(api, ws) == [("grant", 50, 0)]


def test_topup_credited_once_whatever_arrives(api, stripe):
    ws = api.workspace("alice")
    completed = stripe.event("checkout.session.completed", stripe.checkout_topup(ws, "pack_1000", "cs_a", "pi_a", 1200))
    for _ in range(2):
        assert deliver(api, completed).status_code == 200
    # A delayed method: completed unpaid, then async_payment_succeeded, each twice.
    unpaid = stripe.event("checkout.session.completed",
                          stripe.checkout_topup(ws, "pack_5000", "cs_b", "pi_b", 5000, paid=False))
    succeeded = stripe.event("checkout.session.async_payment_succeeded",
                             stripe.checkout_topup(ws, "pack_5000", "cs_b", "pi_b", 5000))
    for e in (succeeded, unpaid, succeeded, unpaid):
        assert deliver(api, e).status_code == 200
    assert view(api, ws)["balance"] == {"available": 6050, "plan": 50, "topup": 6000, "held": 0}
    assert sorted(kinds(api, ws)) == [("grant", 50, 0), ("topup", 0, 1000), ("topup", 0, 5000)]
    assert ledger.audit().clean


def test_refunds_and_disputes_take_back_in_proportion(api, stripe):
    ws = api.workspace("alice")
    deliver(api, stripe.event("checkout.session.completed", stripe.checkout_topup(ws, "pack_1000", "cs_r", "pi_r", 1200)))
    half = stripe.event("charge.refunded", stripe.refunded_charge("pi_r", 1200, 600))
    full = stripe.event("charge.refunded", stripe.refunded_charge("pi_r", 1200, 1200))
    for e in (half, full, half, full):  # cumulative totals, duplicated and out of order
        assert deliver(api, e).status_code == 200
    assert view(api, ws)["balance"]["topup"] == 0
    assert [k for k in kinds(api, ws) if k[0] == "refund"] == [("refund", 0, -500), ("refund", 0, -500)]
    assert ledger.audit().clean


def test_refund_of_spent_credits_records_the_shortfall(api, stripe):
    ws = api.workspace("alice")
    deliver(api, stripe.event("checkout.session.completed", stripe.checkout_topup(ws, "pack_1000", "cs_s", "pi_s", 1200)))
    for i in range(9):  # 50 plan + 850 top-up spent: 150 top-up left
        api.charge(ws, "alice", "avatar", key=f"spend-{i}")
    assert view(api, ws)["balance"]["topup"] == 150
    deliver(api, stripe.event("charge.dispute.created", stripe.dispute("pi_s", 1200)))
    assert view(api, ws)["balance"] == {"available": 0, "plan": 0, "topup": 0, "held": 0}
    refund = api.get(f"/v1/workspaces/{ws}/ledger?limit=1", "alice").json["entries"][0]
    assert (refund["kind"], refund["topup_delta"], refund["ref"]["shortfall"]) == ("refund", -150, 850)
    assert ledger.audit().clean


def _subscribe(api, stripe, ws, sub="sub_1", price="price_creator_month", start=T0, order=("sub", "invoice")):
    end = start + relativedelta(months=1)
    events = {
        "sub": stripe.event("customer.subscription.created", stripe.subscription(ws, sub, price, ts(start), ts(end)),
                            created=ts(start)),
        "invoice": stripe.event("invoice.paid", stripe.invoice(ws, sub, price, ts(start), ts(end), f"in_{sub}_1",
                                                              reason="subscription_create")),
    }
    for name in order:
        assert deliver(api, events[name]).status_code == 200
    return events


@pytest.mark.parametrize("order", [("sub", "invoice"), ("invoice", "sub"), ("invoice", "sub", "invoice", "sub")])
def test_subscribing_from_free_in_any_order(api, stripe, order):
    ws = api.workspace("alice")
    api.charge(ws, "alice", "image", key="before")  # 40 free credits left
    _subscribe(api, stripe, ws, order=order)
    v = view(api, ws)
    assert (v["plan"]["id"], v["interval"], v["status"], v["manage_payments"]) == ("creator", "month", "active", True)
    assert v["balance"] == {"available": 500, "plan": 500, "topup": 0, "held": 0}
    assert (v["cycle"], v["renews_on"]) == ({"start": "2027-01-31", "end": "2027-02-28"}, "2027-02-28")
    assert kinds(api, ws)[:2] == [("grant", 500, 0), ("expire", -40, 0)]
    assert ledger.audit().clean


def test_monthly_renewal_failed_payment_then_paid(api, stripe):
    from chalicelib import clock

    ws = api.workspace("alice")
    _subscribe(api, stripe, ws)
    start2, end2 = datetime(2027, 2, 28, 9, tzinfo=timezone.utc), datetime(2027, 3, 31, 9, tzinfo=timezone.utc)
    clock.set_now(start2 + relativedelta(minutes=5))
    failed = stripe.event("invoice.payment_failed", stripe.invoice(ws, "sub_1", "price_creator_month", ts(start2),
                                                                   ts(end2), "in_2"))
    deliver(api, failed)
    v = view(api, ws)
    assert (v["status"], v["balance"]["plan"], v["cycle"]["start"]) == ("past_due", 0, "2027-02-28")
    paid = stripe.event("invoice.paid", stripe.invoice(ws, "sub_1", "price_creator_month", ts(start2), ts(end2), "in_2"))
    deliver(api, paid)
    deliver(api, paid)
    v = view(api, ws)
    assert (v["status"], v["balance"]["plan"]) == ("active", 500)
    assert [k for k in kinds(api, ws) if k[0] == "grant"] == [("grant", 500, 0), ("grant", 500, 0), ("grant", 50, 0)]
    assert ledger.audit().clean


def test_cancel_at_period_end_then_resume_then_deleted(api, stripe):
    ws = api.workspace("alice")
    _subscribe(api, stripe, ws)
    end = T0 + relativedelta(months=1)
    ending = stripe.event("customer.subscription.updated",
                          stripe.subscription(ws, "sub_1", "price_creator_month", ts(T0), ts(end), cancel_at_period_end=True),
                          created=ts(T0) + 10)
    deliver(api, ending)
    v = view(api, ws)
    assert (v["status"], v["ends_on"]) == ("ending", "2027-02-28")
    resumed = stripe.event("customer.subscription.updated",
                           stripe.subscription(ws, "sub_1", "price_creator_month", ts(T0), ts(end)), created=ts(T0) + 20)
    deliver(api, resumed)
    deliver(api, ending)  # an older state delivered late changes nothing
    assert (view(api, ws)["status"], view(api, ws)["ends_on"]) == ("active", None)
    deleted = stripe.event("customer.subscription.deleted",
                           stripe.subscription(ws, "sub_1", "price_creator_month", ts(T0), ts(end), status="canceled",
                                               ended_at=ts(T0) + 30), created=ts(T0) + 30)
    deliver(api, deleted)
    deliver(api, resumed)  # late events of an ended subscription change nothing
    v = view(api, ws)
    assert (v["plan"]["id"], v["interval"], v["status"], v["manage_payments"]) == ("free", None, "active", False)
    assert v["balance"]["plan"] == 50
    assert ledger.audit().clean
