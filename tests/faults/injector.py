"""Faults as DynamoDB really produces them, injected on the real botocore client that PynamoDB
uses (no stub stands in for the code under test).

    from tests.faults.injector import Faults, KINDS

    with Faults(seed=123) as faults:
        faults.next("conflict", times=3)   # the next 3 write calls fail this way
        faults.allow(1); faults.next("internal", times=9)  # let one through, then fail 9
        faults.next("throttling", ops=READS)  # reads too, when asked (GetItem, Query, ...)
        faults.rate = 0.1                  # or: each write call fails with probability 0.1,
        faults.kinds = ("conflict", "throttling", "timeout_after_write")  # kind drawn (seeded)
        faults.ops = WRITES + READS        # the calls `rate` applies to (default: WRITES)
        faults.injected                    # Counter: kind -> how many injected so far
        faults.calls                       # Counter: operation -> how many calls were made

How: handlers on the client's event system. `before-call.dynamodb.<Op>` answers with the HTTP
response DynamoDB sends for that error (status, headers, JSON body with its `__type`), run through
botocore's own JSON parser exactly as a real response is, so PynamoDB and the service see the
same exception, code and `CancellationReasons`. `timeout_after_write` lets the real call apply,
then raises botocore's ReadTimeoutError from `after-call`: the caller cannot know it applied.
`timeout_before_write` raises the same error before anything is sent.

An injected fault stands for what one API call finally returns to PynamoDB. botocore's own retry
layer (standard mode, 4 attempts, inside `_make_request`) is behind `before-call`, so it is not
exercised here: each fault is the answer after botocore gave up (or chose not to retry).

The hooks reach every client PynamoDB makes: each model class has its own connection and botocore
client, made lazily (and made again after `models.bind()`), so `Connection.client` is wrapped for
the duration and hooks each client the first time it is handed out.
"""
from __future__ import annotations

import json
import random
import threading
import uuid
import zlib
from collections import Counter, deque
from typing import Iterable

from botocore.awsrequest import AWSResponse
from botocore.endpoint import convert_to_response_dict
from botocore.exceptions import ReadTimeoutError
from botocore.parsers import create_parser
from pynamodb.connection import base as pynamodb_base

KINDS = ("conflict", "throughput", "throttling", "request_limit", "internal",
         "timeout_after_write", "timeout_before_write")

WRITES = ("TransactWriteItems", "UpdateItem", "PutItem", "DeleteItem", "BatchWriteItem")
READS = ("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems")

_DDB = "com.amazonaws.dynamodb.v20120810#"
# kind -> (HTTP status, __type, message), as DynamoDB sends them.
_ERRORS = {
    "throughput": (400, _DDB + "ProvisionedThroughputExceededException",
                   "The level of configured provisioned throughput for the table was exceeded. "
                   "Consider increasing your provisioning level with the UpdateTable API."),
    "throttling": (400, "com.amazon.coral.availability#ThrottlingException",
                   "Rate of requests exceeds the allowed throughput."),
    "request_limit": (400, _DDB + "RequestLimitExceeded",
                      "Throughput exceeds the current throughput limit for your account. Please contact "
                      "AWS Support at https://aws.amazon.com/support request a limit increase"),
    "internal": (500, _DDB + "InternalServerError", "Internal server error"),
}

_active: "Faults | None" = None
_original_client = pynamodb_base.Connection.client


def _hooked_client(self):
    client = _original_client.fget(self)
    if _active is not None:
        _active._hook(client)
    return client


class _Raw:
    """The raw stream of an AWSResponse."""

    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


def dynamodb_error(kind: str, model, params: dict) -> tuple[AWSResponse, dict]:
    """(http response, parsed response) for an error of this kind on this call, as botocore makes
    them from DynamoDB's answer."""
    if kind == "conflict":
        if model.name == "TransactWriteItems":
            # The conflicting item says TransactionConflict, the others "None". PynamoDB sends puts
            # before updates: the last item is the contended wallet.
            n = len(json.loads(params["body"])["TransactItems"]) if params.get("body") else 1
            reasons = [{"Code": "None"}] * (n - 1) + [
                {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
            body = {"__type": _DDB + "TransactionCanceledException", "CancellationReasons": reasons,
                    "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                               f"[{', '.join(r['Code'] for r in reasons)}]"}
        else:  # a single-item write meeting a transaction in progress on the item
            body = {"__type": _DDB + "TransactionConflictException",
                    "message": "Operation was rejected because there is an ongoing transaction for the item."}
        status = 400
    else:
        status, type_, message = _ERRORS[kind]
        body = {"__type": type_, "message": message}
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {
        "x-amzn-RequestId": uuid.uuid4().hex.upper(),
        "x-amz-crc32": str(zlib.crc32(raw) & 0xFFFFFFFF),
        "Content-Type": "application/x-amz-json-1.0",
        "Content-Length": str(len(raw)),
        "Connection": "keep-alive",
    }
    http = AWSResponse("https://dynamodb.eu-west-1.amazonaws.com/", status, headers, _Raw(raw))
    response_dict = convert_to_response_dict(http, model)
    parser = create_parser(model.metadata["protocol"])
    parsed = parser.parse(response_dict, model.output_shape)
    error_shape = model.service_model.shape_for_error_code(parsed.get("Error", {}).get("Code"))
    if error_shape is not None:  # modeled error fields (CancellationReasons), as botocore adds them
        parsed.update(parser.parse(response_dict, error_shape))
    parsed["ResponseMetadata"]["RetryAttempts"] = 0
    return http, parsed


class Faults:
    """Inject DynamoDB faults for the duration of a `with` block."""

    def __init__(self, seed: int | None = None, kinds: Iterable[str] = KINDS, rate: float = 0.0,
                 ops: Iterable[str] = WRITES):
        self.random = random.Random(seed)
        self.kinds = tuple(kinds)
        self.rate = rate
        self.ops = tuple(ops)  # operations `rate` applies to
        self.injected: Counter = Counter()
        self.calls: Counter = Counter()  # every DynamoDB call made, by operation
        self._queue: deque = deque()  # (kind, ops) for scheduled faults, in order
        self._lock = threading.Lock()
        self._clients: list = []
        self._uid = f"faults-{id(self)}"

    # --- scheduling -------------------------------------------------------------------------
    def next(self, kind: str, times: int = 1, ops: Iterable[str] = WRITES) -> "Faults":
        """The next `times` calls of `ops` (by default: writes) fail this way."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {KINDS}")
        with self._lock:
            self._queue.extend([(kind, tuple(ops))] * times)
        return self

    def allow(self, times: int = 1, ops: Iterable[str] = WRITES) -> "Faults":
        """The next `times` calls of `ops` go through untouched (then the faults queued after)."""
        with self._lock:
            self._queue.extend([(None, tuple(ops))] * times)
        return self

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self.rate = 0.0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _draw(self, op: str) -> str | None:
        with self._lock:
            self.calls[op] += 1
            if self._queue and op in self._queue[0][1]:
                kind = self._queue.popleft()[0]
                if kind is None:
                    return None
            elif self.rate and op in self.ops and self.kinds and self.random.random() < self.rate:
                kind = self.random.choice(self.kinds)
            else:
                return None
            self.injected[kind] += 1
            return kind

    # --- hooks ------------------------------------------------------------------------------
    def _before_call(self, model, params, context, **_):
        kind = self._draw(model.name)
        if kind is None:
            return None
        if kind == "timeout_after_write":
            context["_fault_timeout_after"] = True
            return None  # let it apply; after-call raises
        if kind == "timeout_before_write":
            raise ReadTimeoutError(endpoint_url=params.get("url", "https://dynamodb"))
        return dynamodb_error(kind, model, params)

    def _after_call(self, context, **_):
        if context.pop("_fault_timeout_after", False):
            raise ReadTimeoutError(endpoint_url="https://dynamodb")

    def _hook(self, client) -> None:
        if any(c is client for c in self._clients):
            return
        with self._lock:
            if any(c is client for c in self._clients):
                return
            client.meta.events.register_first("before-call.dynamodb", self._before_call,
                                              unique_id=f"{self._uid}-before")
            client.meta.events.register_first("after-call.dynamodb", self._after_call,
                                              unique_id=f"{self._uid}-after")
            self._clients.append(client)

    def __enter__(self) -> "Faults":
        global _active
        if _active is not None:
            raise RuntimeError("Faults is already active")
        _active = self
        pynamodb_base.Connection.client = property(_hooked_client)
        return self

    def __exit__(self, *exc) -> None:
        global _active
        pynamodb_base.Connection.client = _original_client
        _active = None
        for client in self._clients:
            client.meta.events.unregister("before-call.dynamodb", self._before_call,
                                          unique_id=f"{self._uid}-before")
            client.meta.events.unregister("after-call.dynamodb", self._after_call,
                                          unique_id=f"{self._uid}-after")
        self._clients.clear()
