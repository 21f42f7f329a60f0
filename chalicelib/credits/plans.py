"""Plan changes and payments, in the wallet's terms. Billing (Stripe) calls these; nothing here
knows Stripe. Each is one transaction conditioned on the wallet as read, retried on a race, and
keyed so that calling it again has no further effect."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..catalog import catalog
from ..errors import InvalidRequest, Unavailable
from . import rules
from .actors import SYSTEM_ACTOR, Actor
from .models import Entry, SubscriptionLink, Wallet, plain
from .store import Cancelled, Put, Update, get_link, transact, wallet_key
from .wallets import _cycle_ref, _shard, caps_for_new_cycle, credits_for_cycle, cycle_key, load

ATTEMPTS = 5


def ended(w: Wallet, sub_id: str) -> bool:
    """A subscription that ended stays ended: any event of it, however late, changes nothing
    (not only the last one that ended: a redelivered invoice of an older one would restart it)."""
    return sub_id == w.sub_ended or sub_id in (w.subs_ended or set())


def superseded(w: Wallet, sub: "Subscription") -> bool:
    """Another subscription is current and this one's period began before it did: a workspace has
    one subscription at a time, so this is an older one, ended, whose events Stripe delivers
    late (its deletion maybe not yet). They change nothing: the current plan stays."""
    return w.sub_id not in (None, sub.id) and int(sub.period_start.timestamp()) < int(w.anchor)


def _pinned(w: Wallet):
    return (Wallet.last == w.last) & (Wallet.plan == int(w.plan)) & (Wallet.cycle_start == int(w.cycle_start))


def start_plan(workspace_id: str, plan_id: str, interval: str | None, start: datetime, now: datetime,
               *, status: str = "active", actor: Actor = SYSTEM_ACTOR, sub_id: str | None = None,
               extra: list | None = None, anchor: datetime | None = None,
               period_end: datetime | None = None, wallet: Wallet | None = None,
               ends_at: datetime | None = None) -> bool:
    """Move the wallet onto a plan whose cycles count from `start`: the plan credits left of the
    current cycle expire, and the new plan's first cycle grants once it is paid (free: at once).
    Returns False if the wallet was already on this plan from this start."""
    plan = catalog().plan(plan_id)
    for _ in range(ATTEMPTS):
        w, wallet = wallet or load(workspace_id, now), None  # the caller's read serves the first try
        if not plan.allows(w.kind):
            raise InvalidRequest(f"The {plan.name} plan is for {plan.workspace_kind} workspaces.")
        if anchor is None or anchor > start:
            # A monthly period names its anchor's day (Feb 28 -> Mar 31: the 31st).
            anchor = rules.anchor_of_period(start, period_end) if period_end and interval == "month" else start
        if w.plan_id == plan.id and int(w.anchor) == int(anchor.timestamp()) and w.sub_id == sub_id:
            return False
        first_start, first_end = rules.cycle_at(anchor, max(start, now) if plan.id == "free" else start)
        seq, ops = w.last, []
        old = rules.as_utc(w.cycle_start), rules.as_utc(w.cycle_end)
        if int(w.plan):
            seq = rules.next_seq(now, seq)
            ops.append(Put(Entry(workspace_id, cycle_key("expire", w.epoch or 0, old[0]), seq=seq, kind="expire",
                                 plan_delta=-int(w.plan), ref={**_cycle_ref(*old, w.plan_id), "reason": "plan_change"},
                                 actor=actor.label), Entry.sk.does_not_exist()))
        granted = plan.credits_per_cycle if plan.id == "free" else 0
        if granted:
            seq = rules.next_seq(now, seq)
            ops.append(Put(Entry(workspace_id, cycle_key("grant", (w.epoch or 0) + 1, first_start), seq=seq, kind="grant",
                                 plan_delta=granted, ref=_cycle_ref(first_start, first_end, plan.id),
                                 actor=actor.label), Entry.sk.does_not_exist()))
        actions = [
            Wallet.plan.set(granted), Wallet.last.set(seq), Wallet.plan_id.set(plan.id),
            Wallet.epoch.set((w.epoch or 0) + 1),
            Wallet.interval.set(interval) if interval else Wallet.interval.remove(),
            Wallet.status.set(status), Wallet.anchor.set(int(anchor.timestamp())),
            Wallet.cycle_start.set(int(first_start.timestamp())), Wallet.cycle_end.set(int(first_end.timestamp())),
            Wallet.paid_until.remove(), Wallet.renew_shard.set(_shard(workspace_id)),
            Wallet.sub_id.set(sub_id) if sub_id else Wallet.sub_id.remove(),
            Wallet.ends_at.set(int(ends_at.timestamp())) if ends_at else Wallet.ends_at.remove(),
            Wallet.pending.remove(), Wallet.room.set(caps_for_new_cycle(w)),
            *(extra or []),
            Wallet.renews_at.set(int(first_end.timestamp())),
            *[Wallet.holds[hid]["e"].set(1) for hid in w.open_holds()],
        ]
        if sub_id:  # so a schedule's events, which name only the subscription, find the wallet
            ops.append(Put(SubscriptionLink(f"sub#{sub_id}", "link", workspace_id=workspace_id)))
        try:
            transact([*ops, Update(wallet_key(workspace_id), actions, _pinned(w))])
            return True
        except Cancelled:
            continue
    raise Unavailable("The wallet is busy; retry.", retry_after=1)


def mark_paid(workspace_id: str, paid_through: datetime, now: datetime, *, plan_id: str | None = None,
              grant: bool = True, wallet: Wallet | None = None) -> int:
    """Billing reports the plan paid through `paid_through` (a period's end). Every cycle that ends
    by then is paid for; the current one is granted now if it was not yet. Returns the credits
    granted by this call (0 when the cycle was granted already, or is not yet current)."""
    until = int(paid_through.timestamp())
    if not grant:
        return 0  # a proration pays part of a period whose own invoice records it
    for _ in range(ATTEMPTS):
        w, wallet = wallet or load(workspace_id, now), None
        if w.paid_until and int(w.paid_until) >= max(until, int(w.cycle_end)) and w.status != "past_due":
            return 0  # recorded already; a cycle paid through its end has had its grant
        new_until = max(int(w.paid_until or 0), until)
        start, end = rules.as_utc(w.cycle_start), rules.as_utc(w.cycle_end)
        w.paid_until = new_until
        seen_at = int((w.sub_seen or "0:").split(":")[0] or 0)
        if plan_id and seen_at > int(w.cycle_start):
            # The plan this payment is for, unless the wallet knows a plan change from before this
            # cycle began (an upgrade earlier in an annual year grants from the next cycle on).
            w.plan_id = plan_id
        granted = credits_for_cycle(w, start, end) if grant else 0
        actions = [Wallet.paid_until.set(new_until)]
        if int(w.cycle_end) <= new_until and w.status == "past_due":
            actions.append(Wallet.status.set("active"))
        ops = []
        if granted:
            seq = rules.next_seq(now, w.last)
            ops.append(Put(Entry(workspace_id, cycle_key("grant", w.epoch or 0, start), seq=seq, kind="grant",
                                 plan_delta=granted, ref=_cycle_ref(start, end, w.plan_id), actor=SYSTEM_ACTOR.label),
                           Entry.sk.does_not_exist()))
            actions += [Wallet.plan.add(granted), Wallet.last.set(seq)]
        try:
            transact([*ops, Update(wallet_key(workspace_id), actions, _pinned(w))])
            from ..observe import count

            count("CreditsGranted", granted, source="payment")
            return granted
        except Cancelled as c:
            if ops and 0 in c.failed:  # this cycle was granted before: only record the payment
                record = [Wallet.paid_until.set(new_until)]
                if int(w.cycle_end) <= new_until:
                    record.append(Wallet.status.set("active"))
                try:
                    transact([Update(wallet_key(workspace_id), record, Wallet.cycle_start == int(w.cycle_start))])
                except Cancelled:
                    continue  # the cycle moved on meanwhile: look again
                return 0
            continue
    raise Unavailable("The wallet is busy; retry.", retry_after=1)


@dataclass(frozen=True)
class Subscription:
    """A paid subscription's state as billing reports it, in the wallet's terms."""

    id: str
    plan_id: str
    interval: str
    period_start: datetime
    period_end: datetime
    status: str  # active | past_due | canceled | incomplete
    ends_at: datetime | None = None  # set when cancelled at period end
    customer_id: str | None = None
    seen: str = ""  # orders states of one subscription: "created:event id"
    anchor: datetime | None = None  # Stripe's billing anchor: periods keep its day
    changed_at: datetime | None = None  # when Stripe made this state (the event's time)


def follow(workspace_id: str, sub: Subscription, now: datetime) -> str:
    """Bring the wallet in line with a subscription state; safe in any order and any number of
    times. Returns what it did (for logs and tests)."""
    for _ in range(ATTEMPTS):
        w = load(workspace_id, now)
        if ended(w, sub.id):
            return "ignored: subscription already ended"
        if w.sub_id == sub.id and w.sub_seen and sub.seen and sub.seen <= w.sub_seen:
            return "ignored: older than the state applied"
        if sub.status in ("canceled", "incomplete_expired"):
            if w.sub_id not in (None, sub.id) or (w.sub_id is None and w.plan_id == "enterprise"):
                # Still remembered as ended, so that its late invoices cannot restart it. (An
                # enterprise contract has no subscription: an old one's end leaves it as it is.)
                transact([Update(wallet_key(workspace_id), [Wallet.subs_ended.add({sub.id})], Wallet.pk.exists())])
                return "ignored: another subscription is current"
            start_plan(workspace_id, "free", None, sub.ends_at or now, now,
                       extra=[Wallet.sub_ended.set(sub.id), Wallet.subs_ended.add({sub.id})], wallet=w)
            return "ended: back to free"
        if sub.status == "incomplete":
            return "ignored: not paid yet"
        if superseded(w, sub):
            return "ignored: an older subscription than the current one"
        if w.sub_id != sub.id or w.plan_id == "free":
            # The plan starts and takes the rest of this state in the same write.
            state = [*([Wallet.sub_seen.set(sub.seen)] if sub.seen else []),
                     *([Wallet.customer_id.set(sub.customer_id)] if sub.customer_id else [])]
            if start_plan(workspace_id, sub.plan_id, sub.interval, sub.period_start, now, sub_id=sub.id,
                          anchor=sub.anchor, period_end=sub.period_end, wallet=w, extra=state,
                          status="past_due" if sub.status in ("past_due", "unpaid") else "active",
                          ends_at=sub.ends_at):
                return "applied"
            continue
        ops: list = []
        actions = [
            Wallet.status.set("past_due" if sub.status in ("past_due", "unpaid") else "active"),
            Wallet.ends_at.set(int(sub.ends_at.timestamp())) if sub.ends_at else Wallet.ends_at.remove(),
        ]
        if sub.seen:
            actions.append(Wallet.sub_seen.set(sub.seen))
        if sub.customer_id:
            actions.append(Wallet.customer_id.set(sub.customer_id))
        anchor = sub.anchor or (rules.anchor_of_period(sub.period_start, sub.period_end)
                                if sub.interval == "month" else None)
        if anchor and int(anchor.timestamp()) != int(w.anchor) and anchor <= rules.as_utc(w.cycle_start) \
                and rules.cycle_at(anchor, rules.as_utc(w.cycle_start))[0] == rules.as_utc(w.cycle_start):
            # Seen first through a later period: take Stripe's anchor, so periods keep its day
            # (Jan 31 -> Feb 28 -> Mar 31). The current cycle keeps its start, an anniversary of both.
            start, end = rules.cycle_at(anchor, rules.as_utc(w.cycle_start))
            actions += [Wallet.anchor.set(int(anchor.timestamp())), Wallet.cycle_start.set(int(start.timestamp())),
                        Wallet.cycle_end.set(int(end.timestamp())), Wallet.renews_at.set(int(end.timestamp()))]
        if (w.plan_id, w.interval) != (sub.plan_id, sub.interval):
            # An upgrade bills now and grants from the next renewal; a downgrade reaches here at
            # the period end it was scheduled for. Either way the credits in hand stay.
            actions += [Wallet.plan_id.set(sub.plan_id), Wallet.interval.set(sub.interval)]
            pending = plain(w.pending) if w.pending is not None else {}
            if pending.get("plan") == sub.plan_id and pending.get("interval") == sub.interval:
                actions.append(Wallet.pending.remove())
            ops, more = _regrant(w, sub, now)
            actions += more
        # The link again (one more item, no more requests): subscriptions that began before links
        # existed get theirs with their next event.
        ops.append(Put(SubscriptionLink(f"sub#{sub.id}", "link", workspace_id=workspace_id)))
        try:
            transact([*ops, Update(wallet_key(workspace_id), actions, (Wallet.sub_id == sub.id) & _pinned(w))])
            return "applied"
        except Cancelled:
            continue
    raise Unavailable("The wallet is busy; retry.", retry_after=1)


def _regrant(w: Wallet, sub: Subscription, now: datetime) -> tuple[list, list]:
    """A plan change Stripe made before the current cycle began, reported after the cycle was
    granted with the old plan: the cycle gets the difference (a grant, or an expiry of the
    excess, never below zero), keyed by cycle and plan so it happens once."""
    if sub.changed_at is None or sub.changed_at >= rules.as_utc(w.cycle_start):
        return [], []
    start, end = rules.as_utc(w.cycle_start), rules.as_utc(w.cycle_end)
    old = credits_for_cycle(w, start, end)
    if not old:
        return [], []  # the cycle was not granted (unpaid): it will be, with the plan it has then
    new_plan = catalog().plan(sub.plan_id)
    new = int(w.contract_credits or 0) if new_plan.contract else int(new_plan.credits_per_cycle or 0)
    delta = new - old if new >= old else -min(old - new, int(w.plan))
    if not delta:
        return [], []
    seq = rules.next_seq(now, w.last)
    kind = "grant" if delta > 0 else "expire"
    entry = Entry(w.pk, f"{cycle_key(kind, w.epoch or 0, start)}#{sub.plan_id}", seq=seq, kind=kind, plan_delta=delta,
                  ref={**_cycle_ref(start, end, sub.plan_id), "reason": "plan_change"}, actor=SYSTEM_ACTOR.label)
    return [Put(entry, Entry.sk.does_not_exist())], [Wallet.plan.add(delta), Wallet.last.set(seq)]


def pay(workspace_id: str, sub: Subscription, now: datetime, may_start: bool = True) -> int:
    """An invoice of the subscription was paid for a period: follow the subscription if the
    wallet has not yet (invoices may come first), then mark the period paid."""
    w = load(workspace_id, now)
    switched = False
    if ended(w, sub.id) or superseded(w, sub):
        return 0
    if w.sub_id != sub.id or w.plan_id == "free":
        switched = True
        if not may_start:
            return 0
        start_plan(workspace_id, sub.plan_id, sub.interval, sub.period_start, now, sub_id=sub.id,
                   period_end=sub.period_end, wallet=w)
    elif (w.plan_id, w.interval) != (sub.plan_id, sub.interval) and int(sub.period_start.timestamp()) >= int(w.cycle_start) \
            and int((w.sub_seen or "0:").split(":")[0] or 0) < int(sub.period_start.timestamp()):
        # The invoice of a new period pays for the plan of that period (a downgrade taking effect,
        # reported before the subscription update arrives) unless a newer state of the
        # subscription is known (an upgrade after the period began).
        switched = True
        follow(workspace_id, sub, now)
    # A proration invoice pays an upgrade's difference: it grants nothing (the period's own
    # invoice grants the plan it paid for; the upgrade's credits come with the next cycle).
    unchanged = w if w.sub_id == sub.id and w.plan_id != "free" and not switched else None
    return mark_paid(workspace_id, sub.period_end, now, plan_id=sub.plan_id, grant=may_start, wallet=unchanged)


def follow_schedule(sub_id: str, change: tuple[str, str, int] | None, seen: str, now: datetime) -> str:
    """The pending change of a subscription, as its schedule says (plan, interval, effective at),
    or none. Schedule states apply in the order Stripe made them (`seen`), whatever the order of
    delivery; a change made through the API counts as seen when it was made."""
    link = get_link(sub_id)
    if link is None:
        return "ignored: not a subscription of ours"
    pending = {"plan": change[0], "interval": change[1], "effective_at": change[2]} if change else None
    actions = [Wallet.pending.set(pending) if pending else Wallet.pending.remove(), Wallet.schedule_seen.set(seen)]
    newer = Wallet.schedule_seen.does_not_exist() | (Wallet.schedule_seen < seen)
    try:
        transact([Update(wallet_key(link.workspace_id), actions, (Wallet.sub_id == sub_id) & newer)])
    except Cancelled as c:
        w = Wallet.from_raw_data(c.failed[0]) if c.failed.get(0) else None
        if w is None:
            return "ignored: no such workspace"
        return "ignored: not the current subscription" if w.sub_id != sub_id else "ignored: older than what is applied"
    return f"pending {change[0]} {change[1]}" if change else "no pending change"


def payment_failed(workspace_id: str, sub_id: str, period_end: datetime, now: datetime) -> str:
    """A payment for a period failed: past_due, unless that period is paid already (a late
    failure event of an invoice paid on retry changes nothing)."""
    w = load(workspace_id, now)
    if w.sub_id != sub_id:
        return "ignored: not the current subscription"
    end = int(period_end.timestamp())
    try:
        transact([Update(wallet_key(workspace_id), [Wallet.status.set("past_due")],
                         (Wallet.sub_id == sub_id) & (Wallet.paid_until.does_not_exist() | (Wallet.paid_until < end)))])
    except Cancelled:
        return "ignored: that period is paid"
    return "past_due"


def set_contract(workspace_id: str, credits: int, paid_through: datetime, now: datetime) -> dict:
    """Enterprise, by an operator: a team workspace on a contracted number of credits per cycle,
    paid through a date (billed by Stripe as one customer, outside this service). A workspace
    already on the contract keeps its cycle; the new number applies from its next cycle."""
    if credits < 0:
        raise InvalidRequest("credits must not be negative.")
    w = load(workspace_id, now)
    if w.plan_id != "enterprise":
        # The subscription it leaves has ended for the wallet: its late events must not restart it.
        ended_sub = [Wallet.subs_ended.add({w.sub_id})] if w.sub_id else []
        start_plan(workspace_id, "enterprise", "month", now, now, extra=[Wallet.contract_credits.set(credits), *ended_sub])
    else:
        transact([Update(wallet_key(workspace_id), [Wallet.contract_credits.set(credits)],
                         Wallet.plan_id == "enterprise")])
    granted = mark_paid(workspace_id, paid_through, now)
    return {"workspace_id": workspace_id, "credits_per_cycle": credits, "granted_now": granted}
