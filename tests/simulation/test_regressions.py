"""Sequences the simulation found, kept as plain tests: each replays the steps through the same
driver (tests/simulation/sim.py), checking every invariant after each step."""
from __future__ import annotations

import pytest

from chalicelib import clock
from tests.simulation.sim import Sim
from tests.simulation.test_simulation import webhook_secret  # noqa: F401  (fixture)


@pytest.fixture
def sim(moto_aws, webhook_secret):  # noqa: F811
    from chalice.test import Client

    from app import app

    with Client(app) as client:
        s = Sim(client)
        s.reset()
        yield s
    clock.set_now(None)


def deliver_all(sim: Sim) -> None:
    while sim.pending():
        sim.deliver(0)
        sim.check()


def events_of(sim: Sim, sub_id: str) -> dict[str, int]:
    return {e.type: i for i, e in enumerate(sim.events) if e.subscription == sub_id}


def test_a_late_duplicate_of_an_older_cancelled_subscription_restarts_nothing(sim):
    """Creator, cancelled; then pro, cancelled: the wallet only remembered the last subscription
    that ended, so Stripe redelivering the creator subscription's invoice.paid switched the
    workspace back to creator and granted its 500 credits a second time for the same cycle."""
    sim.subscribe(0, 0, "new")
    creator = sim.subs[0].id
    deliver_all(sim)
    sim.cancel(0, at_period_end=False)
    deliver_all(sim)
    sim.subscribe(0, 1, "old")
    deliver_all(sim)
    sim.cancel(0, at_period_end=False)
    deliver_all(sim)
    applied = [e for e in sim.events if e.applied]
    for type_ in ("invoice.paid", "customer.subscription.created"):
        sim.deliver(applied.index(sim.events[events_of(sim, creator)[type_]]), again=True)
        sim.check()
    view = sim.call("GET", f"/v1/workspaces/{sim.workspaces[0].ws}/subscription", "alice").body
    assert (view["plan"]["id"], view["balance"]) == ("free", {"available": 50, "plan": 50, "topup": 0, "held": 0})
    assert sim.workspaces[0].model.grants[("creator", "2027-01-31T09:00:01Z", "2027-02-28T09:00:01Z")] == 1


def test_a_subscription_deleted_while_another_is_current_stays_ended(sim):
    """Creator cancelled, its deletion delivered only after pro started (ignored then: another
    subscription is current). A late duplicate of creator's invoice must not switch back."""
    sim.subscribe(0, 0, "new")
    creator = sim.subs[0].id
    deliver_all(sim)
    sim.cancel(0, at_period_end=False)
    deleted = sim.events[events_of(sim, creator)["customer.subscription.deleted"]]
    deleted.applied = True  # held back by Stripe: pro starts first
    sim.subscribe(0, 1, "new")
    deliver_all(sim)
    deleted.applied = False
    deliver_all(sim)  # the deletion, late: pro stays
    applied = [e for e in sim.events if e.applied]
    sim.deliver(applied.index(sim.events[events_of(sim, creator)["invoice.paid"]]), again=True)
    sim.check()
    view = sim.call("GET", f"/v1/workspaces/{sim.workspaces[0].ws}/subscription", "alice").body
    assert (view["plan"]["id"], view["balance"]["plan"]) == ("pro", 2000)


def test_an_older_subscriptions_first_deliveries_after_a_newer_one_started_change_nothing(sim):
    """Creator subscribed and cancelled at once; Stripe could not deliver any of its events until
    pro had started. Creator's created event then switched the workspace from pro to creator
    (pro's 2000 credits expired), its invoice granted creator's 500, and its deletion left the
    workspace on free while pro was paid for."""
    sim.subscribe(0, 0, "new")
    creator = sim.subs[0].id
    sim.cancel(0, at_period_end=False)
    late = [e for e in sim.pending() if e.subscription == creator]
    for e in late:
        e.applied = True  # held back by Stripe
    sim.subscribe(0, 1, "new")
    deliver_all(sim)
    for e in late:
        e.applied = False
    deliver_all(sim)
    view = sim.call("GET", f"/v1/workspaces/{sim.workspaces[0].ws}/subscription", "alice").body
    assert (view["plan"]["id"], view["balance"]["plan"]) == ("pro", 2000)
