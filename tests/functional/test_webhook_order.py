"""Delivery order and duplicates do not matter: every billing scenario, in both Stripe API shapes,
reaches the same final state whether its events arrive in order, reversed, or each twice.

Each scenario is a list of Stripe events, each with the moment Stripe created it (the event's
`created`). It is played four times, each on its own workspace (all opened at T0, on free):

- in_order: each event delivered a minute after Stripe created it, the clock following along;
- twice:    as in_order with each event delivered twice back to back, and then every event once
            more at the end (late duplicates too: Stripe retrying an old event after newer ones
            were applied);
- late:     all delivered in order at the end (the webhook endpoint was down, Stripe retried);
- reversed: all delivered at the end, newest first.

What must agree: the subscription view (plan, interval, status, exact balances, cycle, ends_on,
pending change) of all four, against the scenario's expectation. The ledger (kind, plan delta,
top-up delta, as a multiset) of `twice` must equal `in_order`'s, and `reversed`'s must equal
`late`'s: those pairs see the same clock. Between live and late delivery the ledger may
legitimately differ (a late delivery finds the free cycle already renewed, or a paid cycle
already over before its invoice arrives: it writes the renewal of the free plan and skips a grant
that would have expired anyway); each scenario states its in_order ledger exactly. Where a
reversed ledger legitimately differs from the late one, the scenario says so and why. Every
scenario ends with `audit` clean.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest
from dateutil.relativedelta import relativedelta

from chalicelib import clock
from chalicelib.credits import ledger
from tests.conftest import T0
from tests.functional.test_webhook import deliver, webhook_secret  # noqa: F401  (autouse fixture)
from tests.stripe_events import Stripe

VARIANTS = ("in_order", "twice", "late", "reversed")
MINUTE = timedelta(minutes=1)


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def period(anchor: datetime, k: int, months: int = 1) -> tuple[datetime, datetime]:
    """Stripe's k-th billing period from its anchor: the anchor's day, clamped to the month's end."""
    return anchor + relativedelta(months=k * months), anchor + relativedelta(months=(k + 1) * months)


@dataclass
class Ev:
    at: datetime  # when Stripe created the event
    event: dict


@dataclass
class Story:
    events: list[Ev]
    expect: dict  # the final view, in part: plan, interval, status, balance, cycle, ends_on
    ledger: list[tuple]  # the in_order ledger, exactly (as a multiset): (kind, plan, top-up[, ref])
    # the reversed ledger when it legitimately differs from the late one (else: equal to late's)
    reversed_ledger: list[tuple] | None = None
    setup: Callable | None = None  # (api, user, ws, send) -> None, in order, before the events
    checkpoints: dict = field(default_factory=dict)  # in_order only: event index -> view subset
    compare_ledger: Callable = lambda entries: Counter((e["kind"], e["plan_delta"], e["topup_delta"]) for e in entries)
    until: datetime | None = None  # when the story is looked at (default: 5 minutes after its last event)

    @property
    def end(self) -> datetime:
        return self.until or max(e.at for e in self.events) + 5 * MINUTE


# --- reading the outcome ---------------------------------------------------------------------

def view(api, ws, user) -> dict:
    r = api.get(f"/v1/workspaces/{ws}/subscription", user)
    assert r.status_code == 200, r.body
    return r.json


def entries(api, ws, user) -> list[dict]:
    out, cursor = [], None
    while True:
        path = f"/v1/workspaces/{ws}/ledger?limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(path, user).json
        out += page["entries"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def summary(v: dict) -> dict:
    return {"plan": v["plan"]["id"], "interval": v["interval"], "status": v["status"], "balance": v["balance"],
            "cycle": v["cycle"], "renews_on": v["renews_on"], "ends_on": v["ends_on"],
            "pending_change": v["pending_change"]}


def mismatches(got: dict, want: dict) -> dict:
    return {k: (got.get(k), w) for k, w in want.items() if got.get(k) != w}


# --- playing a story -------------------------------------------------------------------------

def play(api, story: Story, variant: str, user: str, ws: str, problems: list[str]) -> None:
    def send(ev: Ev, at: datetime) -> None:
        clock.set_now(at)
        r = deliver(api, ev.event)
        assert r.status_code == 200, (variant, ev.event["type"], r.body)

    if story.setup:
        story.setup(api, user, ws, send)
    end = story.end
    if variant in ("in_order", "twice"):
        moment = T0
        for i, ev in enumerate(story.events):
            moment = max(moment, ev.at + MINUTE)
            for _ in range(2 if variant == "twice" else 1):
                send(ev, moment)
            if variant == "in_order" and i in story.checkpoints:
                bad = mismatches(summary(view(api, ws, user)), story.checkpoints[i])
                if bad:
                    problems.append(f"in_order, after event {i} ({ev.event['type']}): (got, want) {bad}")
        if variant == "twice":
            for ev in story.events:
                send(ev, end)
    else:
        for ev in (story.events if variant == "late" else list(reversed(story.events))):
            send(ev, end)
    clock.set_now(end)


def run(api, story_of: Callable[[Stripe, str, str], Story], stripe: Stripe) -> None:
    """Play the story in every variant, each on its own workspace, and check the outcomes."""
    users = {v: f"user_{v}" for v in VARIANTS}
    clock.set_now(T0)
    spaces = {v: api.workspace(users[v]) for v in VARIANTS}
    stories = {v: story_of(stripe, spaces[v], v) for v in VARIANTS}
    problems: list[str] = []
    outcome, ledgers = {}, {}
    for v in VARIANTS:
        play(api, stories[v], v, users[v], spaces[v], problems)
    for v in VARIANTS:
        clock.set_now(stories[v].end)
        outcome[v] = summary(view(api, spaces[v], users[v]))
        ledgers[v] = stories[v].compare_ledger(entries(api, spaces[v], users[v]))
    story = stories["in_order"]
    for v in VARIANTS:
        bad = mismatches(outcome[v], story.expect)
        if bad:
            problems.append(f"{v}: final view (got, want): {bad}")
    want = story.compare_ledger([_entry(*k) for k in story.ledger])
    if ledgers["in_order"] != want:
        problems.append(f"in_order ledger {_diff(ledgers['in_order'], want)} (vs expected)")
    if ledgers["twice"] != ledgers["in_order"]:
        problems.append(f"twice ledger {_diff(ledgers['twice'], ledgers['in_order'])} (vs in_order)")
    want_reversed = (story.compare_ledger([_entry(*k) for k in story.reversed_ledger])
                     if story.reversed_ledger is not None else ledgers["late"])
    if ledgers["reversed"] != want_reversed:
        problems.append(f"reversed ledger {_diff(ledgers['reversed'], want_reversed)} "
                        f"(vs {'documented' if story.reversed_ledger is not None else 'late'})")
    result = ledger.audit()
    if not result.clean:
        problems.append(f"audit: {result.problems}")
    assert not problems, f"[{stripe.shape}] " + "\n".join(problems) + "\nfinal views:\n" + "\n".join(
        f"  {v}: {json.dumps(outcome[v])}" for v in VARIANTS)


def _entry(kind: str, plan_delta: int, topup_delta: int, ref: dict | None = None) -> dict:
    return {"kind": kind, "plan_delta": plan_delta, "topup_delta": topup_delta, "ref": ref or {}}


def _diff(got: Counter, want: Counter) -> str:
    return f"extra {sorted((got - want).elements())}, missing {sorted((want - got).elements())}"


def free_view(balance_plan: int, topup: int, cycle: tuple[str, str]) -> dict:
    return {"plan": "free", "interval": None, "status": "active", "ends_on": None, "pending_change": None,
            "balance": {"available": balance_plan + topup, "plan": balance_plan, "topup": topup, "held": 0},
            "cycle": {"start": cycle[0], "end": cycle[1]}, "renews_on": cycle[1]}


def paid_view(plan: str, interval: str, balance_plan: int, cycle: tuple[str, str], status: str = "active",
              topup: int = 0, ends_on: str | None = None) -> dict:
    return {"plan": plan, "interval": interval, "status": status, "ends_on": ends_on, "pending_change": None,
            "balance": {"available": balance_plan + topup, "plan": balance_plan, "topup": topup, "held": 0},
            "cycle": {"start": cycle[0], "end": cycle[1]}, "renews_on": cycle[1]}


class Events:
    """Stripe events of one workspace and one subscription, in the shape under test."""

    def __init__(self, stripe: Stripe, ws: str, tag: str):
        self.s, self.ws, self.tag = stripe, ws, tag
        self.sub = f"sub_{tag}"
        self.n = 0

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.tag}_{self.n}"

    def checkout_subscription(self, at: datetime, plan: str) -> Ev:
        obj = self.s.checkout_subscription(self.ws, plan, self._id("cs"), self.sub)
        return Ev(at, self.s.event("checkout.session.completed", obj, created=ts(at)))

    def subscription(self, kind: str, at: datetime, price: str, start: datetime, end: datetime, **kw) -> Ev:
        obj = self.s.subscription(self.ws, self.sub, price, ts(start), ts(end), **kw)
        return Ev(at, self.s.event(f"customer.subscription.{kind}", obj, created=ts(at)))

    def invoice(self, type_: str, at: datetime, price: str, start: datetime, end: datetime, proration=False,
                reason="subscription_cycle") -> Ev:
        obj = self.s.invoice(self.ws, self.sub, price, ts(start), ts(end), self._id("in"), proration=proration,
                             reason=reason)
        if type_ == "invoice.payment_failed":
            obj.update(status="open", **({"paid": False} if self.s.shape == "old" else {}))
        return Ev(at, self.s.event(type_, obj, created=ts(at)))

    def paid(self, at, price, start, end, **kw) -> Ev:
        return self.invoice("invoice.paid", at, price, start, end, **kw)

    def topup(self, at: datetime, pack: str, pi: str, amount: int, paid=True, type_="checkout.session.completed",
              session: str | None = None) -> Ev:
        obj = self.s.checkout_topup(self.ws, pack, session or f"cs_{pi}", pi, amount, paid=paid)
        return Ev(at, self.s.event(type_, obj, created=ts(at)))

    def refund(self, at: datetime, pi: str, amount: int, refunded: int) -> Ev:
        return Ev(at, self.s.event("charge.refunded", self.s.refunded_charge(pi, amount, refunded, f"ch_{pi}"),
                                   created=ts(at)))

    def dispute(self, at: datetime, pi: str, amount: int) -> Ev:
        return Ev(at, self.s.event("charge.dispute.created", self.s.dispute(pi, amount, f"dp_{pi}"), created=ts(at)))


# The workspaces open at T0 (2027-01-31 09:00) on free: 50 credits, cycle Jan 31 -> Feb 28 09:00.
S = utc(2027, 2, 10, 10)  # a subscription start whose day never clamps
P1, P2, P3 = period(S, 0), period(S, 1), period(S, 2)
CREATOR_M, PRO_M, CREATOR_Y = "price_creator_month", "price_pro_month", "price_creator_year"
SUBSCRIBED = [("grant", 50, 0), ("expire", -50, 0)]  # the free cycle, expired by subscribing


def _subscribe(e: Events, price: str, plan: str, start: datetime = S, months: int = 1) -> list[Ev]:
    end = start + relativedelta(months=months)
    return [e.checkout_subscription(start, plan),
            e.subscription("created", start + timedelta(seconds=1), price, start, end),
            e.paid(start + timedelta(seconds=2), price, start, end, reason="subscription_create")]


# --- the scenarios ---------------------------------------------------------------------------

def subscribe_from_free(stripe, ws, tag) -> Story:
    e = Events(stripe, ws, tag)
    return Story(_subscribe(e, CREATOR_M, "creator"),
                 expect=paid_view("creator", "month", 500, ("2027-02-10", "2027-03-10")),
                 ledger=SUBSCRIBED + [("grant", 500, 0)])


def monthly_renewal(stripe, ws, tag) -> Story:
    """Subscribed on Jan 31 (the anchor day clamps: Feb 28, then Mar 31, as Stripe bills)."""
    e = Events(stripe, ws, tag)
    start = T0 + timedelta(hours=1)
    s2, e2 = period(start, 1)
    events = _subscribe(e, CREATOR_M, "creator", start) + [
        e.subscription("updated", s2, CREATOR_M, s2, e2),
        e.paid(s2 + timedelta(seconds=2), CREATOR_M, s2, e2),
    ]
    return Story(events, expect=paid_view("creator", "month", 500, ("2027-02-28", "2027-03-31")),
                 ledger=SUBSCRIBED + [("grant", 500, 0), ("expire", -500, 0), ("grant", 500, 0)])


def payment_failed_then_paid(stripe, ws, tag) -> Story:
    e = Events(stripe, ws, tag)
    s2, e2 = P2
    retried = s2 + timedelta(days=3)
    events = _subscribe(e, CREATOR_M, "creator") + [
        e.subscription("updated", s2, CREATOR_M, s2, e2),
        e.invoice("invoice.payment_failed", s2 + timedelta(hours=1), CREATOR_M, s2, e2),
        e.subscription("updated", s2 + timedelta(hours=1, seconds=1), CREATOR_M, s2, e2, status="past_due"),
        e.paid(retried, CREATOR_M, s2, e2),
        e.subscription("updated", retried + timedelta(seconds=1), CREATOR_M, s2, e2),
    ]
    return Story(events, expect=paid_view("creator", "month", 500, ("2027-03-10", "2027-04-10")),
                 ledger=SUBSCRIBED + [("grant", 500, 0), ("expire", -500, 0), ("grant", 500, 0)],
                 checkpoints={5: {"status": "past_due", "balance": {"available": 0, "plan": 0, "topup": 0, "held": 0}}})


def upgrade_then_renewal(stripe, ws, tag) -> Story:
    """Creator -> pro on Feb 24 (same period, prorated); the renewal on Mar 10 grants 2000."""
    e = Events(stripe, ws, tag)
    up = utc(2027, 2, 24, 15)
    (s1, e1), (s2, e2) = P1, P2
    events = _subscribe(e, CREATOR_M, "creator") + [
        e.subscription("updated", up, PRO_M, s1, e1),
        e.paid(up + timedelta(seconds=2), PRO_M, up, e1, proration=True, reason="subscription_update"),
        e.subscription("updated", s2, PRO_M, s2, e2),
        e.paid(s2 + timedelta(seconds=2), PRO_M, s2, e2),
    ]
    return Story(events, expect=paid_view("pro", "month", 2000, ("2027-03-10", "2027-04-10")),
                 ledger=SUBSCRIBED + [("grant", 500, 0), ("expire", -500, 0), ("grant", 2000, 0)],
                 checkpoints={4: {"plan": "pro", "balance": {"available": 500, "plan": 500, "topup": 0, "held": 0},
                                  "cycle": {"start": "2027-02-10", "end": "2027-03-10"}}})


def upgrade_mid_cycle(stripe, ws, tag) -> Story:
    """The same upgrade, the story ending before the renewal: pro from now, creator's 500 in hand."""
    e = Events(stripe, ws, tag)
    up = utc(2027, 2, 24, 15)
    s1, e1 = P1
    events = _subscribe(e, CREATOR_M, "creator") + [
        e.subscription("updated", up, PRO_M, s1, e1),
        e.paid(up + timedelta(seconds=2), PRO_M, up, e1, proration=True, reason="subscription_update"),
    ]
    return Story(events, expect=paid_view("pro", "month", 500, ("2027-02-10", "2027-03-10")),
                 ledger=SUBSCRIBED + [("grant", 500, 0)])


def downgrade_at_period_end(stripe, ws, tag) -> Story:
    """Pro -> creator, scheduled in the portal for the period end: Stripe reports it at Mar 10."""
    e = Events(stripe, ws, tag)
    s2, e2 = P2
    events = _subscribe(e, PRO_M, "pro") + [
        e.subscription("updated", s2, CREATOR_M, s2, e2),
        e.paid(s2 + timedelta(seconds=2), CREATOR_M, s2, e2),
    ]
    return Story(events, expect=paid_view("creator", "month", 500, ("2027-03-10", "2027-04-10")),
                 ledger=SUBSCRIBED + [("grant", 2000, 0), ("expire", -2000, 0), ("grant", 500, 0)])


def annual_to_monthly(stripe, ws, tag) -> Story:
    """Creator yearly from Feb 10 2027 (12 monthly grants), monthly from the end of the paid year."""
    e = Events(stripe, ws, tag)
    year_end = S + relativedelta(years=1)
    m_end = year_end + relativedelta(months=1)
    events = _subscribe(e, CREATOR_Y, "creator", months=12) + [
        e.subscription("updated", year_end, CREATOR_M, year_end, m_end),
        e.paid(year_end + timedelta(seconds=2), CREATOR_M, year_end, m_end),
    ]
    return Story(events, expect=paid_view("creator", "month", 500, ("2028-02-10", "2028-03-10")),
                 ledger=SUBSCRIBED + [("grant", 500, 0)] * 13 + [("expire", -500, 0)] * 12)


def annual_upgrade_then_monthly_cycle(stripe, ws, tag) -> Story:
    """Creator yearly from Feb 10, upgraded to pro yearly on Apr 20 (prorated, same year); the
    year's next monthly cycle (May 10) grants pro's 2000, as the renewal after an upgrade does."""
    e = Events(stripe, ws, tag)
    up = utc(2027, 4, 20, 15)
    year_end = S + relativedelta(years=1)
    events = _subscribe(e, CREATOR_Y, "creator", months=12) + [
        e.subscription("updated", up, "price_pro_year", S, year_end),
        e.paid(up + timedelta(seconds=2), "price_pro_year", up, year_end, proration=True,
               reason="subscription_update"),
    ]
    return Story(events, until=utc(2027, 5, 11, 12),
                 expect=paid_view("pro", "year", 2000, ("2027-05-10", "2027-06-10")),
                 ledger=SUBSCRIBED + [("grant", 500, 0)] * 3 + [("expire", -500, 0)] * 3 + [("grant", 2000, 0)],
                 compare_ledger=_totals_by_kind)


def _totals_by_kind(entries: list[dict]) -> Counter:
    """Delivered live, May's cycle is granted creator's 500 at renewal and topped up by 1500 when
    the upgrade (made before the cycle began) is reported; delivered late, it is granted pro's
    2000 at once. The same credits, in one entry or two."""
    out: Counter = Counter()
    for e in entries:
        out[e["kind"]] += e["plan_delta"] + e["topup_delta"]
    return out


def cancel_at_period_end(stripe, ws, tag) -> Story:
    e = Events(stripe, ws, tag)
    (s1, e1) = P1
    events = _subscribe(e, CREATOR_M, "creator") + [
        e.topup(utc(2027, 2, 15, 12), "pack_1000", f"pi_{tag}_keep", 1200),
        e.subscription("updated", utc(2027, 2, 20, 12), CREATOR_M, s1, e1, cancel_at_period_end=True, cancel_at=ts(e1)),
        e.subscription("deleted", e1, CREATOR_M, s1, e1, status="canceled", cancel_at_period_end=True,
                       cancel_at=ts(e1), ended_at=ts(e1)),
    ]
    return Story(events, expect=free_view(50, 1000, ("2027-03-10", "2027-04-10")),
                 ledger=SUBSCRIBED + [("grant", 500, 0), ("topup", 0, 1000), ("expire", -500, 0), ("grant", 50, 0)],
                 checkpoints={4: {"plan": "creator", "status": "ending", "ends_on": "2027-03-10",
                                  "balance": {"available": 1500, "plan": 500, "topup": 1000, "held": 0}}})


def cancel_now(stripe, ws, tag) -> Story:
    """Cancelled on Feb 20: free from that day; Stripe refunds the unused time as money (a
    charge.refunded of the invoice's payment, no top-up of ours: no credits move)."""
    e = Events(stripe, ws, tag)
    s1, e1 = P1
    now = utc(2027, 2, 20, 12)
    events = _subscribe(e, CREATOR_M, "creator") + [
        e.subscription("deleted", now, CREATOR_M, s1, e1, status="canceled", ended_at=ts(now)),
        e.refund(now + timedelta(seconds=10), f"pi_{tag}_invoice", 1200, 700),
    ]
    # Reversed, `deleted` arrives before `created` and the first invoice: the service ends the
    # subscription before it ever started (the wallet goes from free to free at Feb 20, marking the
    # subscription ended) and then ignores its created event and its invoice. Stripe never sends
    # them in that order live, and the outcome is the one that matters: the same plan, cycle and
    # balances; only the paid cycle's grant and its expiry at the cancellation are absent from
    # the history, a grant that would have expired by the cancel anyway.
    return Story(events, expect=free_view(50, 0, ("2027-02-20", "2027-03-20")),
                 ledger=SUBSCRIBED + [("grant", 500, 0), ("expire", -500, 0), ("grant", 50, 0)],
                 reversed_ledger=SUBSCRIBED + [("grant", 50, 0)])


def topup_async(stripe, ws, tag) -> Story:
    e = Events(stripe, ws, tag)
    pi = f"pi_{tag}_async"
    events = [e.topup(utc(2027, 2, 1, 12), "pack_5000", pi, 5000, paid=False),
              e.topup(utc(2027, 2, 3, 12), "pack_5000", pi, 5000, type_="checkout.session.async_payment_succeeded")]
    return Story(events, expect=free_view(50, 5000, ("2027-01-31", "2027-02-28")),
                 ledger=[("grant", 50, 0), ("topup", 0, 5000)])


def refunds_and_dispute(stripe, ws, tag) -> Story:
    """Pack A refunded half, then in full (Stripe's amount_refunded is cumulative); pack B disputed."""
    e = Events(stripe, ws, tag)
    a, b = f"pi_{tag}_a", f"pi_{tag}_b"
    events = [e.topup(utc(2027, 2, 1, 12), "pack_1000", a, 1200),
              e.topup(utc(2027, 2, 1, 13), "pack_5000", b, 5000),
              e.refund(utc(2027, 2, 3, 12), a, 1200, 600),
              e.refund(utc(2027, 2, 5, 12), a, 1200, 1200),
              e.dispute(utc(2027, 2, 6, 12), b, 5000)]
    return Story(events, expect=free_view(50, 0, ("2027-01-31", "2027-02-28")),
                 ledger=[("grant", 50, 0), ("topup", 0, 1000), ("topup", 0, 5000), ("refund", 0, -500),
                         ("refund", 0, -500), ("refund", 0, -5000)],
                 compare_ledger=_refund_totals)


def _refund_totals(entries: list[dict]) -> Counter:
    """Refunds compared by what they took in total: a refund reported before its top-up is taken
    back when the top-up arrives, at its cumulative amount, in one entry instead of two."""
    out = Counter((e["kind"], e["plan_delta"], e["topup_delta"]) for e in entries if e["kind"] != "refund")
    out[("refund total", sum(e["topup_delta"] for e in entries if e["kind"] == "refund"), 0)] += 1
    return out


def _shortfall_ledger(entries: list[dict]) -> Counter:
    """Refunds compared by what they took and, in total, by what they could not take: in order,
    the second refund finds nothing left and writes a zero entry carrying its shortfall; reversed,
    the full refund comes first and one entry carries the whole shortfall. The ledger says the same
    thing either way (850 credits could not come back), in one entry or two."""
    out = Counter((e["kind"], e["plan_delta"], e["topup_delta"]) for e in entries
                  if (e["plan_delta"], e["topup_delta"]) != (0, 0))
    out[("shortfall", sum(int(e["ref"].get("shortfall", 0)) for e in entries if e["kind"] == "refund"), 0)] += 1
    return out


def refund_beyond_remaining(stripe, ws, tag) -> Story:
    """A pack of 1000, of which 850 spent (with the 50 free credits): half, then all refunded."""
    e = Events(stripe, ws, tag)
    pi = f"pi_{tag}_spent"
    bought = e.topup(utc(2027, 2, 1, 12), "pack_1000", pi, 1200)

    def setup(api, user, ws_, send):
        send(bought, bought.at + MINUTE)
        for i in range(9):  # avatars at 100: 50 plan + 850 top-up
            r = api.charge(ws_, user, "avatar", key=f"spend-{i}")
            assert r.status_code == 201, r.body

    events = [e.refund(utc(2027, 2, 3, 12), pi, 1200, 600), e.refund(utc(2027, 2, 5, 12), pi, 1200, 1200)]
    return Story(events, setup=setup, expect=free_view(0, 0, ("2027-01-31", "2027-02-28")),
                 ledger=[("grant", 50, 0), ("topup", 0, 1000), ("charge", -50, -50)] + [("charge", 0, -100)] * 8
                 + [("refund", 0, -150, {"shortfall": 350}), ("refund", 0, 0, {"shortfall": 500})],
                 compare_ledger=_shortfall_ledger)


SCENARIOS = [subscribe_from_free, monthly_renewal, payment_failed_then_paid, upgrade_then_renewal,
             upgrade_mid_cycle, downgrade_at_period_end, annual_to_monthly, annual_upgrade_then_monthly_cycle, cancel_at_period_end, cancel_now,
             topup_async, refunds_and_dispute, refund_beyond_remaining]


@pytest.fixture(autouse=True)
def _moto_forgets_instances():
    """moto keeps every model instance it made (for its dashboard) while the package's mock runs;
    these tests make many, and every garbage collection would crawl over them afterwards."""
    yield
    from moto.core.model_instances import reset_model_data

    reset_model_data()


@pytest.fixture(params=["new", "old"])
def stripe(request):
    return Stripe(request.param)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_any_order_same_outcome(api, stripe, scenario):
    run(api, scenario, stripe)
