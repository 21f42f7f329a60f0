"""Request parsing and error rendering for the routes: bodies are size-checked, parsed and
validated here, and every error leaves as {"error": {"code", "message"}} without a stack trace."""
from __future__ import annotations

import functools
import json
import logging
from typing import Any, Callable, TypeVar

from chalice import Response

from . import auth, config
from .errors import InvalidRequest, PayloadTooLarge, ServiceError

log = logging.getLogger("credits")
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
    """Turn domain errors into their JSON answer and anything unexpected into a bare 500."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except ServiceError as e:
            return error_response(e)
        except Exception:
            log.exception("unhandled error")
            return json_response({"error": {"code": "internal_error", "message": "Something went wrong."}}, 500)

    return wrapper


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
