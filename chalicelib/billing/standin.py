"""The local stand-in for Stripe (no STRIPE_SECRET_KEY, local stages only): checkout and portal
pages on the local server whose buttons complete purchases and changes by sending correctly
signed events to the webhook, like Stripe does. Its own state (sessions, subscriptions) lives in
the service's table under "standin#" keys, apart from the wallets it bills.

`tick(now)` plays Stripe's clock: subscriptions whose period ended renew (invoice.paid for the
next period) or end (cancelled at period end); the renew command calls it in local stages."""
from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from datetime import datetime, timezone

from dateutil.relativedelta import relativedelta
from pynamodb.attributes import MapAttribute
from pynamodb.exceptions import DoesNotExist

from .. import clock, config
from ..catalog import Pack, catalog
from ..credits.models import _Base
from ..credits.rules import new_ulid
from ..errors import InvalidState, NotFound
from .gateway import CheckoutRequest


class StandinRecord(_Base):
    """pk = standin#<id>; a checkout session or a subscription of the stand-in."""

    class Meta(_Base.Meta):
        pass

    data = MapAttribute(default=dict)


def _id(prefix: str) -> str:
    return f"{prefix}_{new_ulid(datetime.now(timezone.utc)).lower()}"


def _save(obj_id: str, data: dict) -> None:
    StandinRecord(f"standin#{obj_id}", "obj", data=data).save()


def _load(obj_id: str) -> dict:
    try:
        return StandinRecord.get(f"standin#{obj_id}", "obj", consistent_read=True).data.as_dict()
    except DoesNotExist:
        raise NotFound("No such stand-in object.") from None


def sign(payload: str, secret: str, timestamp: int) -> str:
    from stripe import WebhookSignature

    return f"t={timestamp},v1={WebhookSignature._compute_signature(f'{timestamp}.{payload}', secret)}"


def deliver(event: dict) -> None:
    """Send a signed event to the webhook: over HTTP to the running server (make run), or into
    the same verification path in-process (tests, the CLI)."""
    s = config.settings()
    payload = json.dumps(event)
    header = sign(payload, s.stripe_webhook_secrets[0], int(time.time()))
    if s.standin_delivery == "http":
        req = urllib.request.Request(f"{s.public_url}/stripe/webhook", data=payload.encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Stripe-Signature": header})
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
        return
    from .webhook import receive

    receive(payload.encode(), header, s.stripe_webhook_secrets, clock.now())


def _event(type_: str, obj: dict) -> dict:
    now = clock.now()
    return {"id": _id("evt"), "object": "event", "type": type_, "created": int(now.timestamp()),
            "api_version": "2026-07-29.dahlia", "livemode": False, "data": {"object": obj}}


def _interval(price_id: str) -> str:
    found = catalog().by_price_id(price_id)
    return "month" if found is None or isinstance(found, Pack) else found[1]


def _subscription_obj(sub: dict) -> dict:
    return {
        "id": sub["id"], "object": "subscription", "customer": sub["customer"], "status": sub["status"],
        "metadata": {"workspace_id": sub["workspace_id"]}, "cancel_at_period_end": sub["cancel_at_period_end"],
        "cancel_at": sub["period_end"] if sub["cancel_at_period_end"] else None,
        "canceled_at": sub.get("ended_at"), "ended_at": sub.get("ended_at"), "created": sub["created"],
        "latest_invoice": sub.get("latest_invoice"),
        "items": {"object": "list", "data": [{
            "id": f"si_{sub['id'][4:]}", "object": "subscription_item", "subscription": sub["id"],
            "price": {"id": sub["price_id"], "object": "price"},
            "current_period_start": sub["period_start"], "current_period_end": sub["period_end"]}]},
    }


def _schedule_obj(sub: dict) -> dict:
    later = sub.get("scheduled_price")
    phases = [{"start_date": sub["period_start"], "end_date": sub["period_end"],
               "items": [{"price": sub["price_id"], "quantity": 1}]}]
    if later:
        phases.append({"start_date": sub["period_end"], "end_date": None, "items": [{"price": later, "quantity": 1}]})
    return {"id": f"sub_sched_{sub['id'][4:]}", "object": "subscription_schedule", "subscription": sub["id"],
            "customer": sub["customer"], "status": "active" if later else "released", "end_behavior": "release",
            "current_phase": {"start_date": sub["period_start"], "end_date": sub["period_end"]} if later else None,
            "phases": phases, "metadata": {}}


def _invoice_obj(sub: dict, reason: str) -> dict:
    inv_id = _id("in")
    return {
        "id": inv_id, "object": "invoice", "status": "paid", "billing_reason": reason, "customer": sub["customer"],
        "parent": {"type": "subscription_details",
                   "subscription_details": {"subscription": sub["id"], "metadata": {"workspace_id": sub["workspace_id"]}}},
        "lines": {"object": "list", "data": [{
            "id": _id("il"), "object": "line_item", "period": {"start": sub["period_start"], "end": sub["period_end"]},
            "pricing": {"type": "price_details", "price_details": {"price": sub["price_id"]}},
            "parent": {"type": "subscription_item_details",
                       "subscription_item_details": {"subscription": sub["id"], "proration": False}}}]},
    }


class StandIn:
    """Implements gateway.Gateway for local runs."""

    def create_customer(self, workspace_id: str, name: str) -> str:
        return "cus_local_" + hashlib.sha256(workspace_id.encode()).hexdigest()[:16]

    def checkout(self, r: CheckoutRequest) -> tuple[str, str]:
        # Like Stripe, the same idempotency key gives the same session.
        session_id = f"cs_local_{hashlib.sha256(r.key.encode()).hexdigest()[:26]}" if r.key else _id("cs_local")
        try:
            _load(session_id)
            return f"{config.settings().public_url}/standin/checkout/{session_id}", session_id
        except NotFound:
            pass
        _save(session_id, {"id": session_id, "workspace_id": r.workspace_id, "customer": r.customer,
                           "mode": r.mode, "price_id": r.price_id, "metadata": r.metadata, "completed": False,
                           "success_url": r.success_url, "cancel_url": r.cancel_url})
        return f"{config.settings().public_url}/standin/checkout/{session_id}", session_id

    def expire_checkout(self, session_id: str) -> None:
        s = _load(session_id)
        if not s["completed"]:
            s["expired"] = True
            _save(session_id, s)

    def portal(self, customer: str, return_url: str) -> str:
        return f"{config.settings().public_url}/standin/portal/{customer}"

    def update_subscription(self, sub_id: str, *, price_id: str | None = None,
                            cancel_at_period_end: bool | None = None, key: str = "") -> dict:
        sub = _load(sub_id)
        if sub["status"] == "canceled":
            raise InvalidState("The subscription has ended.")
        if price_id:
            if _interval(price_id) != _interval(sub["price_id"]):
                # Stripe starts a new period when the interval changes, billed at once.
                now = int(clock.now().timestamp())
                sub.update(period_start=now, period_end=_period_end(now, price_id), anchor=now)
            sub["price_id"] = price_id
            sub["scheduled_price"] = None
        if cancel_at_period_end is not None:
            sub["cancel_at_period_end"] = cancel_at_period_end
        _save(sub_id, sub)
        obj = _subscription_obj(sub)
        deliver(_event("customer.subscription.updated", obj))
        if price_id:
            deliver(_event("invoice.paid", _invoice_obj(sub, "subscription_update")))
        return obj

    def schedule_price(self, sub_id: str, price_id: str | None, key: str = "") -> None:
        """A change at period end, as a Stripe subscription schedule (and its events)."""
        sub = _load(sub_id)
        had = sub.get("scheduled_price")
        sub["scheduled_price"] = price_id
        _save(sub_id, sub)
        if price_id or had:
            deliver(_event("subscription_schedule.updated" if price_id else "subscription_schedule.released",
                           _schedule_obj(sub)))

    def cancel_now(self, sub_id: str, key: str = "") -> dict:
        sub = _load(sub_id)
        sub.update(status="canceled", ended_at=int(clock.now().timestamp()))
        _save(sub_id, sub)
        obj = _subscription_obj(sub)
        deliver(_event("customer.subscription.deleted", obj))
        return obj

    # --- what the pages' buttons do ---------------------------------------------------------

    def complete(self, session_id: str) -> dict:
        """The checkout page's Pay button: what Stripe does when a customer pays."""
        s = _load(session_id)
        if s["completed"] or s.get("expired"):
            return s
        now = int(clock.now().timestamp())
        obj = {"id": session_id, "object": "checkout.session", "mode": s["mode"], "status": "complete",
               "payment_status": "paid", "client_reference_id": s["workspace_id"], "customer": s["customer"],
               "metadata": s["metadata"], "payment_intent": None, "subscription": None, "amount_total": None}
        if s["mode"] == "payment":
            pack = catalog().by_price_id(s["price_id"])
            obj.update(payment_intent=_id("pi_local"), amount_total=pack.amount if isinstance(pack, Pack) else 0)
            deliver(_event("checkout.session.completed", obj))
        else:
            sub_id = _id("sub_local")
            sub = {"id": sub_id, "workspace_id": s["workspace_id"], "customer": s["customer"], "status": "active",
                   "price_id": s["price_id"], "period_start": now, "period_end": _period_end(now, s["price_id"]),
                   "anchor": now,
                   "cancel_at_period_end": False, "created": now, "scheduled_price": None}
            _save(sub_id, sub)
            obj["subscription"] = sub_id
            deliver(_event("checkout.session.completed", obj))
            deliver(_event("customer.subscription.created", _subscription_obj(sub)))
            deliver(_event("invoice.paid", _invoice_obj(sub, "subscription_create")))
        s["completed"] = True
        _save(session_id, s)
        return s

    def tick(self, now: datetime) -> int:
        """Renew or end every stand-in subscription whose period has ended. Returns events sent."""
        sent = 0
        ts = int(now.timestamp())
        for record in StandinRecord.scan(StandinRecord.pk.startswith("standin#sub_local")):
            sub = record.data.as_dict()
            while sub["status"] != "canceled" and sub["period_end"] <= ts:
                if sub["cancel_at_period_end"]:
                    sub.update(status="canceled", ended_at=sub["period_end"])
                    _save(sub["id"], sub)
                    deliver(_event("customer.subscription.deleted", _subscription_obj(sub)))
                    sent += 1
                    break
                if sub.get("scheduled_price"):
                    sub["price_id"], sub["scheduled_price"] = sub["scheduled_price"], None
                sub["period_start"] = sub["period_end"]
                sub["period_end"] = _period_end(sub["period_start"], sub["price_id"], sub.get("anchor"))
                _save(sub["id"], sub)
                deliver(_event("customer.subscription.updated", _subscription_obj(sub)))
                deliver(_event("invoice.paid", _invoice_obj(sub, "subscription_cycle")))
                sent += 2
        return sent


def _period_end(start: int, price_id: str, anchor: int | None = None) -> int:
    """Like Stripe, periods keep the billing anchor's day: Jan 31 -> Feb 28 -> Mar 31."""
    first = datetime.fromtimestamp(anchor if anchor is not None else start, tz=timezone.utc)
    at = datetime.fromtimestamp(start, tz=timezone.utc)
    step = relativedelta(years=1) if _interval(price_id) == "year" else relativedelta(months=1)
    n = 1
    while first + step * n <= at:
        n += 1
    return int((first + step * n).timestamp())


# --- the pages (plain HTML forms: they work without JavaScript) ------------------------------

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.5}"
          "button{font-size:1rem;padding:.5rem 1rem;margin:.25rem 0}.note{color:#555}")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width,initial-scale=1'><title>{title}</title><style>{_STYLE}</style></head>"
            f"<body><p class=note>Stripe stand-in (local runs only): no money moves.</p><h1>{title}</h1>{body}</body></html>")


def checkout_page(session_id: str) -> str:
    s = _load(session_id)
    item = catalog().by_price_id(s["price_id"])
    what = (f"{item.name}: {item.credits:,} credits, EUR {item.amount / 100:.2f}" if isinstance(item, Pack)
            else f"{item[0].name} plan, billed every {item[1]}: EUR {item[0].prices[item[1]].amount / 100:.2f}"
            if item else s["price_id"])
    if s["completed"]:
        return _page("Paid", f"<p>{what}</p><p>This checkout is complete.</p>")
    if s.get("expired"):
        return _page("Expired", f"<p>{what}</p><p>This checkout has expired: a newer one was started.</p>"
                                f"<p><a href='{s['cancel_url']}'>Go back</a></p>")
    return _page("Checkout", f"<p>{what}</p><form method=post action='/standin/checkout/{session_id}/pay'>"
                             f"<button type=submit>Pay</button></form>"
                             f"<p><a href='{s['cancel_url']}'>Cancel and go back</a></p>")


def subscription_of(customer: str) -> dict | None:
    subs = [r.data.as_dict() for r in StandinRecord.scan(StandinRecord.pk.startswith("standin#sub_local"))]
    mine = [s for s in subs if s["customer"] == customer and s["status"] != "canceled"]
    return max(mine, key=lambda s: s["created"]) if mine else None


def portal_page(customer: str) -> str:
    sub = subscription_of(customer)
    if sub is None:
        return _page("Manage payments", "<p>No active subscription.</p>")
    back = f"<p><a href='{config.settings().public_url}/?workspace={sub['workspace_id']}'>Return to the studio</a></p>"
    found = catalog().by_price_id(sub["price_id"])
    name = f"{found[0].name} ({found[1]}ly)" if found and not isinstance(found, Pack) else sub["price_id"]
    ends = datetime.fromtimestamp(sub["period_end"], tz=timezone.utc).date().isoformat()
    actions = [("resume", "Resume the subscription")] if sub["cancel_at_period_end"] else [
        ("cancel_period_end", f"Cancel at the end of the period ({ends})"),
        ("cancel_now", "Cancel now (unused time refunded pro rata)")]
    # Stripe's portal schedules a switch at period end (a subscription schedule).
    from ..credits.store import get_wallet

    kind = get_wallet(sub["workspace_id"]).kind
    if sub.get("scheduled_price"):
        actions.append(("keep", "Keep the current plan (withdraw the scheduled switch)"))
    else:
        actions += [(f"switch-{price.price_id}", f"Switch to {plan.name} ({interval}ly) at the end of the period")
                    for plan in sorted(catalog().plans.values(), key=lambda p: p.rank) if plan.allows(kind) and plan.prices
                    for interval, price in plan.prices.items() if price.price_id != sub["price_id"]]
    # So a frontend can show Past due without a real declined card.
    actions.append(("pay_overdue", "Pay the overdue invoice") if sub["status"] == "past_due"
                   else ("fail_payment", "Decline the card (the subscription becomes past due)"))
    forms = "".join(f"<form method=post action='/standin/portal/{customer}/{a}'><button type=submit>{label}"
                    f"</button></form>" for a, label in actions)
    return _page("Manage payments", f"<p>Current plan: {name}. Period ends {ends}.</p>{forms}{back}")


def portal_action(customer: str, action: str) -> None:
    """The portal's buttons: Stripe changes the subscription and tells the webhook."""
    sub = subscription_of(customer)
    if sub is None:
        raise NotFound("No active subscription.")
    if action == "cancel_now":
        StandIn().cancel_now(sub["id"])
    elif action in ("cancel_period_end", "resume"):
        StandIn().update_subscription(sub["id"], cancel_at_period_end=action == "cancel_period_end")
    elif action.startswith("switch-") or action == "keep":
        StandIn().schedule_price(sub["id"], action.removeprefix("switch-") if action != "keep" else None)
    elif action in ("fail_payment", "pay_overdue"):
        sub["status"] = "past_due" if action == "fail_payment" else "active"
        _save(sub["id"], sub)
        deliver(_event("customer.subscription.updated", _subscription_obj(sub)))
    else:
        raise NotFound("No such portal action.")
