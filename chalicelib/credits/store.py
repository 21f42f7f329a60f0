"""The few ways the credits code talks to DynamoDB: one transaction, one wallet read, one
partition query. Everything that counts requests counts these.

Faults, and who retries them. Three layers could repeat a request; each is bounded, and this
module is the outermost, so nothing stacks without bound:

1. botocore (1.44), as PynamoDB configures it (its default `retry_configuration` "LEGACY" is
   botocore's "standard" mode with total_max_attempts = 1 + max_retry_attempts (3) = 4): inside
   one API call it resends throttling codes (ProvisionedThroughputExceededException,
   ThrottlingException, RequestLimitExceeded, TransactionInProgressException) after a random
   0-1, 0-2, 0-4 s (at most 7 s in all), and 5xx answers, timeouts and dropped connections after
   0-25, 0-50, 0-100 ms, while its per-client retry quota lasts (500, less 5 per throttled and 14
   per other resend). It never resends a cancelled transaction or a TransactionConflictException.
   A resent TransactWriteItems keeps its ClientRequestToken, so DynamoDB applies it once.
2. PynamoDB: none of its own; it wraps botocore's errors (PutError, TransactWriteError, ...).
3. here: a TransactionConflict (another transaction on the same item) and whatever outlived
   botocore's retries (throttling, 5xx, a timeout), until MAX_ATTEMPTS or BUDGET seconds since the
   operation began, whichever comes first; then Unavailable: 503 with Retry-After.

A timeout or a dropped connection leaves the outcome unknown: the write may have applied. Sending
it again is safe because every write of this service is keyed (a put conditioned on its entry not
existing, or a condition on the state it moves from): a second send that finds the first applied
fails its condition, and the caller reads that as "already applied" and answers as the first time.
A failed condition is never a fault: it is raised at once as `Cancelled`, never retried here.
"""
from __future__ import annotations

import contextvars
import functools
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError
from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from ..errors import NotFound, Unavailable
from .models import WALLET_SK, Entry, Membership, SubscriptionLink, Wallet

T = TypeVar("T")

# Cancellation reasons that a later attempt can cure: a concurrent transaction on the item...
CONFLICT_REASONS = {"TransactionConflict"}
# ... or throttling of one of its items.
THROTTLED_REASONS = {"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
RETRYABLE = CONFLICT_REASONS | THROTTLED_REASONS
# Error codes of a whole request that a later attempt can cure (after botocore's own retries).
RETRYABLE_CODES = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "TransactionConflictException",
    "TransactionInProgressException",
}
MAX_ATTEMPTS = 16  # a hot wallet: each attempt learns the wallet as it is, and backs off
BUDGET = 5.0  # seconds for one operation's retries, well inside the API's 25 s Lambda timeout
RETRY_AFTER = 1  # seconds, told to the client with a 503

# What the retries wait with: tests replace these (a fake clock), nothing else does.
sleep: Callable[[float], None] = time.sleep
monotonic: Callable[[], float] = time.monotonic
rng = random.Random()

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("store_deadline", default=None)


@dataclass
class Put:
    item: Entry | Membership | Wallet | SubscriptionLink
    condition: Any = None


@dataclass
class Delete:
    item: Membership
    condition: Any = None


@dataclass
class Update:
    item: Wallet
    actions: list
    condition: Any = None


class Cancelled(Exception):
    """A transaction was cancelled by a condition: `failed` maps each op that failed to the item
    DynamoDB returned for it (ALL_OLD; None if the item does not exist)."""

    def __init__(self, failed: dict[int, dict | None]):
        super().__init__(f"conditions failed: {sorted(failed)}")
        self.failed = failed


def _connection() -> Connection:
    return Wallet._get_connection().connection


@contextmanager
def budget(seconds: float = BUDGET) -> Iterator[None]:
    """One operation's time for retries. Nested uses share the outermost: a charge that retries
    its transaction after a refused condition does not get a fresh budget each time."""
    if _deadline.get() is not None:
        yield
        return
    token = _deadline.set(monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def within_budget(fn: Callable[..., T]) -> Callable[..., T]:
    """Run a whole operation (all its attempts) within one budget."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with budget():
            return fn(*args, **kwargs)

    return wrapper


def out_of_time() -> bool:
    deadline = _deadline.get()
    return deadline is not None and monotonic() >= deadline


def backoff(attempt: int) -> None:
    """Before a write retried after a refused condition (a hot wallet): as after a conflict."""
    if attempt:
        sleep(_delay("conflict", attempt - 1))


def fault(e: PynamoDBException) -> str | None:
    """What kind of fault a PynamoDB error is: "conflict", "throttled", "unknown" (a timeout or a
    dropped connection: the request may have applied), or None (not a fault: a failed condition,
    a validation error, a bug)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, (BotoConnectionError, HTTPClientError)):
        return "unknown"
    response = getattr(cause, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    if code == "TransactionCanceledException":
        codes = {r.code for r in (getattr(e, "cancellation_reasons", None) or []) if r is not None}
        if "ConditionalCheckFailed" in codes or not codes or not codes <= RETRYABLE | {"None"}:
            return None
        return "conflict" if codes & CONFLICT_REASONS else "throttled"
    if code in ("TransactionConflictException", "TransactionInProgressException"):
        return "conflict"
    if code in RETRYABLE_CODES:
        return "throttled"
    return None


def _delay(kind: str, attempt: int) -> float:
    """Full jitter (AWS's advice for contended writes): up to 2, 4, 8 ... ms, at most 100 ms, for
    a conflict; up to 0.1, 0.2, 0.4 ... s, at most 1 s, for throttling."""
    # Conflicts clear in milliseconds; throttling outlived botocore's own backoff and needs longer.
    base, cap = (0.001, 0.1) if kind == "conflict" else (0.05, 1.0)
    return rng.uniform(0, min(cap, base * 2 ** (attempt + 1)))


def retrying(call: Callable[[], T], message: str) -> T:
    """Run one DynamoDB request, resending it on faults (see the module doc) within the attempts
    and the time budget. Anything that is not a fault is raised as it is."""
    with budget():
        for attempt in range(MAX_ATTEMPTS):
            try:
                return call()
            except PynamoDBException as e:
                kind = fault(e)
                if kind is None:
                    raise
                from ..observe import count

                count("StoreRetries", fault=kind)
                delay = _delay(kind, attempt)
                if attempt + 1 == MAX_ATTEMPTS or monotonic() + delay >= (_deadline.get() or 0):
                    break  # no attempt left, or none that could start within the budget
                sleep(delay)
    raise Unavailable(message, retry_after=RETRY_AFTER)


def as_unavailable(e: BaseException) -> Unavailable | None:
    """What a route answers for a fault that reached it without these retries (a read or write
    made outside this module): 503, never a 500."""
    if isinstance(e, PynamoDBException) and fault(e) is not None:
        return Unavailable("The store is busy; retry.", retry_after=RETRY_AFTER)
    return None


def transact(ops: list[Put | Update | Delete]) -> None:
    """One TransactWriteItems request. Raises Cancelled when a condition failed; resends it on
    conflicts, throttling and unknown outcomes (see the module doc), then Unavailable."""
    # PynamoDB sends deletes, then puts, then updates; remember where each op lands to map reasons back.
    order = [i for kind in (Delete, Put, Update) for i, op in enumerate(ops) if isinstance(op, kind)]

    def once() -> None:
        try:
            with TransactWrite(connection=_connection()) as tx:
                for op in ops:
                    if isinstance(op, Put):
                        tx.save(op.item, condition=op.condition, return_values="ALL_OLD")
                    elif isinstance(op, Delete):
                        tx.delete(op.item, condition=op.condition)
                    else:
                        tx.update(op.item, actions=op.actions, condition=op.condition, return_values="ALL_OLD")
        except TransactWriteError as e:
            failed = {
                order[pos]: (r.raw_item or None)
                for pos, r in enumerate(e.cancellation_reasons or [])
                if r is not None and r.code == "ConditionalCheckFailed"
            }
            if failed:
                raise Cancelled(failed) from None
            raise

    retrying(once, "The wallet is busy; retry with the same idempotency key.")


def read(call: Callable[[], T]) -> T:
    """A read, resent on faults like a write (a read is always safe to send again)."""
    return retrying(call, "The store is busy; retry.")


def get_wallet(workspace_id: str) -> Wallet:
    try:
        return read(lambda: Wallet.get(workspace_id, WALLET_SK, consistent_read=True))
    except DoesNotExist:
        raise NotFound("No such workspace.") from None


def get_entry(workspace_id: str, sk: str) -> Entry:
    """One ledger entry by its key (raises DoesNotExist)."""
    return read(lambda: Entry.get(workspace_id, sk, consistent_read=True))


def get_link(sub_id: str) -> SubscriptionLink | None:
    """The workspace a Stripe subscription bills, if it is one of ours."""
    try:
        return read(lambda: SubscriptionLink.get(f"sub#{sub_id}", "link", consistent_read=True))
    except DoesNotExist:
        return None


def wallet_key(workspace_id: str) -> Wallet:
    """A key-only instance for updates (no read)."""
    return Wallet(workspace_id, WALLET_SK)


def query_newest(workspace_id: str, range_condition: Any = None, limit: int | None = None,
                 start_key: dict | None = None) -> tuple[list[Wallet | Entry], dict | None]:
    """One consistent query of a partition by seq, newest first: the wallet (seq "~") comes first
    when the condition includes it, then entries."""
    raw = read(lambda: Wallet._get_connection().query(
        workspace_id,
        range_key_condition=range_condition,
        index_name="by_seq",
        scan_index_forward=False,
        consistent_read=True,
        limit=limit,
        exclusive_start_key=start_key,
    ))
    items = [
        Wallet.from_raw_data(r) if r["sk"]["S"] == WALLET_SK else Entry.from_raw_data(r)
        for r in raw.get("Items", [])
    ]
    return items, raw.get("LastEvaluatedKey")


def scan_all() -> Iterator[dict]:
    """Every item, raw, page by page (audit only)."""
    conn = Wallet._get_connection()
    start = None
    while True:
        page = read(lambda s=start: conn.scan(exclusive_start_key=s, consistent_read=True))
        yield from page.get("Items", [])
        start = page.get("LastEvaluatedKey")
        if not start:
            return
