"""The injector itself: its errors are the ones botocore makes from DynamoDB's answers, it reaches
every model's client, and it leaves nothing behind."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from pynamodb.exceptions import GetError, TransactWriteError

from chalicelib.credits import store
from chalicelib.credits.models import Entry, Wallet
from tests.faults.injector import KINDS, READS, Faults


def _wallet(ws: str = "ws_1") -> Wallet:
    return Wallet(ws, "wallet", name="w", kind="personal", created_at=0, anchor=0, cycle_start=0, cycle_end=1)


def _write(ws: str = "ws_1") -> None:
    """One TransactWriteItems of two items, straight through PynamoDB (no service retries)."""
    with store.TransactWrite(connection=store._connection()) as tx:
        tx.save(_wallet(ws))
        tx.save(Entry(ws, "op#k", seq="1", kind="grant", actor="t"))


@pytest.mark.parametrize("kind, status, code", [
    ("throughput", 400, "ProvisionedThroughputExceededException"),
    ("throttling", 400, "ThrottlingException"),
    ("request_limit", 400, "RequestLimitExceeded"),
    ("internal", 500, "InternalServerError"),
])
def test_errors_are_dynamodbs(ddb, kind, status, code):
    with Faults() as faults:
        faults.next(kind)
        with pytest.raises(TransactWriteError) as e:
            with store.TransactWrite(connection=store._connection()) as tx:
                tx.save(_wallet())
    assert e.value.cause_response_code == code
    botocore_error = e.value.cause.__cause__  # PynamoDB wraps botocore's ClientError
    assert isinstance(botocore_error, ClientError)
    assert botocore_error.response["Error"]["Code"] == code
    assert botocore_error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert faults.injected == {kind: 1}
    assert not Wallet.exists() or Wallet.count() == 0


def test_conflict_is_a_cancelled_transaction_with_reasons(ddb):
    with Faults() as faults:
        faults.next("conflict")
        with pytest.raises(TransactWriteError) as e:
            with store.TransactWrite(connection=store._connection()) as tx:
                tx.save(Entry("ws_1", "op#k", seq="1", kind="grant", actor="t"))
                tx.save(_wallet())
    assert e.value.cause_response_code == "TransactionCanceledException"
    assert e.value.cause.response["Error"]["Message"].endswith("[None, TransactionConflict]")
    assert [r and r.code for r in e.value.cancellation_reasons] == [None, "TransactionConflict"]


def test_conflict_on_a_single_item_write(ddb):
    with Faults() as faults:
        faults.next("conflict")
        with pytest.raises(Exception) as e:
            _wallet().save()
    assert e.value.cause_response_code == "TransactionConflictException"


def test_timeout_after_write_applies_then_raises(ddb):
    with Faults() as faults:
        faults.next("timeout_after_write")
        with pytest.raises(TransactWriteError) as e:
            _write()
    assert isinstance(e.value.cause, ReadTimeoutError)
    assert Wallet.count("ws_1") == 2  # the wallet and the entry: it applied


def test_timeout_before_write_applies_nothing(ddb):
    with Faults() as faults:
        faults.next("timeout_before_write")
        with pytest.raises(TransactWriteError) as e:
            _write()
    assert isinstance(e.value.cause, ReadTimeoutError)
    assert Wallet.count("ws_1") == 0


def test_reads_only_when_asked_and_every_models_client(ddb):
    _write()
    with Faults() as faults:
        faults.next("throttling", ops=READS)
        with pytest.raises(GetError):
            Entry.get("ws_1", "op#k")  # Entry has its own connection and client
        assert Entry.get("ws_1", "op#k").kind == "grant"
    assert faults.calls == {"GetItem": 2}


def test_rate_is_seeded_and_hooks_go_away(ddb):
    def run():
        with Faults(seed=7) as faults:
            faults.rate, faults.kinds = 0.5, ("throttling", "internal")
            for i in range(20):
                try:
                    _write(f"ws_{i}")
                except TransactWriteError:
                    pass
        return faults.injected

    first = run()
    Wallet.delete_table()
    store.Wallet.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    assert run() == first and sum(first.values()) > 0
    _write("ws_after")  # no hooks left
    assert Wallet.count("ws_after") == 2


def test_kinds():
    assert KINDS == ("conflict", "throughput", "throttling", "request_limit", "internal",
                     "timeout_after_write", "timeout_before_write")
    with pytest.raises(ValueError):
        Faults().next("nope")
