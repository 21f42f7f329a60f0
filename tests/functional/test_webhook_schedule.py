"""Downgrades scheduled outside the API (Stripe's customer portal): a subscription schedule's next
phase is the workspace's pending change, in whatever order its events arrive."""
from __future__ import annotations

from dateutil.relativedelta import relativedelta

from tests.conftest import T0
from tests.functional.test_webhook import _subscribe, deliver, stripe, ts, view, webhook_secret  # noqa: F401

START, END = ts(T0), ts(T0 + relativedelta(months=1))  # the period: Jan 31 to Feb 28, 2027
DOWNGRADE = [(START, END, "price_pro_month"), (END, None, "price_creator_month")]
CREATOR_FROM_END = {"plan": "creator", "interval": "month", "effective_on": "2027-02-28"}


def schedule_event(stripe, phases, status="active", created=START + 60, **kw):
    return stripe.event(f"subscription_schedule.{'created' if status == 'active' else status}",
                        stripe.schedule("sub_1", phases, status, **kw), created=created)


def test_a_portal_downgrade_shows_as_pending_and_its_release_withdraws_it(api, stripe):
    ws = api.workspace("alice")
    _subscribe(api, stripe, ws, price="price_pro_month")
    created = schedule_event(stripe, DOWNGRADE, expand_prices=stripe.shape == "old")
    r = deliver(api, created)
    assert (r.status_code, r.json["result"]) == (200, "pending creator month")
    v = view(api, ws)
    assert (v["plan"]["id"], v["pending_change"], v["balance"]["plan"]) == ("pro", CREATOR_FROM_END, 2000)
    released = schedule_event(stripe, DOWNGRADE, status="released", created=START + 120)
    assert deliver(api, released).json["result"] == "no pending change"
    assert view(api, ws)["pending_change"] is None
    # The creation delivered again, late: older than the release, it changes nothing.
    assert deliver(api, created).json["result"] == "ignored: older than what is applied"
    assert view(api, ws)["pending_change"] is None


def test_the_release_arriving_first_wins_over_an_older_creation(api, stripe):
    ws = api.workspace("alice")
    _subscribe(api, stripe, ws, price="price_pro_month")
    assert deliver(api, schedule_event(stripe, DOWNGRADE, status="released", created=START + 120)).status_code == 200
    assert deliver(api, schedule_event(stripe, DOWNGRADE, created=START + 60)).status_code == 200
    assert view(api, ws)["pending_change"] is None


def test_a_schedule_that_changes_no_price_is_no_pending_change(api, stripe):
    ws = api.workspace("alice")
    _subscribe(api, stripe, ws, price="price_pro_month")
    same = [(START, END, "price_pro_month"), (END, None, "price_pro_month")]
    assert deliver(api, schedule_event(stripe, same)).json["result"] == "no pending change"
    assert view(api, ws)["pending_change"] is None


def test_a_schedule_of_a_subscription_not_ours_is_ignored(api, stripe):
    ws = api.workspace("alice")
    e = stripe.event("subscription_schedule.created", stripe.schedule("sub_elsewhere", DOWNGRADE), created=START)
    r = deliver(api, e)
    assert (r.status_code, r.json["result"]) == (200, "ignored: not a subscription of ours")
    assert view(api, ws)["pending_change"] is None


def test_the_downgrade_taking_effect_clears_the_pending_change(api, stripe):
    ws = api.workspace("alice")
    _subscribe(api, stripe, ws, price="price_pro_month")
    assert deliver(api, schedule_event(stripe, DOWNGRADE)).status_code == 200
    nxt = ts(T0 + relativedelta(months=2))
    updated = stripe.event("customer.subscription.updated",
                           stripe.subscription(ws, "sub_1", "price_creator_month", END, nxt), created=END)
    assert deliver(api, updated).status_code == 200
    v = view(api, ws)
    assert (v["plan"]["id"], v["pending_change"]) == ("creator", None)


def test_a_subscription_older_than_its_link_gets_one_with_its_next_event(api, stripe):
    from chalicelib.credits.models import SubscriptionLink

    ws = api.workspace("alice")
    _subscribe(api, stripe, ws, price="price_pro_month")
    SubscriptionLink("sub#sub_1", "link").delete()  # as before links were written
    assert deliver(api, schedule_event(stripe, DOWNGRADE)).json["result"] == "ignored: not a subscription of ours"
    updated = stripe.event("customer.subscription.updated",
                           stripe.subscription(ws, "sub_1", "price_pro_month", START, END), created=START + 30)
    assert deliver(api, updated).json["result"] == "applied"
    assert deliver(api, schedule_event(stripe, DOWNGRADE, created=START + 90)).json["result"] == "pending creator month"
    assert view(api, ws)["pending_change"] == CREATOR_FROM_END
