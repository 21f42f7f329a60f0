"""Reading Stripe objects, in both API shapes: before 2025-03-31 (period dates on the
subscription, `invoice.subscription`, `line.price`) and from it (period dates on subscription
items, `invoice.parent.subscription_details`, `line.pricing.price_details.price`). Pure functions
over the event's JSON (plain dicts); what the service needs and nothing else."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _id(value: Any) -> str | None:
    """An expandable field: an id, or the expanded object."""
    return value.get("id") if isinstance(value, dict) else value


def _metadata(*candidates: Any) -> dict:
    merged: dict = {}
    for m in candidates:
        if isinstance(m, dict):
            merged = {**m, **merged}
    return merged


@dataclass(frozen=True)
class SubscriptionFacts:
    id: str
    customer: str | None
    workspace_id: str | None
    status: str
    price_id: str | None
    period_start: int | None
    period_end: int | None
    cancel_at_period_end: bool
    cancel_at: int | None
    ended_at: int | None
    created: int | None
    anchor: int | None  # billing_cycle_anchor: the day every period keeps


def subscription(sub: dict) -> SubscriptionFacts:
    items = _get(sub, "items", "data") or []
    item = items[0] if items else {}
    start = sub.get("current_period_start", item.get("current_period_start"))
    end = sub.get("current_period_end", item.get("current_period_end"))
    price = _get(item, "price", "id") or _id(item.get("price")) or _get(item, "plan", "id")
    return SubscriptionFacts(
        id=sub["id"],
        customer=_id(sub.get("customer")),
        workspace_id=_metadata(sub.get("metadata")).get("workspace_id"),
        status=sub.get("status") or "active",
        price_id=price,
        period_start=start,
        period_end=end,
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        cancel_at=sub.get("cancel_at"),
        ended_at=sub.get("ended_at") or (sub.get("canceled_at") if sub.get("status") == "canceled" else None),
        created=sub.get("created"),
        anchor=sub.get("billing_cycle_anchor"),
    )


@dataclass(frozen=True)
class InvoiceFacts:
    id: str
    subscription_id: str | None
    customer: str | None
    workspace_id: str | None
    price_id: str | None  # the plan's price this invoice pays for (its subscription line)
    period_start: int | None
    period_end: int | None
    billing_reason: str | None
    proration_only: bool


def _line_price(line: dict) -> str | None:
    return (_get(line, "pricing", "price_details", "price") and _id(_get(line, "pricing", "price_details", "price"))) \
        or _id(line.get("price")) or _id(_get(line, "plan", "id"))


def _line_proration(line: dict) -> bool:
    if "proration" in line:
        return bool(line["proration"])
    return bool(_get(line, "parent", "subscription_item_details", "proration"))


def _line_subscription(line: dict) -> str | None:
    return _id(line.get("subscription")) or _id(_get(line, "parent", "subscription_item_details", "subscription"))


def invoice(inv: dict) -> InvoiceFacts:
    details = _get(inv, "parent", "subscription_details") or inv.get("subscription_details") or {}
    sub_id = _id(inv.get("subscription")) or _id(details.get("subscription"))
    lines = [line for line in (_get(inv, "lines", "data") or []) if isinstance(line, dict)]
    sub_lines = [line for line in lines if _line_subscription(line) in (None, sub_id)]
    regular = [line for line in sub_lines if not _line_proration(line)]
    chosen = regular or [line for line in sub_lines if (line.get("amount") or 0) >= 0]
    # The period paid for: the subscription line's period (the invoice's own period_start/end
    # describe the billing run, not the service period).
    best = max(chosen, key=lambda line: _get(line, "period", "end") or 0) if chosen else {}
    return InvoiceFacts(
        id=inv["id"],
        subscription_id=sub_id,
        customer=_id(inv.get("customer")),
        workspace_id=_metadata(details.get("metadata"), inv.get("metadata")).get("workspace_id"),
        price_id=_line_price(best) if best else None,
        period_start=_get(best, "period", "start"),
        period_end=_get(best, "period", "end"),
        billing_reason=inv.get("billing_reason"),
        proration_only=bool(sub_lines) and not regular,
    )


@dataclass(frozen=True)
class CheckoutFacts:
    id: str
    mode: str
    paid: bool
    workspace_id: str | None
    kind: str | None
    plan: str | None
    pack: str | None
    payment_intent: str | None
    subscription_id: str | None
    customer: str | None
    amount_total: int | None


def checkout_session(session: dict) -> CheckoutFacts:
    meta = _metadata(session.get("metadata"))
    return CheckoutFacts(
        id=session["id"],
        mode=session.get("mode") or "payment",
        paid=session.get("payment_status") in ("paid", "no_payment_required"),
        workspace_id=meta.get("workspace_id") or session.get("client_reference_id"),
        kind=meta.get("kind"),
        plan=meta.get("plan"),
        pack=meta.get("pack"),
        payment_intent=_id(session.get("payment_intent")),
        subscription_id=_id(session.get("subscription")),
        customer=_id(session.get("customer")),
        amount_total=session.get("amount_total"),
    )


@dataclass(frozen=True)
class ReversalFacts:
    """Money taken back from a payment: a refund (cumulative) or a dispute."""

    payment_intent: str | None
    amount: int  # of the payment
    reversed: int  # in total so far
    source_id: str


def refunded_charge(charge: dict) -> ReversalFacts:
    return ReversalFacts(_id(charge.get("payment_intent")), int(charge.get("amount") or 0),
                         int(charge.get("amount_refunded") or 0), charge["id"])


def dispute(d: dict) -> ReversalFacts:
    charge = d.get("charge")
    amount = int(_get(charge, "amount") or d.get("amount") or 0) if isinstance(charge, dict) else int(d.get("amount") or 0)
    return ReversalFacts(_id(d.get("payment_intent")) or _id(_get(charge, "payment_intent")), amount,
                         int(d.get("amount") or 0), d["id"])


@dataclass(frozen=True)
class ScheduleFacts:
    id: str
    subscription_id: str | None
    status: str  # not_started | active | completed | released | canceled
    phases: list[tuple[int, int | None, str | None]]  # (start, end, price of its first item)
    current_start: int | None


def schedule(s: dict) -> ScheduleFacts:
    """A subscription schedule (the same in both API shapes): how a portal or API downgrade at
    period end reaches us."""
    phases = []
    for phase in s.get("phases") or []:
        items = phase.get("items") or []
        price = _id(items[0].get("price")) if items and isinstance(items[0], dict) else None
        phases.append((int(phase.get("start_date") or 0), phase.get("end_date"), price))
    return ScheduleFacts(id=s["id"], subscription_id=_id(s.get("subscription")) or s.get("released_subscription"),
                         status=s.get("status") or "active", phases=phases,
                         current_start=_get(s, "current_phase", "start_date"))
