"""The billing routes: checkout, portal and subscription changes. Stripe (or the stand-in) is
asked to change the subscription; the wallet follows what Stripe answers and reports, through the
same code as the webhook, so a change made here and the same change in Stripe's portal end alike."""
from __future__ import annotations

import uuid
from datetime import datetime

from .. import config
from ..auth import Principal
from ..catalog import catalog
from ..credits import wallets
from ..credits.models import Wallet
from ..credits.store import Cancelled, Update, transact, wallet_key
from ..errors import Forbidden, InvalidRequest, InvalidState
from . import events
from .gateway import CheckoutRequest, gateway


def _manager_wallet(who: Principal, workspace_id: str, now: datetime) -> Wallet:
    if who.is_service:
        raise Forbidden("A generation service may only charge and hold.")
    w = wallets.load(workspace_id, now)
    wallets.require_role(w, who.user_id, "admin")
    return w


def _customer(w: Wallet) -> str:
    """One Stripe customer per workspace, made once (Stripe's idempotency key and a conditional
    write make a race create one)."""
    if w.customer_id:
        return w.customer_id
    customer = gateway().create_customer(w.pk, w.name)
    try:
        transact([Update(wallet_key(w.pk), [Wallet.customer_id.set(customer)], Wallet.customer_id.does_not_exist())])
    except Cancelled as c:
        return Wallet.from_raw_data(c.failed[0]).customer_id or customer
    return customer


def _urls(workspace_id: str) -> tuple[str, str]:
    base = config.settings().public_url
    return f"{base}/?workspace={workspace_id}&checkout=done", f"{base}/?workspace={workspace_id}&checkout=cancelled"


def checkout_subscription(who: Principal, workspace_id: str, plan_id: str, interval: str, key: str | None,
                          now: datetime) -> dict:
    w = _manager_wallet(who, workspace_id, now)
    plan = catalog().plan(plan_id)
    if not plan.allows(w.kind):
        raise InvalidRequest(f"The {plan.name} plan is for {plan.workspace_kind} workspaces.")
    price = plan.prices.get(interval)
    if price is None:
        raise InvalidRequest(f"The {plan.name} plan has no {interval}ly price.")
    if w.sub_id:
        raise InvalidState("This workspace already has a subscription: change it instead.")
    success, cancel = _urls(workspace_id)
    url, session_id = gateway().checkout(CheckoutRequest(
        workspace_id, _customer(w), "subscription", price.price_id,
        {"workspace_id": workspace_id, "kind": "subscription", "plan": plan.id}, success, cancel,
        key=f"checkout-{workspace_id}-{key or uuid.uuid4()}"))
    if w.open_checkout != session_id:
        # One payable subscription checkout per workspace: a second tab paid as well would start
        # a second subscription, billed but not the workspace's. The older offer closes.
        if w.open_checkout:
            gateway().expire_checkout(w.open_checkout)
        transact([Update(wallet_key(workspace_id), [Wallet.open_checkout.set(session_id)], Wallet.pk.exists())])
    return {"checkout_url": url, "session_id": session_id}


def checkout_topup(who: Principal, workspace_id: str, pack_id: str, key: str | None, now: datetime) -> dict:
    w = _manager_wallet(who, workspace_id, now)
    pack = catalog().pack(pack_id)
    success, cancel = _urls(workspace_id)
    url, session_id = gateway().checkout(CheckoutRequest(
        workspace_id, _customer(w), "payment", pack.price_id,
        {"workspace_id": workspace_id, "kind": "topup", "pack": pack.id}, success, cancel,
        key=f"topup-{workspace_id}-{key or uuid.uuid4()}"))
    return {"checkout_url": url, "session_id": session_id}


def portal(who: Principal, workspace_id: str, now: datetime) -> dict:
    w = _manager_wallet(who, workspace_id, now)
    if not w.customer_id:
        raise InvalidState("There is nothing to manage yet: no payment was ever made.")
    return {"portal_url": gateway().portal(w.customer_id, f"{config.settings().public_url}/?workspace={workspace_id}")}


def _is_upgrade(current: tuple[str, str | None], wanted: tuple[str, str]) -> bool:
    cur, new = catalog().plan(current[0]), catalog().plan(wanted[0])
    if new.rank != cur.rank:
        return new.rank > cur.rank
    return wanted[1] == "year" and current[1] == "month"


def change(who: Principal, workspace_id: str, plan_id: str, interval: str, now: datetime) -> dict:
    """Upgrade: billing changes at once, credits from the next renewal. Downgrade: at the end of
    the billing period (annual: of the paid year), shown as pending until then and withdrawable
    by asking for the current plan again."""
    w = _manager_wallet(who, workspace_id, now)
    if not w.sub_id:
        raise InvalidState("There is no paid subscription to change: start one through checkout.")
    plan = catalog().plan(plan_id)
    if not plan.allows(w.kind) or plan.id == "free":
        raise InvalidRequest(f"The {plan.name} plan cannot be chosen for this workspace here"
                             + (" (cancel instead)." if plan.id == "free" else "."))
    price = plan.prices.get(interval)
    if price is None:
        raise InvalidRequest(f"The {plan.name} plan has no {interval}ly price.")
    current = (w.plan_id, w.interval)
    if (plan.id, interval) == current:
        if w.pending is not None:
            gateway().schedule_price(w.sub_id, None)
            _set_pending(workspace_id, w.sub_id, None, now)
    elif _is_upgrade(current, (plan.id, interval)):
        if w.pending is not None:
            gateway().schedule_price(w.sub_id, None)
            _set_pending(workspace_id, w.sub_id, None, now)
        # No fixed Stripe key: asking again for the price it has is a no-op at Stripe, while a fixed
        # key would replay a stale answer for 24 hours (the same upgrade after a downgrade).
        sub = gateway().update_subscription(w.sub_id, price_id=price.price_id)
        events.apply_subscription(sub, now)
    else:
        gateway().schedule_price(w.sub_id, price.price_id)  # creates a schedule only if there is none
        effective = int(w.ends_at or 0) or _period_end(w)
        _set_pending(workspace_id, w.sub_id, {"plan": plan.id, "interval": interval, "effective_at": effective}, now)
    return wallets.view(wallets.load(workspace_id, now))


def _set_pending(workspace_id: str, sub_id: str, pending: dict | None, now: datetime) -> None:
    # Seen now: a schedule event Stripe made before this change, delivered late, cannot undo it.
    actions = [Wallet.pending.set(pending) if pending else Wallet.pending.remove(),
               Wallet.schedule_seen.set(events.seen_now(now))]
    transact([Update(wallet_key(workspace_id), actions, Wallet.sub_id == sub_id)])


def _period_end(w: Wallet) -> int:
    """The end of what was paid: the monthly cycle, or the paid year of an annual plan."""
    return int(w.paid_until) if w.paid_until else int(w.cycle_end)


def cancel(who: Principal, workspace_id: str, when: str, now: datetime) -> dict:
    w = _manager_wallet(who, workspace_id, now)
    if not w.sub_id:
        raise InvalidState("There is no paid subscription to cancel.")
    if when == "now":
        sub = gateway().cancel_now(w.sub_id, key=f"cancel-{w.sub_id}")
    else:
        if w.pending is not None:
            # Stripe refuses to cancel at period end a subscription a schedule manages: the
            # scheduled change goes first (it could never take effect after the end anyway).
            gateway().schedule_price(w.sub_id, None)
            _set_pending(workspace_id, w.sub_id, None, now)
        sub = gateway().update_subscription(w.sub_id, cancel_at_period_end=True)
    events.apply_subscription(sub, now, deleted=when == "now")
    return wallets.view(wallets.load(workspace_id, now))


def resume(who: Principal, workspace_id: str, now: datetime) -> dict:
    w = _manager_wallet(who, workspace_id, now)
    if not w.sub_id or not w.ends_at:
        raise InvalidState("There is no cancellation to withdraw.")
    sub = gateway().update_subscription(w.sub_id, cancel_at_period_end=False)
    events.apply_subscription(sub, now)
    return wallets.view(wallets.load(workspace_id, now))
