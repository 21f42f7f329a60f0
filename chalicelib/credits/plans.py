"""Plan changes and payments, in the wallet's terms. Billing (Stripe) calls these; nothing here
knows Stripe. Each is one transaction conditioned on the wallet as read, retried on a race, and
keyed so that calling it again has no further effect."""
from __future__ import annotations

from datetime import datetime

from ..catalog import catalog
from ..errors import InvalidRequest, Unavailable
from . import rules
from .actors import SYSTEM_ACTOR, Actor
from .models import Entry, Wallet
from .store import Cancelled, Put, Update, transact, wallet_key
from .wallets import _cycle_ref, credits_for_cycle, load, _shard

ATTEMPTS = 5


def _pinned(w: Wallet):
    return (Wallet.last == w.last) & (Wallet.plan == int(w.plan)) & (Wallet.cycle_start == int(w.cycle_start))


def start_plan(workspace_id: str, plan_id: str, interval: str | None, start: datetime, now: datetime,
               *, status: str = "active", actor: Actor = SYSTEM_ACTOR) -> bool:
    """Move the wallet onto a plan whose cycles count from `start`: the plan credits left of the
    current cycle expire, and the new plan's first cycle grants once it is paid (free: at once).
    Returns False if the wallet was already on this plan from this start."""
    plan = catalog().plan(plan_id)
    for _ in range(ATTEMPTS):
        w = load(workspace_id, now)
        if not plan.allows(w.kind):
            raise InvalidRequest(f"The {plan.name} plan is for {plan.workspace_kind} workspaces.")
        if w.plan_id == plan.id and int(w.anchor) == int(start.timestamp()):
            return False
        first_end = rules.cycle_at(start, max(start, now))[1] if plan.id == "free" else rules.cycle_at(start, start)[1]
        first_start = rules.cycle_at(start, max(start, now))[0] if plan.id == "free" else start
        seq, ops = w.last, []
        old = rules.as_utc(w.cycle_start), rules.as_utc(w.cycle_end)
        if int(w.plan):
            seq = rules.next_seq(now, seq)
            ops.append(Put(Entry(workspace_id, f"expire#{rules.iso(old[0])}", seq=seq, kind="expire",
                                 plan_delta=-int(w.plan), ref={**_cycle_ref(*old, w.plan_id), "reason": "plan_change"},
                                 actor=actor.label), Entry.sk.does_not_exist()))
        granted = plan.credits_per_cycle if plan.id == "free" else 0
        if granted:
            seq = rules.next_seq(now, seq)
            ops.append(Put(Entry(workspace_id, f"grant#{rules.iso(first_start)}", seq=seq, kind="grant",
                                 plan_delta=granted, ref=_cycle_ref(first_start, first_end, plan.id),
                                 actor=actor.label), Entry.sk.does_not_exist()))
        actions = [
            Wallet.plan.set(granted), Wallet.last.set(seq), Wallet.plan_id.set(plan.id),
            Wallet.interval.set(interval) if interval else Wallet.interval.remove(),
            Wallet.status.set(status), Wallet.anchor.set(int(start.timestamp())),
            Wallet.cycle_start.set(int(first_start.timestamp())), Wallet.cycle_end.set(int(first_end.timestamp())),
            Wallet.paid_until.remove(), Wallet.renew_shard.set(_shard(workspace_id)),
            Wallet.renews_at.set(int(first_end.timestamp())),
            *[Wallet.holds[hid]["e"].set(1) for hid in w.open_holds()],
        ]
        try:
            transact([*ops, Update(wallet_key(workspace_id), actions, _pinned(w))])
            return True
        except Cancelled:
            continue
    raise Unavailable("The wallet is busy; retry.", retry_after=1)


def mark_paid(workspace_id: str, paid_through: datetime, now: datetime) -> int:
    """Billing reports the plan paid through `paid_through` (a period's end). Every cycle that ends
    by then is paid for; the current one is granted now if it was not yet. Returns the credits
    granted by this call (0 when the cycle was granted already, or is not yet current)."""
    until = int(paid_through.timestamp())
    for _ in range(ATTEMPTS):
        w = load(workspace_id, now)
        new_until = max(int(w.paid_until or 0), until)
        start, end = rules.as_utc(w.cycle_start), rules.as_utc(w.cycle_end)
        w.paid_until = new_until
        granted = credits_for_cycle(w, start, end)
        actions = [Wallet.paid_until.set(new_until)]
        if int(w.cycle_end) <= new_until and w.status == "past_due":
            actions.append(Wallet.status.set("active"))
        ops = []
        if granted:
            seq = rules.next_seq(now, w.last)
            ops.append(Put(Entry(workspace_id, f"grant#{rules.iso(start)}", seq=seq, kind="grant",
                                 plan_delta=granted, ref=_cycle_ref(start, end, w.plan_id), actor=SYSTEM_ACTOR.label),
                           Entry.sk.does_not_exist()))
            actions += [Wallet.plan.add(granted), Wallet.last.set(seq)]
        try:
            transact([*ops, Update(wallet_key(workspace_id), actions, _pinned(w))])
            return granted
        except Cancelled as c:
            if ops and 0 in c.failed:  # this cycle was granted before: only record the payment
                transact([Update(wallet_key(workspace_id), [Wallet.paid_until.set(new_until)],
                                 Wallet.cycle_start == int(w.cycle_start))])
                return 0
            continue
    raise Unavailable("The wallet is busy; retry.", retry_after=1)
