"""Stripe's webhook under faults: a delivery that fails half way (DynamoDB failing after the first
of several writes, or the process dying in the middle) is answered 5xx, so Stripe delivers it
again; the redelivery completes it exactly once, and a third delivery changes nothing. A delivery
whose write applied but whose answer was lost is answered 200, applied once."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.credits import ledger, plans, topups
from tests.conftest import T0
from tests.faults.conftest import balance, deliver, entries
from tests.faults.injector import Faults
from tests.stripe_events import Stripe

S = Stripe("new")
START, END = int(T0.timestamp()), int((T0 + timedelta(days=28)).timestamp())
GRANT_FREE = ("grant", 50, 0, 0)


@pytest.fixture(autouse=True)
def _secret(webhook_secret):
    yield


def invoice_paid(ws):
    return S.event("invoice.paid", S.invoice(ws, "sub_1", "price_creator_month", START, END, "in_1",
                                             reason="subscription_create"), event_id="evt_paid")


def topup_completed(ws, session="cs_1", pi="pi_1"):
    return S.event("checkout.session.completed", S.checkout_topup(ws, "pack_1000", session, pi, 1200),
                   event_id=f"evt_{session}")


def assert_exactly(api, ws, bal, ledger_entries):
    assert balance(api, ws) == bal
    assert entries(api, ws) == ledger_entries
    assert ledger.audit().clean


SUBSCRIBED = {"available": 500, "plan": 500, "topup": 0, "held": 0}
SUBSCRIBED_LEDGER = [("grant", 500, 0, 0), ("expire", -50, 0, 0), GRANT_FREE]


def test_invoice_paid_failing_after_its_first_write_is_completed_by_the_redelivery(api):
    """invoice.paid before the subscription event: one write starts the plan, a second grants."""
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.allow(1)  # the plan starts...
        faults.next("internal", times=100)  # ...and DynamoDB fails the grant past the retry budget
        r = deliver(api, invoice_paid(ws))
    assert (r.status_code, r.json["error"]["code"]) == (503, "unavailable")
    assert faults.calls["TransactWriteItems"] == 9  # the start, then 8 attempts at the grant
    assert balance(api, ws) == {"available": 0, "plan": 0, "topup": 0, "held": 0}  # half way
    assert deliver(api, invoice_paid(ws)).status_code == 200
    assert_exactly(api, ws, SUBSCRIBED, SUBSCRIBED_LEDGER)
    assert deliver(api, invoice_paid(ws)).status_code == 200
    assert_exactly(api, ws, SUBSCRIBED, SUBSCRIBED_LEDGER)


def test_invoice_paid_dying_in_the_middle_is_completed_by_the_redelivery(api, monkeypatch):
    ws = api.workspace("alice")
    real = plans.mark_paid

    def dies(*args, **kwargs):
        monkeypatch.setattr(plans, "mark_paid", real)
        raise RuntimeError("Lambda timed out")

    monkeypatch.setattr(plans, "mark_paid", dies)
    r = deliver(api, invoice_paid(ws))
    assert (r.status_code, r.json["error"]["code"]) == (500, "internal_error")
    assert deliver(api, invoice_paid(ws)).status_code == 200
    assert_exactly(api, ws, SUBSCRIBED, SUBSCRIBED_LEDGER)
    assert deliver(api, invoice_paid(ws)).status_code == 200
    assert_exactly(api, ws, SUBSCRIBED, SUBSCRIBED_LEDGER)


@pytest.mark.parametrize("kind", ["timeout_after_write", "conflict", "throttling", "timeout_before_write"])
def test_a_grant_on_invoice_paid_under_one_fault_is_applied_once(api, kind):
    ws = api.workspace("alice")
    deliver(api, S.event("customer.subscription.created",
                         S.subscription(ws, "sub_1", "price_creator_month", START, END), created=START - 60))
    with Faults() as faults:
        faults.next(kind)
        r = deliver(api, invoice_paid(ws))
    assert r.status_code == 200
    assert faults.injected == {kind: 1}
    assert_exactly(api, ws, SUBSCRIBED, SUBSCRIBED_LEDGER)
    assert deliver(api, invoice_paid(ws)).status_code == 200
    assert_exactly(api, ws, SUBSCRIBED, SUBSCRIBED_LEDGER)


TOPPED = {"available": 1050, "plan": 50, "topup": 1000, "held": 0}
TOPPED_LEDGER = [("topup", 0, 1000, 0), GRANT_FREE]


@pytest.mark.parametrize("kind", ["timeout_after_write", "conflict", "internal", "timeout_before_write"])
def test_a_topup_under_one_fault_is_credited_once(api, kind):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next(kind)
        r = deliver(api, topup_completed(ws))
    assert r.status_code == 200
    assert faults.calls["TransactWriteItems"] == 2
    assert_exactly(api, ws, TOPPED, TOPPED_LEDGER)


def test_a_topup_whose_answers_are_lost_is_503_then_the_redelivery_is_a_no_op(api):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next("timeout_after_write", times=100)
        r = deliver(api, topup_completed(ws))
    assert r.status_code == 503  # the service cannot know; Stripe delivers again
    assert_exactly(api, ws, TOPPED, TOPPED_LEDGER)  # it did apply, once
    r = deliver(api, topup_completed(ws))
    assert (r.status_code, r.json["result"]) == (200, "ignored: credited before")
    assert_exactly(api, ws, TOPPED, TOPPED_LEDGER)


def test_a_refund_under_a_lost_answer_is_taken_once(api):
    ws = api.workspace("alice")
    deliver(api, topup_completed(ws))
    refund = S.event("charge.refunded", S.refunded_charge("pi_1", 1200, 600), event_id="evt_refund")
    with Faults() as faults:
        faults.next("timeout_after_write")
        assert deliver(api, refund).status_code == 200
    after = {"available": 550, "plan": 50, "topup": 500, "held": 0}
    assert_exactly(api, ws, after, [("refund", 0, -500, 0), *TOPPED_LEDGER])
    assert deliver(api, refund).status_code == 200
    assert_exactly(api, ws, after, [("refund", 0, -500, 0), *TOPPED_LEDGER])


def test_a_topup_refunded_first_dying_before_the_take_back_is_completed_by_the_redelivery(api, monkeypatch):
    """A refund reported before its top-up is remembered; the top-up then credits and takes back
    in two writes. Dying between them, the redelivery must still take the refund back."""
    ws = api.workspace("alice")
    refund = S.event("charge.refunded", S.refunded_charge("pi_1", 1200, 600), event_id="evt_refund")
    assert deliver(api, refund).status_code == 200
    real = topups.take_back

    def dies(*args, **kwargs):
        monkeypatch.setattr(topups, "take_back", real)
        raise RuntimeError("Lambda timed out")

    monkeypatch.setattr(topups, "take_back", dies)
    r = deliver(api, topup_completed(ws))
    assert r.status_code == 500
    assert balance(api, ws)["topup"] == 1000  # half way: credited, not yet taken back
    after = {"available": 550, "plan": 50, "topup": 500, "held": 0}
    assert deliver(api, topup_completed(ws)).status_code == 200
    assert_exactly(api, ws, after, [("refund", 0, -500, 0), *TOPPED_LEDGER])
    assert deliver(api, topup_completed(ws)).status_code == 200
    assert deliver(api, refund).status_code == 200
    assert_exactly(api, ws, after, [("refund", 0, -500, 0), *TOPPED_LEDGER])
