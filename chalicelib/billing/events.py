"""One small handler per Stripe event type: read the payload (payloads.py), turn it into a call
on credits. Every handler is idempotent and order-tolerant, because Stripe delivers at least once,
in any order: effects are keyed by the Stripe object they come from."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from ..catalog import Pack, catalog
from ..credits import plans, rules, topups
from . import payloads

Handler = Callable[[dict, datetime], str]


def _moment(ts: int | None, default: datetime) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc) if ts else default


def _plan_of(price_id: str | None) -> tuple[str, str] | None:
    found = catalog().by_price_id(price_id) if price_id else None
    if found is None or isinstance(found, Pack):
        return None
    plan, interval = found
    return plan.id, interval


def checkout_completed(event: dict, now: datetime) -> str:
    """Top-ups are credited when paid: at completion, or at async_payment_succeeded for delayed
    methods. Either way once per checkout session (the ledger entry is keyed by it)."""
    s = payloads.checkout_session(event["data"]["object"])
    if s.mode != "payment" or s.kind != "topup":
        return "ignored: not a top-up (subscriptions follow their own events)"
    if not s.paid:
        return "ignored: not paid yet"
    if not s.workspace_id or not s.pack:
        return "ignored: no workspace or pack in metadata"
    pack = catalog().pack(s.pack)
    credited = topups.credit(s.workspace_id, s.id, pack.credits, s.amount_total or pack.amount,
                             s.payment_intent, now)
    if credited:
        return f"topup {pack.credits}"
    # Delivered again: the first delivery may have died between crediting and taking back a
    # refund that was reported before the top-up (two writes). Finish that; nothing if done.
    taken = topups.take_back(s.payment_intent, 0, "reported before the top-up", now)
    return f"ignored: credited before{f', took back {taken}' if taken else ''}"


def subscription_changed(event: dict, now: datetime) -> str:
    return apply_subscription(event["data"]["object"], now,
                              seen=f"{int(event.get('created') or 0):012d}:{event.get('id', '')}",
                              deleted=event["type"] == "customer.subscription.deleted")


def seen_now(now: datetime) -> str:
    """When a change made through the API counts as seen, in the order of events' "created:id":
    two API changes of the same second keep their order (microseconds), and an event Stripe made
    in that second sorts after both (digits sort before "evt_")."""
    return f"{int(now.timestamp()):012d}:{now.microsecond:06d}"


def apply_subscription(obj: dict, now: datetime, seen: str | None = None, deleted: bool = False) -> str:
    """A subscription's state, from an event or from Stripe's answer to a change we asked for
    (then it counts as seen now, so older events arriving later cannot undo it)."""
    f = payloads.subscription(obj)
    plan = _plan_of(f.price_id)
    if not f.workspace_id or plan is None:
        return "ignored: no workspace or unknown price"
    if seen is None:
        seen = seen_now(now)
    status = "canceled" if deleted else f.status
    ends = f.cancel_at or (f.period_end if f.cancel_at_period_end else None)
    sub = plans.Subscription(
        id=f.id, plan_id=plan[0], interval=plan[1],
        period_start=_moment(f.period_start, now), period_end=_moment(f.period_end, now),
        status=status, ends_at=_moment(f.ended_at, now) if status == "canceled" else (_moment(ends, now) if ends else None),
        customer_id=f.customer, seen=seen, anchor=_moment(f.anchor, now) if f.anchor else None,
        changed_at=_moment(int(seen.split(":")[0]), now) if seen.split(":")[0].strip("0") else None,
    )
    return plans.follow(f.workspace_id, sub, now)


def schedule_changed(event: dict, now: datetime) -> str:
    """A schedule's next phase is the subscription's pending change (a downgrade at period end,
    made in the portal or through the API); released, cancelled or completed, there is none."""
    f = payloads.schedule(event["data"]["object"])
    if not f.subscription_id:
        return "ignored: no subscription"
    change = None
    if f.status in ("not_started", "active"):
        found = rules.scheduled_change(f.phases, f.current_start, int(now.timestamp()))
        plan = _plan_of(found[0]) if found else None
        change = (plan[0], plan[1], found[1]) if plan else None
    return plans.follow_schedule(f.subscription_id, change,
                                 f"{int(event.get('created') or 0):012d}:{event.get('id', '')}", now)


def invoice_paid(event: dict, now: datetime) -> str:
    f = payloads.invoice(event["data"]["object"])
    plan = _plan_of(f.price_id)
    if not f.subscription_id or not f.workspace_id or plan is None or not f.period_end:
        return "ignored: not a subscription invoice of ours"
    sub = plans.Subscription(id=f.subscription_id, plan_id=plan[0], interval=plan[1],
                             period_start=_moment(f.period_start, now), period_end=_moment(f.period_end, now),
                             status="active", customer_id=f.customer)
    # A proration invoice (an upgrade's difference) pays for part of a period: it may not start a
    # plan or name its cycle; the subscription's own events and invoices do.
    granted = plans.pay(f.workspace_id, sub, now, may_start=not f.proration_only)
    return f"paid through {f.period_end}, granted {granted}"


def invoice_payment_failed(event: dict, now: datetime) -> str:
    f = payloads.invoice(event["data"]["object"])
    if not f.subscription_id or not f.workspace_id:
        return "ignored: not a subscription invoice of ours"
    if not f.period_end:
        return "ignored: no period"
    return plans.payment_failed(f.workspace_id, f.subscription_id, _moment(f.period_end, now), now)


def charge_refunded(event: dict, now: datetime) -> str:
    r = payloads.refunded_charge(event["data"]["object"])
    return f"took back {topups.take_back(r.payment_intent, r.reversed, r.source_id, now)}"


def dispute_created(event: dict, now: datetime) -> str:
    d = payloads.dispute(event["data"]["object"])
    return f"took back {topups.take_back(d.payment_intent, d.reversed, d.source_id, now)}"


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_completed,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
    **{f"subscription_schedule.{kind}": schedule_changed
       for kind in ("created", "updated", "released", "canceled", "completed", "aborted")},
    "invoice.paid": invoice_paid,
    "invoice.payment_failed": invoice_payment_failed,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": dispute_created,
}
