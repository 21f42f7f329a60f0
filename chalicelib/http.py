"""Request parsing and error rendering for the routes: bodies are size-checked, parsed and
validated here, and every error leaves as {"error": {"code", "message"}} without a stack trace."""
from __future__ import annotations

import functools
import json
from typing import Any, Callable, TypeVar

from chalice import Response

from . import auth, config
from .errors import InvalidRequest, PayloadTooLarge, ServiceError

M = TypeVar("M")


def __getattr__(name: str):
    # Body models (pydantic) load on first use: routes without a body, like balance reads and
    # the catalog, do not pay for importing pydantic on a cold start.
    from . import bodies

    try:
        return getattr(bodies, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json", **(headers or {})})


def error_response(err: ServiceError) -> Response:
    headers = {}
    if "retry_after" in err.extra:
        headers["Retry-After"] = str(err.extra["retry_after"])
    body = err.body()
    body["error"].pop("retry_after", None)
    return json_response(body, err.status, headers)


def handled(view: Callable) -> Callable:
    """Turn domain errors into their JSON answer, a DynamoDB fault (throttling, 5xx, timeout) into
    503 with Retry-After, and anything unexpected into a bare 500, and log one structured line per
    request: operation, workspace, status, error code. Never a header, a body or a token."""
    from .observe import count, logger

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        operation, workspace = view.__name__, kwargs.get("ws")
        try:
            response = view(*args, **kwargs)
            status, code = getattr(response, "status_code", 200), None
        except ServiceError as e:
            response, status, code = error_response(e), e.status, e.code
        except Exception as e:
            busy = _store_fault(e)
            if busy is None:
                logger.exception("unhandled error", extra={"operation": operation, "workspace": workspace})
                count("Failures", operation=operation)
                return json_response({"error": {"code": "internal_error", "message": "Something went wrong."}}, 500)
            # A DynamoDB fault that a read or write outside the store's retries met: busy, not broken.
            logger.warning("store fault", extra={"operation": operation, "workspace": workspace})
            response, status, code = error_response(busy), busy.status, busy.code
        logger.info("request", extra={"operation": operation, "workspace": workspace, "status": status,
                                      **({"error": code} if code else {})})
        if status == 402:
            count("Refusals", reason=code)
        elif operation == "charge" and status == 201:
            count("Charges")
        elif status >= 500:
            count("Failures", operation=operation)
        return response

    return wrapper


def _store_fault(e: Exception) -> ServiceError | None:
    """503 for a DynamoDB throttle, 5xx or timeout (see credits/store.py), else None. The credits
    code retries its requests itself; this is the net for a request made elsewhere without."""
    import sys

    if "pynamodb" not in sys.modules:
        return None
    from .credits.store import as_unavailable

    return as_unavailable(e)


def check_size(request) -> bytes:
    raw = request.raw_body or b""
    if len(raw) > config.settings().max_body_bytes:
        raise PayloadTooLarge(f"The body is over {config.settings().max_body_bytes} bytes.")
    return raw


def parse(request, model: type[M]) -> M:
    raw = check_size(request)
    if not raw.strip():
        raw = b"{}"
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequest(f"{where}: {first['msg']}") from None


def principal(request) -> auth.Principal:
    headers = request.headers or {}
    return auth.authenticate(headers.get("authorization"))


def query_int(request, name: str, default: int, lo: int, hi: int) -> int:
    value = (request.query_params or {}).get(name)
    if value is None or value == "":
        return default
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise InvalidRequest(f"{name} must be an integer from {lo} to {hi}.")
    return int(value)
