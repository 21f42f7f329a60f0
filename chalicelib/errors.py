"""Domain errors and their HTTP status, in one place.

Every error a client can see is one of these; anything else is a bug and is answered as a
plain 500 with no details (see app.py).
"""
from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class InvalidRequest(ServiceError):
    status, code = 400, "invalid_request"


class InvalidSignature(ServiceError):
    status, code = 400, "invalid_signature"


class Unauthenticated(ServiceError):
    status, code = 401, "unauthenticated"


class InsufficientCredits(ServiceError):
    status, code = 402, "insufficient_credits"

    def __init__(self, required: int, available: int) -> None:
        super().__init__(
            f"This action needs {required} credits and {available} are available.",
            required=required,
            available=available,
        )


class MemberCapReached(ServiceError):
    status, code = 402, "member_cap_reached"

    def __init__(self, required: int, available: int) -> None:
        super().__init__(
            f"This action needs {required} credits and your cap leaves {available} this cycle.",
            required=required,
            available=available,
        )


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class IdempotencyConflict(ServiceError):
    status, code = 409, "idempotency_conflict"

    def __init__(self) -> None:
        super().__init__("This idempotency key was already used for a different request.")


class InvalidState(ServiceError):
    status, code = 409, "invalid_state"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class PaymentProviderError(ServiceError):
    """Stripe failed or could not be reached after its retries; nothing was changed here."""

    status, code = 502, "payment_provider_error"


class Unavailable(ServiceError):
    """A dependency stayed busy past the retry budget; safe to retry with the same key."""

    status, code = 503, "unavailable"
