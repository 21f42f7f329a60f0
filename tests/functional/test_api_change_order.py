"""Changes made through the API apply at once, from Stripe's answer, before Stripe's own events
arrive: two of them within one second keep their order."""
from __future__ import annotations

from datetime import timedelta

from dateutil.relativedelta import relativedelta

from chalicelib.billing import events
from tests.conftest import T0
from tests.functional.test_webhook import _subscribe, stripe, ts, view, webhook_secret  # noqa: F401


def test_cancel_then_resume_within_one_second_ends_resumed(api, stripe):
    ws = api.workspace("alice")
    _subscribe(api, stripe, ws)
    start, end = ts(T0), ts(T0 + relativedelta(months=1))
    at = T0 + timedelta(days=3, microseconds=100_000)
    cancelled = stripe.subscription(ws, "sub_1", "price_creator_month", start, end, cancel_at_period_end=True)
    assert events.apply_subscription(cancelled, at) == "applied"
    assert view(api, ws)["status"] == "ending"
    resumed = stripe.subscription(ws, "sub_1", "price_creator_month", start, end)
    assert events.apply_subscription(resumed, at + timedelta(microseconds=400_000)) == "applied"
    assert (view(api, ws)["status"], view(api, ws)["ends_on"]) == ("active", None)
    # Stripe's event of the cancellation, made in that same second and delivered late, sorts after
    # both answers: Stripe made it no earlier than the change it reports.
    assert events.seen_now(at) < f"{ts(at):012d}:evt_1"


def test_an_older_answer_replayed_changes_nothing(api, stripe):
    ws = api.workspace("alice")
    _subscribe(api, stripe, ws)
    start, end = ts(T0), ts(T0 + relativedelta(months=1))
    at = T0 + timedelta(days=3)
    resumed = stripe.subscription(ws, "sub_1", "price_creator_month", start, end)
    cancelled = stripe.subscription(ws, "sub_1", "price_creator_month", start, end, cancel_at_period_end=True)
    assert events.apply_subscription(cancelled, at + timedelta(microseconds=500_000)) == "applied"
    assert events.apply_subscription(resumed, at + timedelta(microseconds=200_000)) == "ignored: older than the state applied"
    assert view(api, ws)["status"] == "ending"
