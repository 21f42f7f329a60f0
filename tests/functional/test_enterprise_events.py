"""A team that moves from a Stripe subscription to an enterprise contract: the old subscription's
late events (its end, a redelivered invoice) leave the contract as it is."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dateutil.relativedelta import relativedelta

from chalicelib.credits import ledger, plans
from tests.conftest import T0
from tests.functional.test_webhook import _subscribe, deliver, stripe, ts, view, webhook_secret  # noqa: F401


def test_an_old_subscriptions_late_events_leave_the_contract(api, stripe):
    team = api.post("/v1/workspaces", "alice", {"name": "Bigco"}).json["workspace_id"]
    events = _subscribe(api, stripe, team, price="price_team_month")
    assert view(api, team)["balance"]["plan"] == 6000
    plans.set_contract(team, 20000, datetime(2027, 12, 31, tzinfo=timezone.utc), T0 + timedelta(days=1))
    assert (view(api, team)["plan"]["id"], view(api, team)["balance"]["plan"]) == ("enterprise", 20000)
    start, end = ts(T0), ts(T0 + relativedelta(months=1))
    deleted = stripe.event("customer.subscription.deleted",
                           stripe.subscription(team, "sub_1", "price_team_month", start, end, status="canceled",
                                               ended_at=ts(T0 + timedelta(days=2))), created=ts(T0 + timedelta(days=2)))
    r = deliver(api, deleted)
    assert (r.status_code, r.json["result"]) == (200, "ignored: subscription already ended")
    assert deliver(api, events["invoice"]).json["result"].endswith("granted 0")
    v = view(api, team)
    assert (v["plan"]["id"], v["balance"]["plan"], v["manage_payments"]) == ("enterprise", 20000, True)
    assert ledger.audit().clean
