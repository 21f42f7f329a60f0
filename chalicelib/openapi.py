"""The API as OpenAPI 3.1, served at GET /v1/openapi.json. Request bodies come from the pydantic
models the routes validate with; responses are described here; tests/functional/test_openapi.py
holds this list and app.py's routes together."""
from __future__ import annotations

from functools import lru_cache

INT = {"type": "integer"}
STR = {"type": "string"}
NULLABLE_STR = {"type": ["string", "null"]}


def _obj(props: dict, required: list[str] | None = None, extra: bool = True) -> dict:
    out = {"type": "object", "properties": props, "required": required if required is not None else list(props)}
    if not extra:
        out["additionalProperties"] = False
    return out


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS = {
    "Error": _obj({"error": _obj({"code": STR, "message": STR, "required": INT, "available": INT},
                                 ["code", "message"])}),
    "Balance": _obj({"available": INT, "plan": INT, "topup": INT, "held": INT}),
    "Estimate": _obj({"service": STR, "credits": INT, "free": {"type": "boolean"}}),
    "Me": _obj({"user_id": STR, "workspaces": {"type": "array", "items": _obj(
        {"workspace_id": STR, "name": STR, "kind": {"enum": ["personal", "team"]},
         "role": {"enum": ["owner", "admin", "member"]}})}}),
    "Subscription": _obj({
        "workspace_id": STR, "name": STR, "kind": STR,
        "plan": _obj({"id": STR, "name": STR}), "interval": {"enum": ["month", "year", None]},
        "status": {"enum": ["active", "ending", "past_due"]}, "balance": _ref("Balance"),
        "cycle": _obj({"start": {"type": "string", "format": "date"}, "end": {"type": "string", "format": "date"}}),
        "renews_on": {"type": "string", "format": "date"}, "ends_on": {"type": ["string", "null"], "format": "date"},
        "pending_change": {"oneOf": [{"type": "null"}, _obj({"plan": STR, "interval": STR, "effective_on": STR})]},
        "manage_payments": {"type": "boolean"},
    }),
    "Entry": _obj({
        "entry_id": STR, "at": {"type": "string", "format": "date-time"},
        "kind": {"enum": ["grant", "expire", "charge", "hold", "capture", "release", "topup", "refund", "adjust"]},
        "plan_delta": INT, "topup_delta": INT, "held_delta": INT, "balance": _ref("Balance"),
        "ref": {"type": "object"}, "actor": STR,
    }),
    "LedgerPage": _obj({"entries": {"type": "array", "items": _ref("Entry")}, "next_cursor": NULLABLE_STR}),
    "Charge": _obj({"charge_id": STR, "credits": INT, "from_plan": INT, "from_topup": INT, "balance": _ref("Balance")}),
    "Hold": _obj({"hold_id": STR, "credits": INT, "expires_at": {"type": "string", "format": "date-time"},
                  "balance": _ref("Balance")}),
    "Capture": _obj({"hold_id": STR, "captured": INT, "returned": INT, "expired": INT, "balance": _ref("Balance")},
                    ["hold_id", "captured", "returned", "balance"]),
    "Release": _obj({"hold_id": STR, "returned": INT, "expired": INT, "balance": _ref("Balance")},
                    ["hold_id", "returned", "balance"]),
    "Checkout": _obj({"checkout_url": STR, "session_id": STR}),
    "Portal": _obj({"portal_url": STR}),
    "Member": _obj({"user_id": STR, "role": {"enum": ["owner", "admin", "member"]},
                    "cycle_cap": {"type": ["integer", "null"]}, "spent_this_cycle": INT}),
    "WebhookResult": _obj({"received": {"type": "boolean"}, "type": STR, "result": STR}),
    "Catalog": _obj({"currency": STR, "plans": {"type": "array"}, "packs": {"type": "array"},
                     "services": {"type": "array"}}),
}

WS = {"name": "ws", "in": "path", "required": True, "schema": STR}
HOLD = {"name": "hold_id", "in": "path", "required": True, "schema": STR}
USER = {"name": "user_id", "in": "path", "required": True, "schema": STR}
KEY = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": STR}

# (method, path, summary, body model name, success status, response schema, parameters, auth)
ROUTES = [
    ("get", "/v1/catalog", "Plans, packs and prices of actions", None, 200, "Catalog", [], False),
    ("get", "/v1/openapi.json", "This document", None, 200, None, [], False),
    ("post", "/v1/estimate", "What an action would cost", "EstimateBody", 200, "Estimate", [], False),
    ("get", "/v1/me", "The caller and their workspaces (opens the personal one)", None, 200, "Me", [], True),
    ("post", "/v1/workspaces", "Open a team workspace on free (with a key, once per key)", "WorkspaceBody", 201,
     "Subscription", [KEY], True),
    ("put", "/v1/workspaces/{ws}/members/{user_id}", "Add a member or change their role or cap", "MemberBody",
     200, "Member", [WS, USER], True),
    ("delete", "/v1/workspaces/{ws}/members/{user_id}", "Remove a member", None, 204, None, [WS, USER], True),
    ("get", "/v1/workspaces/{ws}/subscription", "Plan, status, balance and cycle", None, 200, "Subscription", [WS], True),
    ("get", "/v1/workspaces/{ws}/ledger", "Ledger entries, newest first", None, 200, "LedgerPage",
     [WS, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
      {"name": "cursor", "in": "query", "schema": STR}, {"name": "member", "in": "query", "schema": STR}], True),
    ("post", "/v1/workspaces/{ws}/charges", "Charge an action", "ChargeBody", 201, "Charge", [WS, KEY], True),
    ("post", "/v1/workspaces/{ws}/holds", "Hold an action's estimated cost", "HoldBody", 201, "Hold", [WS, KEY], True),
    ("post", "/v1/workspaces/{ws}/holds/{hold_id}/capture", "Capture a hold", "CaptureBody", 200, "Capture",
     [WS, HOLD], True),
    ("post", "/v1/workspaces/{ws}/holds/{hold_id}/release", "Release a hold", None, 200, "Release", [WS, HOLD], True),
    ("post", "/v1/workspaces/{ws}/checkout/subscription", "Start a subscription checkout", "PlanBody", 201,
     "Checkout", [WS, KEY], True),
    ("post", "/v1/workspaces/{ws}/checkout/topup", "Start a top-up checkout", "PackBody", 201, "Checkout",
     [WS, KEY], True),
    ("post", "/v1/workspaces/{ws}/portal", "Open Stripe's customer portal", None, 200, "Portal", [WS], True),
    ("post", "/v1/workspaces/{ws}/subscription/change", "Upgrade now or downgrade at period end", "PlanBody",
     200, "Subscription", [WS], True),
    ("post", "/v1/workspaces/{ws}/subscription/cancel", "Cancel at period end or now", "CancelBody", 200,
     "Subscription", [WS], True),
    ("post", "/v1/workspaces/{ws}/subscription/resume", "Withdraw a cancellation", None, 200, "Subscription",
     [WS], True),
    ("post", "/stripe/webhook", "Stripe's events (signed)", None, 200, "WebhookResult",
     [{"name": "Stripe-Signature", "in": "header", "required": True, "schema": STR}], False),
]
ERRORS = {"400": "invalid_request", "401": "unauthenticated", "402": "insufficient_credits or member_cap_reached",
          "403": "forbidden", "404": "not_found", "409": "idempotency_conflict or invalid_state",
          "413": "payload_too_large", "502": "payment_provider_error", "503": "unavailable"}


@lru_cache(maxsize=1)
def document() -> dict:
    from . import bodies

    schemas = dict(SCHEMAS)
    paths: dict = {}
    for method, path, summary, body, status, response, params, auth in ROUTES:
        op: dict = {"summary": summary, "operationId": f"{method}_{path}".replace("/", "_").replace("{", "")
                    .replace("}", "").replace(".", "_").strip("_"), "parameters": params}
        if body:
            model = getattr(bodies, body)
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[body] = schema
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
        ok: dict = {"description": "OK"}
        if response:
            ok["content"] = {"application/json": {"schema": _ref(response)}}
        elif path.endswith("openapi.json"):
            ok["content"] = {"application/json": {"schema": {"type": "object"}}}
        op["responses"] = {str(status): ok, **{code: {"description": text, "content": {
            "application/json": {"schema": _ref("Error")}}} for code, text in ERRORS.items()}}
        if auth:
            op["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "studio-credits", "version": "1", "description":
                 "Subscriptions and credits for a creative studio. Errors are {error: {code, message}}."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                                          "bearerFormat": "JWT"}}},
    }
