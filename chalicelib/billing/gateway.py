"""What the service asks of Stripe, behind one small interface: the real Stripe (stripe-python's
StripeClient, imported only here) or the local stand-in (standin.py).

Faults, and who retries them (two layers, both bounded):
1. stripe-python (max_network_retries=2): resends a request on network errors and timeouts, 409
   and 5xx answers (or when Stripe says `Stripe-Should-Retry: true`), sleeping 0.5-1 s then
   1-2 s, with one Idempotency-Key for all its attempts. It does not resend a 429.
2. here: a 429 (rate limit) is resent up to RATE_LIMIT_RETRIES times within RATE_LIMIT_BUDGET
   seconds, with the same Idempotency-Key.
Then a rate limit is answered 503 (Retry-After) and anything else from Stripe 502: nothing was
changed here, and the client may try again.

Every POST carries an Idempotency-Key chosen here, the same on every resend: those that could
create something twice name what they create (a workspace's customer, a client's checkout, a
subscription's cancellation and its refund), so a client's retry is applied once by Stripe too;
the others (a subscription update, a schedule, a portal session) are new per call, because sending
them again has the same effect (a schedule is only created when the subscription has none), and
Stripe would replay a stale answer to a reused key for 24 hours.
"""
from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from .. import config
from ..errors import PaymentProviderError, Unavailable


@dataclass(frozen=True)
class CheckoutRequest:
    workspace_id: str
    customer: str
    mode: str  # subscription | payment
    price_id: str
    metadata: dict = field(default_factory=dict)
    success_url: str = ""
    cancel_url: str = ""
    key: str = ""  # idempotency key


class Gateway(Protocol):
    def create_customer(self, workspace_id: str, name: str) -> str: ...
    def checkout(self, request: CheckoutRequest) -> tuple[str, str]: ...  # (url, session id)
    def expire_checkout(self, session_id: str) -> None: ...
    def portal(self, customer: str, return_url: str) -> str: ...
    def update_subscription(self, sub_id: str, *, price_id: str | None = None,
                            cancel_at_period_end: bool | None = None, key: str = "") -> dict: ...
    def schedule_price(self, sub_id: str, price_id: str | None, key: str = "") -> None: ...
    def cancel_now(self, sub_id: str, key: str = "") -> dict: ...


NETWORK_RETRIES = 2  # stripe-python's own resends
TIMEOUT = (2, 6)  # seconds to connect, to read: 3 attempts and their waits stay inside a 25 s Lambda
RATE_LIMIT_RETRIES = 2
RATE_LIMIT_BUDGET = 4.0  # seconds spent on resending 429s, at most
RATE_LIMIT_RETRY_AFTER = 2

# What the 429 resends wait with: tests replace these, nothing else does.
sleep = time.sleep
monotonic = time.monotonic
rng = random.Random()


def _key(purpose: str) -> str:
    return f"{purpose}-{uuid.uuid4()}"


class StripeGateway:
    def __init__(self, api_key: str, http_client=None):
        import stripe

        self.stripe = stripe
        self.client = stripe.StripeClient(
            api_key, max_network_retries=NETWORK_RETRIES,
            http_client=http_client or stripe.RequestsClient(timeout=TIMEOUT))

    def _call(self, fn, *args):
        """One Stripe request (see the module doc for who resends what). A POST's last argument is
        its options, with the Idempotency-Key every resend reuses."""
        started = monotonic()
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                return fn(*args)
            except self.stripe.RateLimitError as e:
                delay = rng.uniform(0.5, 1.0) * 2**attempt
                if attempt == RATE_LIMIT_RETRIES or monotonic() - started + delay > RATE_LIMIT_BUDGET:
                    raise Unavailable("Stripe is rate limiting; retry shortly.",
                                      retry_after=RATE_LIMIT_RETRY_AFTER) from e
                sleep(delay)
            except self.stripe.StripeError as e:
                raise PaymentProviderError(f"Stripe: {e.user_message or e.__class__.__name__}.") from e
        raise AssertionError("unreachable")

    def create_customer(self, workspace_id: str, name: str) -> str:
        c = self._call(self.client.v1.customers.create, {"name": name, "metadata": {"workspace_id": workspace_id}},
                       {"idempotency_key": f"customer-{workspace_id}"})
        return c.id

    def checkout(self, r: CheckoutRequest) -> tuple[str, str]:
        params = {
            "mode": r.mode, "customer": r.customer, "client_reference_id": r.workspace_id,
            "line_items": [{"price": r.price_id, "quantity": 1}], "metadata": r.metadata,
            "success_url": r.success_url, "cancel_url": r.cancel_url,
        }
        if r.mode == "subscription":
            params["subscription_data"] = {"metadata": {"workspace_id": r.workspace_id}}
        else:
            params["payment_intent_data"] = {"metadata": r.metadata}
        s = self._call(self.client.v1.checkout.sessions.create, params, {"idempotency_key": r.key})
        return s.url, s.id

    def expire_checkout(self, session_id: str) -> None:
        """Close a checkout session nobody paid yet; one that is no longer open (paid or expired)
        is left as it is."""
        try:
            self._call(self.client.v1.checkout.sessions.expire, session_id, None,
                       {"idempotency_key": f"expire-{session_id}"})
        except PaymentProviderError as e:
            if not isinstance(e.__cause__, self.stripe.InvalidRequestError):
                raise

    def portal(self, customer: str, return_url: str) -> str:
        return self._call(self.client.v1.billing_portal.sessions.create,
                          {"customer": customer, "return_url": return_url}, {"idempotency_key": _key("portal")}).url

    def update_subscription(self, sub_id: str, *, price_id: str | None = None,
                            cancel_at_period_end: bool | None = None, key: str = "") -> dict:
        params: dict = {}
        if price_id:
            sub = self._call(self.client.v1.subscriptions.retrieve, sub_id)
            params["items"] = [{"id": sub["items"]["data"][0]["id"], "price": price_id}]
            params["proration_behavior"] = "always_invoice"  # an upgrade bills at once
        if cancel_at_period_end is not None:
            params["cancel_at_period_end"] = cancel_at_period_end
        sub = self._call(self.client.v1.subscriptions.update, sub_id, params,
                         {"idempotency_key": key or _key(f"update-{sub_id}")})
        return sub.to_dict()

    def schedule_price(self, sub_id: str, price_id: str | None, key: str = "") -> None:
        schedule = self._call(self.client.v1.subscriptions.retrieve, sub_id).to_dict().get("schedule")
        if price_id is None:  # withdraw a scheduled downgrade
            if schedule:
                self._call(self.client.v1.subscription_schedules.release, schedule, None,
                           {"idempotency_key": _key(f"release-{schedule}")})
            return
        if not schedule:
            schedule = self._call(self.client.v1.subscription_schedules.create, {"from_subscription": sub_id},
                                  {"idempotency_key": key or _key(f"schedule-{sub_id}")}).id
        current = self._call(self.client.v1.subscription_schedules.retrieve, schedule)
        phase = current["phases"][0]
        self._call(self.client.v1.subscription_schedules.update, schedule, {
            "end_behavior": "release",
            "phases": [
                {"items": [{"price": i["price"], "quantity": 1} for i in phase["items"]],
                 "start_date": phase["start_date"], "end_date": phase["end_date"]},
                {"items": [{"price": price_id, "quantity": 1}]},
            ],
        }, {"idempotency_key": _key(f"phases-{schedule}")})

    def cancel_now(self, sub_id: str, key: str = "") -> dict:
        sub = self._call(self.client.v1.subscriptions.cancel, sub_id, {"prorate": False},
                         {"idempotency_key": key or f"cancel-{sub_id}"}).to_dict()
        # Money for the unused paid time goes back through Stripe; credits are never refunded.
        item = sub["items"]["data"][0]
        # stripe-python 15+: a StripeObject is not a dict (no .get): read plain dicts.
        invoice = self._call(self.client.v1.invoices.retrieve, sub["latest_invoice"], {"expand": ["payments"]}).to_dict()
        payments = (invoice.get("payments") or {}).get("data") or []
        intent = payments[0]["payment"].get("payment_intent") if payments else None
        # From when Stripe cancelled it, which a resend's replay repeats: the same amount under the
        # same refund key, however late the client retries (Stripe refuses a key with new params).
        cancelled_at = sub.get("canceled_at") or sub.get("ended_at") or int(time.time())
        amount = refund_for_unused_time(invoice["amount_paid"], item["current_period_start"],
                                        item["current_period_end"], cancelled_at)
        if intent and amount:
            self._call(self.client.v1.refunds.create, {"payment_intent": intent, "amount": amount},
                       {"idempotency_key": f"cancel-refund-{sub_id}"})
        return sub


def refund_for_unused_time(amount_paid: int, period_start: int, period_end: int, now: int) -> int:
    """Money back when a subscription is cancelled now: the unused share of what was paid."""
    if period_end <= period_start or now >= period_end:
        return 0
    unused = period_end - max(now, period_start)
    return amount_paid * unused // (period_end - period_start)


@lru_cache(maxsize=1)
def gateway() -> Gateway:
    s = config.settings()
    if s.stripe_secret_key:
        return StripeGateway(s.stripe_secret_key)
    if not s.is_local or config.in_lambda():  # the stand-in never runs deployed
        raise Unavailable("Billing is not configured: set STRIPE_SECRET_KEY.")
    from .standin import StandIn

    return StandIn()
