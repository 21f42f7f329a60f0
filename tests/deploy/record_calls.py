"""A pytest plugin that records which AWS permissions the code under test needs.

Loaded into a separate pytest run (`-p tests.deploy.record_calls`, see test_template.py) over
functional flows. Every AWS request any botocore client makes during a test's *call* phase
(fixtures' table set-up and tear-down are not the service's requests) is turned into the IAM
permissions AWS checks for it, and written, deduplicated, to the JSON file named by
$RECORD_CALLS_OUT when the session ends.

Each permission is marked `handler` when the request was made under a function of app.py (a
route, the schedule, the queue handler: code that runs in Lambda with the stage's role), and
not when a test called chalicelib directly (e.g. `ledger.audit()`, which operators run from
their own machine); and `standin` when it was made by the local Stripe stand-in
(chalicelib/billing/standin.py), which serves only local stages without a Stripe key.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import botocore.client
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_PY = str(ROOT / "app.py")
STANDIN_PY = str(ROOT / "chalicelib" / "billing" / "standin.py")
# TransactWriteItems has no IAM action of its own: AWS checks each item's action on its table.
TRANSACT_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                         "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}

_recording: str | None = None  # the test being run (its call phase), else None
_seen: dict[tuple, dict] = {}


def _callers() -> set[str]:
    """Which of app.py and the Stripe stand-in the current request was made under."""
    found, frame = set(), sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename in (APP_PY, STANDIN_PY):
            found.add(frame.f_code.co_filename)
        frame = frame.f_back
    return found


def permissions(service: str, operation: str, params: dict) -> list[dict]:
    """The IAM permissions one request needs: action, resource kind, resource name, index."""
    def one(action, kind, name, index=None):
        return {"action": f"{service}:{action}", "kind": kind, "name": name, "index": index}

    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            return [one(TRANSACT_ITEM_ACTIONS[kind], "table", body["TableName"])
                    for item in params["TransactItems"] for kind, body in item.items()]
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [one(operation, "table", table) for table in params["RequestItems"]]
        if "TableName" in params:
            return [one(operation, "table", params["TableName"], params.get("IndexName"))]
        return [one(operation, "*", "*")]
    if service == "ssm" and ("Names" in params or "Name" in params):
        return [one(operation, "parameter", name) for name in params.get("Names") or [params["Name"]]]
    if service == "sqs":
        name = params.get("QueueName") or params.get("QueueUrl", "*").rsplit("/", 1)[-1]
        return [one(operation, "queue", name)]
    return [one(operation, "*", "*")]


_original = botocore.client.BaseClient._make_api_call


def _recording_call(self, operation_name, api_params):
    if _recording:
        service = self.meta.service_model.endpoint_prefix
        callers = _callers()
        for p in permissions(service, operation_name, api_params):
            p.update(operation=operation_name, handler=APP_PY in callers, standin=STANDIN_PY in callers)
            key = tuple(sorted(p.items(), key=lambda kv: kv[0]))
            _seen.setdefault(key, {**p, "first_seen_in": _recording})
    return _original(self, operation_name, api_params)


botocore.client.BaseClient._make_api_call = _recording_call


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    global _recording
    _recording = item.nodeid
    try:
        yield
    finally:
        _recording = None


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("RECORD_CALLS_OUT")
    if out:
        Path(out).write_text(json.dumps(sorted(_seen.values(), key=lambda p: json.dumps(p, sort_keys=True)),
                                        indent=1))
