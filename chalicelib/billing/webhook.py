"""POST /stripe/webhook: verify the signature on the raw body, parse, dispatch. Nothing changes
unless the signature holds (any of the configured secrets, so they can rotate)."""
from __future__ import annotations

import json
from datetime import datetime

from ..credits.store import budget
from ..errors import InvalidRequest, InvalidSignature, NotFound
from .events import HANDLERS

TOLERANCE = 300  # seconds: Stripe's default; older signatures are replays


def verify(raw: bytes, signature: str | None, secrets: tuple[str, ...]) -> None:
    # stripe loads its HTTP client on import (~130 ms): only the webhook and billing pay for it.
    from stripe import SignatureVerificationError, WebhookSignature

    if not signature or not secrets:
        raise InvalidSignature("Missing Stripe-Signature, or no webhook secret configured.")
    payload = raw.decode("utf-8", errors="replace")
    for secret in secrets:
        try:
            WebhookSignature.verify_header(payload, signature, secret, TOLERANCE)
            return
        except SignatureVerificationError:
            continue
    raise InvalidSignature("The Stripe signature does not match, or is too old.")


def receive(raw: bytes, signature: str | None, secrets: tuple[str, ...], now: datetime) -> dict:
    verify(raw, signature, secrets)
    try:
        event = json.loads(raw)
        kind, obj = event["type"], event["data"]["object"]
        if not isinstance(kind, str) or not isinstance(obj, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest("The event is not a Stripe event.") from None
    from ..observe import count

    count("WebhookEvents", type=kind)
    handler = HANDLERS.get(kind)
    if handler is None:
        return {"received": True, "type": kind, "result": "ignored: not an event we act on"}
    try:
        # One time budget for the store's retries of the whole event: past it, 503, and Stripe
        # delivers again (every handler is keyed, so a half-applied event is completed once).
        with budget():
            result = handler(event, now)
    except NotFound:
        result = "ignored: no such workspace"
    from ..observe import logger

    logger.info("stripe event", extra={"event_id": event.get("id"), "type": kind, "result": result})
    return {"received": True, "type": kind, "result": result}
