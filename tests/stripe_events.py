"""Stripe events for tests, built from Stripe's own example objects (tests/fixtures/stripe, copied
from its OpenAPI fixtures) in either API shape: "new" (2025-03-31 on) or "old" (before), and
signed as Stripe signs them."""
from __future__ import annotations

import copy
import itertools
import json
import time
from pathlib import Path

from stripe import WebhookSignature

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
_ids = itertools.count(1)


def _load(shape: str, name: str) -> dict:
    return json.loads((FIXTURES / shape / f"{name}.json").read_text())


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    sig = WebhookSignature._compute_signature(f"{t}.{payload.decode()}", secret)
    return f"t={t},v1={sig}"


class Stripe:
    """Builds payloads of one API shape."""

    def __init__(self, shape: str = "new"):
        assert shape in ("new", "old")
        self.shape = shape

    def event(self, type_: str, obj: dict, created: int | None = None, event_id: str | None = None) -> dict:
        e = _load(self.shape, "event")
        e.update(id=event_id or f"evt_{next(_ids)}", type=type_, created=created or int(time.time()),
                 data={"object": obj}, api_version="2026-07-29.dahlia" if self.shape == "new" else "2025-02-24.acacia")
        return e

    def checkout_topup(self, ws: str, pack: str, session_id: str, payment_intent: str, amount: int,
                       paid: bool = True) -> dict:
        s = _load(self.shape, "checkout.session")
        s.update(id=session_id, mode="payment", payment_status="paid" if paid else "unpaid", status="complete",
                 client_reference_id=ws, metadata={"workspace_id": ws, "kind": "topup", "pack": pack},
                 payment_intent=payment_intent, subscription=None, amount_total=amount, currency="eur")
        return s

    def checkout_subscription(self, ws: str, plan: str, session_id: str, sub_id: str) -> dict:
        s = _load(self.shape, "checkout.session")
        s.update(id=session_id, mode="subscription", payment_status="paid", status="complete",
                 client_reference_id=ws, metadata={"workspace_id": ws, "kind": "subscription", "plan": plan},
                 payment_intent=None, subscription=sub_id)
        return s

    def subscription(self, ws: str, sub_id: str, price: str, start: int, end: int, status: str = "active",
                     cancel_at_period_end: bool = False, cancel_at: int | None = None,
                     ended_at: int | None = None, customer: str = "cus_test", anchor: int | None = None) -> dict:
        s = _load(self.shape, "subscription")
        item = copy.deepcopy(s["items"]["data"][0])
        item["price"]["id"] = price
        item.setdefault("plan", {})
        if isinstance(item.get("plan"), dict):
            item["plan"]["id"] = price
        item["subscription"] = sub_id
        s.update(id=sub_id, status=status, customer=customer, metadata={"workspace_id": ws},
                 cancel_at_period_end=cancel_at_period_end, cancel_at=cancel_at, ended_at=ended_at,
                 canceled_at=ended_at, created=start, start_date=start,
                 billing_cycle_anchor=anchor)  # None unless given: the fixture's value is filler
        if self.shape == "new":
            item.update(current_period_start=start, current_period_end=end)
            s.pop("current_period_start", None)
            s.pop("current_period_end", None)
        else:
            s.update(current_period_start=start, current_period_end=end)
        s["items"]["data"] = [item]
        return s

    def invoice(self, ws: str, sub_id: str, price: str, start: int, end: int, invoice_id: str,
                proration: bool = False, reason: str = "subscription_cycle") -> dict:
        inv = _load(self.shape, "invoice")
        line = copy.deepcopy(_load(self.shape, "invoice_line_item"))
        line.update(period={"start": start, "end": end}, amount=1000, invoice=invoice_id)
        inv.update(id=invoice_id, billing_reason=reason, status="paid", customer="cus_test",
                   period_start=start, period_end=start)
        if self.shape == "new":
            inv["parent"] = {"type": "subscription_details", "quote_details": None,
                             "subscription_details": {"subscription": sub_id, "metadata": {"workspace_id": ws}}}
            inv.pop("subscription", None)
            line["pricing"] = {"type": "price_details", "price_details": {"price": price, "product": "prod_x"},
                               "unit_amount_decimal": "1000"}
            line["parent"] = {"type": "subscription_item_details", "invoice_item_details": None,
                              "subscription_item_details": {"subscription": sub_id, "subscription_item": "si_x",
                                                            "proration": proration, "invoice_item": None}}
            line.pop("price", None)
            line.pop("proration", None)
        else:
            inv.update(subscription=sub_id, subscription_details={"metadata": {"workspace_id": ws}}, paid=True)
            line.update(price={**(line.get("price") or {}), "id": price}, proration=proration,
                        subscription=sub_id, type="subscription")
        inv["lines"] = {"object": "list", "data": [line], "has_more": False}
        return inv

    def schedule(self, sub_id: str, phases: list[tuple[int, int | None, str]], status: str = "active",
                 schedule_id: str = "sub_sched_1", expand_prices: bool = False) -> dict:
        """A subscription schedule as Stripe sends it (no example in Stripe's fixtures here; the
        fields are the API reference's, alike in both shapes): phases of (start, end, price)."""
        current = next((p for p in phases if status == "active"), None)
        return {
            "id": schedule_id, "object": "subscription_schedule", "status": status, "subscription": sub_id,
            "customer": "cus_test", "end_behavior": "release", "metadata": {},
            "released_subscription": sub_id if status == "released" else None,
            "current_phase": {"start_date": current[0], "end_date": current[1]} if current else None,
            "phases": [{"start_date": start, "end_date": end, "proration_behavior": "none",
                        "items": [{"price": {"id": price, "object": "price"} if expand_prices else price,
                                   "quantity": 1}]} for start, end, price in phases],
        }

    def refunded_charge(self, payment_intent: str, amount: int, refunded: int, charge_id: str = "ch_1") -> dict:
        c = _load(self.shape, "charge")
        c.update(id=charge_id, payment_intent=payment_intent, amount=amount, amount_refunded=refunded,
                 refunded=refunded >= amount)
        return c

    def dispute(self, payment_intent: str, amount: int, dispute_id: str = "dp_1") -> dict:
        return {"id": dispute_id, "object": "dispute", "amount": amount, "charge": "ch_1",
                "payment_intent": payment_intent, "status": "needs_response"}
