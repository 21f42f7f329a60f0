"""The few ways the credits code talks to DynamoDB: one transaction, one wallet read, one
partition query. Everything that counts requests counts these."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Iterator

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from ..errors import NotFound, Unavailable
from .models import WALLET_SK, Entry, Membership, Wallet

# Reasons DynamoDB gives for cancelling a transaction that a retry can cure.
RETRYABLE = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
MAX_ATTEMPTS = 16  # a hot wallet: each attempt learns the wallet as it is, and backs off


@dataclass
class Put:
    item: Entry | Membership | Wallet
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


def backoff(attempt: int) -> None:
    """Full jitter (AWS's advice for contended writes): 0 to 2, 4, 8 ... ms, at most 100 ms."""
    if attempt:
        time.sleep(random.uniform(0, min(0.1, 0.001 * 2**attempt)))


def transact(ops: list[Put | Update]) -> None:
    """One TransactWriteItems request. Raises Cancelled when a condition failed; retries a bounded
    number of times on conflicts and throttling, then Unavailable."""
    # PynamoDB sends puts before updates; remember where each op lands to map reasons back.
    order = [i for i, op in enumerate(ops) if isinstance(op, Put)] + [
        i for i, op in enumerate(ops) if isinstance(op, Update)
    ]
    for attempt in range(MAX_ATTEMPTS):
        try:
            with TransactWrite(connection=_connection()) as tx:
                for op in ops:
                    if isinstance(op, Put):
                        tx.save(op.item, condition=op.condition, return_values="ALL_OLD")
                    else:
                        tx.update(op.item, actions=op.actions, condition=op.condition, return_values="ALL_OLD")
            return
        except TransactWriteError as e:
            reasons = e.cancellation_reasons or []
            failed = {
                order[pos]: (r.raw_item or None)
                for pos, r in enumerate(reasons)
                if r is not None and r.code == "ConditionalCheckFailed"
            }
            if failed:
                raise Cancelled(failed) from None
            codes = {r.code for r in reasons if r is not None}
            if codes & RETRYABLE or e.cause_response_code in RETRYABLE:
                backoff(attempt)
                continue
            raise
    raise Unavailable("The wallet is busy; retry with the same idempotency key.", retry_after=1)


def get_wallet(workspace_id: str) -> Wallet:
    try:
        return Wallet.get(workspace_id, WALLET_SK, consistent_read=True)
    except DoesNotExist:
        raise NotFound("No such workspace.") from None


def wallet_key(workspace_id: str) -> Wallet:
    """A key-only instance for updates (no read)."""
    return Wallet(workspace_id, WALLET_SK)


def query_newest(workspace_id: str, range_condition: Any = None, limit: int | None = None,
                 start_key: dict | None = None) -> tuple[list[Wallet | Entry], dict | None]:
    """One consistent query of a partition by seq, newest first: the wallet (seq "~") comes first
    when the condition includes it, then entries."""
    raw = Wallet._get_connection().query(
        workspace_id,
        range_key_condition=range_condition,
        index_name="by_seq",
        scan_index_forward=False,
        consistent_read=True,
        limit=limit,
        exclusive_start_key=start_key,
    )
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
        page = conn.scan(exclusive_start_key=start, consistent_read=True)
        yield from page.get("Items", [])
        start = page.get("LastEvaluatedKey")
        if not start:
            return
