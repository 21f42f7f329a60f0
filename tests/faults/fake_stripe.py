"""A fake network under stripe-python's real StripeClient: a `stripe.HTTPClient` that answers as
Stripe's API does (objects from tests/fixtures/stripe), after failing as scripted: a 429 rate
limit, a 500, or a dropped connection. Every request is recorded with its headers, so tests can
check the Idempotency-Key of each resend."""
from __future__ import annotations

import copy
import json
import re
from collections import deque
from urllib.parse import parse_qs, urlsplit

import stripe

from tests.stripe_events import Stripe

ERRORS = {
    "429": (429, {"error": {"type": "invalid_request_error", "code": "rate_limit",
                            "message": "Request rate limit exceeded. Learn more about rate limits here "
                                       "https://stripe.com/docs/rate-limits."}}),
    "500": (500, {"error": {"type": "api_error", "message": "Sorry, something went wrong."}}),
    "400": (400, {"error": {"type": "invalid_request_error", "code": "checkout_session_not_active",
                            "message": "Only Checkout Sessions with a status of `open` can be expired."}}),
}


class FakeStripeHTTP(stripe.HTTPClient):
    name = "fake"

    def __init__(self, ws: str, price: str = "price_creator_month", start: int = 0, end: int = 0):
        super().__init__()
        self.requests: list[dict] = []
        self.script: dict[str, deque] = {}  # "POST /v1/customers" -> outcomes before success
        self.objects = Stripe("new")
        self.sub = self.objects.subscription(ws, "sub_1", price, start, end, customer="cus_fake")
        self.sub["latest_invoice"] = "in_1"
        self.sub["schedule"] = None
        self.applied: list[str] = []  # requests that changed something at "Stripe"

    def fail(self, route: str, *outcomes: str) -> None:
        """The next requests to `route` ("POST /v1/customers") fail so, in order."""
        self.script.setdefault(route, deque()).extend(outcomes)

    def calls(self, route: str) -> list[dict]:
        return [r for r in self.requests if r["route"] == route]

    def keys(self, route: str) -> list[str]:
        return [r["headers"].get("Idempotency-Key") for r in self.calls(route)]

    # stripe-python waits between its own resends; the fake network does not make anyone wait.
    def _sleep_time_seconds(self, num_retries, *args) -> float:
        return 0

    def close(self) -> None:
        pass

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        path = urlsplit(url).path
        route = f"{method.upper()} {re.sub(r'/(sub|in)_[A-Za-z0-9_]+', r'/{id}', path)}"
        params = parse_qs(post_data.decode() if isinstance(post_data, bytes) else (post_data or ""))
        self.requests.append({"route": route, "path": path, "headers": dict(headers or {}), "params": params})
        queue = self.script.get(route)
        if queue:
            outcome = queue.popleft()
            if outcome == "network":
                raise stripe.APIConnectionError("Connection aborted: RemoteDisconnected", should_retry=True)
            status, body = ERRORS[outcome]
            return json.dumps(body), status, {"request-id": "req_fake"}
        return json.dumps(self.answer(route, params)), 200, {"request-id": "req_fake"}

    def answer(self, route: str, params: dict) -> dict:
        if route == "POST /v1/customers":
            self.applied.append(route)
            return {"id": "cus_fake", "object": "customer"}
        if route == "POST /v1/checkout/sessions":
            self.applied.append(route)
            n = len(self.applied)
            return {"id": f"cs_fake_{n}", "object": "checkout.session", "url": f"https://checkout.stripe.com/c/pay/cs_fake_{n}"}
        if route.startswith("POST /v1/checkout/sessions/") and route.endswith("/expire"):
            self.applied.append(route)
            return {"id": route.split("/")[4], "object": "checkout.session", "status": "expired"}
        if route == "POST /v1/billing_portal/sessions":
            return {"id": "bps_1", "object": "billing_portal.session", "url": "https://billing.stripe.com/p/session/1"}
        if route == "GET /v1/subscriptions/{id}":
            return copy.deepcopy(self.sub)
        if route == "POST /v1/subscriptions/{id}":
            self.applied.append(route)
            if "items[0][price]" in params:
                item = self.sub["items"]["data"][0]
                item["price"]["id"] = params["items[0][price]"][0]
                item["plan"]["id"] = params["items[0][price]"][0]
            if "cancel_at_period_end" in params:
                self.sub["cancel_at_period_end"] = params["cancel_at_period_end"][0] == "true"
            return copy.deepcopy(self.sub)
        if route == "DELETE /v1/subscriptions/{id}":
            self.applied.append(route)
            at = self.sub["items"]["data"][0]["current_period_start"] + 86400
            self.sub.update(status="canceled", ended_at=at, canceled_at=at)
            return copy.deepcopy(self.sub)
        if route == "POST /v1/subscription_schedules":
            self.applied.append(route)
            item = self.sub["items"]["data"][0]
            self.sub["schedule"] = "sub_sched_1"
            self.schedule = {"id": "sub_sched_1", "object": "subscription_schedule", "status": "active",
                             "phases": [{"items": [{"price": item["price"]["id"], "quantity": 1}],
                                         "start_date": item["current_period_start"],
                                         "end_date": item["current_period_end"]}]}
            return copy.deepcopy(self.schedule)
        if route == "GET /v1/subscription_schedules/{id}":
            return copy.deepcopy(self.schedule)
        if route == "POST /v1/subscription_schedules/{id}":
            self.applied.append(route)
            self.schedule["phases"].append({"items": [{"price": params["phases[1][items][0][price]"][0]}]})
            return copy.deepcopy(self.schedule)
        if route == "POST /v1/subscription_schedules/{id}/release":
            self.applied.append(route)
            self.sub["schedule"] = None
            self.schedule["status"] = "released"
            return copy.deepcopy(self.schedule)
        if route == "GET /v1/invoices/{id}":
            return {"id": "in_1", "object": "invoice", "amount_paid": 1200,
                    "payments": {"object": "list", "data": [
                        {"object": "invoice_payment", "payment": {"type": "payment_intent", "payment_intent": "pi_sub"}}]}}
        if route == "POST /v1/refunds":
            self.applied.append(route)
            return {"id": "re_1", "object": "refund", "amount": int(params["amount"][0]), "payment_intent": "pi_sub"}
        raise AssertionError(f"unexpected Stripe request {route}")
