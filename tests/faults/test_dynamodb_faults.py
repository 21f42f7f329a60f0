"""DynamoDB faults as the service meets them in production, injected on the real botocore client:
conflicts and throttling are retried within a bound and then answered 503 with Retry-After and
nothing deducted; a write whose answer was lost is answered as already applied, never twice; a
failed condition is the 402/409/replay it stands for, never a fault."""
from __future__ import annotations

import pytest

from chalicelib.credits import ledger
from tests.faults.conftest import balance, entries
from tests.faults.injector import READS, Faults

HD = {"quality": "hd"}  # 20 credits
GRANT = ("grant", 50, 0, 0)
CHARGE_20 = ("charge", -20, 0, 0)
THROTTLES = ["throughput", "throttling", "request_limit", "internal"]
# The store's waits between attempts with jitter at its maximum: conflicts 2, 4, 8 ... ms up to
# 100 ms; throttling and 5xx 100, 200, 400, 800 ms, then 1 s, within its 5 s budget.
CONFLICT_WAITS = [0.002, 0.004, 0.008, 0.016, 0.032, 0.064] + [0.1] * 9
THROTTLE_WAITS = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def charge(api, ws, key="k1", options=HD):
    return api.charge(ws, "alice", "image", options, key=key)


def assert_busy(r):
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.json["error"]["code"] == "unavailable"
    assert "retry" in r.json["error"]["message"]


def test_conflicts_then_success_charge_once(api, store_time):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next("conflict", times=3)
        r = charge(api, ws)
    assert r.status_code == 201
    assert (r.json["credits"], r.json["balance"]) == (20, {"available": 30, "plan": 30, "topup": 0, "held": 0})
    assert faults.injected == {"conflict": 3}
    assert faults.calls["TransactWriteItems"] == 4
    assert store_time.sleeps == [0.002, 0.004, 0.008]
    assert entries(api, ws) == [CHARGE_20, GRANT]


def test_endless_conflicts_503_nothing_deducted_then_the_retry_charges_once(api, store_time):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next("conflict", times=100)
        r = charge(api, ws)
    assert_busy(r)
    assert faults.calls["TransactWriteItems"] == 16  # MAX_ATTEMPTS, then it gives up
    assert store_time.sleeps == CONFLICT_WAITS
    assert balance(api, ws) == {"available": 50, "plan": 50, "topup": 0, "held": 0}
    assert entries(api, ws) == [GRANT]
    again = charge(api, ws)
    assert (again.status_code, again.json["balance"]["available"]) == (201, 30)
    assert entries(api, ws) == [CHARGE_20, GRANT]


@pytest.mark.parametrize("kind", THROTTLES)
def test_throttling_and_5xx_then_success(api, store_time, kind):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next(kind, times=2)
        r = charge(api, ws)
    assert (r.status_code, r.json["balance"]["available"]) == (201, 30)
    assert faults.calls["TransactWriteItems"] == 3
    assert store_time.sleeps == [0.1, 0.2]
    assert entries(api, ws) == [CHARGE_20, GRANT]


@pytest.mark.parametrize("kind", THROTTLES)
def test_endless_throttling_is_503_within_the_time_budget(api, store_time, kind):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next(kind, times=100)
        r = charge(api, ws)
    assert_busy(r)
    # 8 attempts: the 9th could not start within the 5 s budget (4.5 s waited, 1 s more to wait).
    assert faults.calls["TransactWriteItems"] == 8
    assert store_time.sleeps == THROTTLE_WAITS
    assert sum(store_time.sleeps) == pytest.approx(4.5)
    assert balance(api, ws)["available"] == 50
    assert entries(api, ws) == [GRANT]


def test_a_throttled_transaction_item_is_retried_like_a_throttled_request(api, store_time):
    """DynamoDB may also cancel a transaction because one item was throttled."""
    from chalicelib.credits import store

    e = type("E", (store.PynamoDBException,), {})("x")
    reason = type("R", (), {"code": "ThrottlingError"})()
    e.cause = type("C", (), {"response": {"Error": {"Code": "TransactionCanceledException"}},
                             "cancellation_reasons": [None, reason]})()
    e.cancellation_reasons = [None, reason]
    assert store.fault(e) == "throttled"
    reason.code = "ConditionalCheckFailed"
    assert store.fault(e) is None


def test_timeout_after_the_write_applied_is_answered_as_applied(api, store_time):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next("timeout_after_write")
        r = charge(api, ws)
    # The service sends the write again; its condition finds the charge applied: the first answer.
    assert r.status_code == 201
    assert (r.json["credits"], r.json["balance"]["available"]) == (20, 30)
    assert faults.calls["TransactWriteItems"] == 2
    again = charge(api, ws)
    assert (again.status_code, again.json) == (201, r.json)
    assert entries(api, ws) == [CHARGE_20, GRANT]


def test_answers_lost_until_503_then_the_clients_retry_gets_the_first_answer(api, store_time):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next("timeout_after_write", times=100)
        r = charge(api, ws)
    assert_busy(r)  # the outcome is unknown to the service too: retry with the same key
    assert faults.calls["TransactWriteItems"] == 8
    again = charge(api, ws)
    assert again.status_code == 201
    assert again.json["balance"] == {"available": 30, "plan": 30, "topup": 0, "held": 0}  # 30, not 10
    assert again.json["charge_id"].startswith("chg_")
    assert (again.json["credits"], again.json["from_plan"], again.json["from_topup"]) == (20, 20, 0)
    assert entries(api, ws) == [CHARGE_20, GRANT]
    assert charge(api, ws).json == again.json
    assert ledger.audit().clean


def test_timeout_before_the_write_is_sent_again_and_applies_once(api, store_time):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next("timeout_before_write", times=2)
        r = charge(api, ws)
    assert (r.status_code, r.json["balance"]["available"]) == (201, 30)
    assert faults.calls["TransactWriteItems"] == 3
    assert entries(api, ws) == [CHARGE_20, GRANT]


# --- a failed condition is an answer, never a fault -------------------------------------------

def test_insufficient_credits_is_402_at_once(api, store_time):
    ws = api.workspace("alice")
    with Faults() as faults:
        r = api.charge(ws, "alice", "image", {"quality": "ultra", "count": 2}, key="big")  # 80 > 50
    assert (r.status_code, r.json["error"]["code"]) == (402, "insufficient_credits")
    assert (r.json["error"]["required"], r.json["error"]["available"]) == (80, 50)
    assert faults.calls == {"TransactWriteItems": 1}  # one refused write, no retry loop
    assert store_time.sleeps == []
    assert entries(api, ws) == [GRANT]


def test_a_replay_is_the_first_answer_at_once(api, store_time):
    ws = api.workspace("alice")
    first = charge(api, ws)
    with Faults() as faults:
        r = charge(api, ws)
    assert (r.status_code, r.json) == (201, first.json)
    assert faults.calls["TransactWriteItems"] == 1
    assert store_time.sleeps == []


def test_the_same_key_for_another_request_is_409_at_once(api, store_time):
    ws = api.workspace("alice")
    charge(api, ws)
    with Faults() as faults:
        r = charge(api, ws, options={"quality": "standard"})
    assert (r.status_code, r.json["error"]["code"]) == (409, "idempotency_conflict")
    assert faults.calls["TransactWriteItems"] == 1
    assert store_time.sleeps == []
    assert balance(api, ws)["available"] == 30


def test_conflict_then_insufficient_is_402_not_503(api, store_time):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next("conflict", times=2)
        r = api.charge(ws, "alice", "image", {"quality": "ultra", "count": 2}, key="big")
    assert r.status_code == 402
    assert faults.calls["TransactWriteItems"] == 3
    assert store_time.sleeps == [0.002, 0.004]


# --- holds: create, capture, release ----------------------------------------------------------

def hold(api, ws, key="h1"):
    return api.post(f"/v1/workspaces/{ws}/holds", "alice", {"service": "image", "options": {"quality": "ultra"}},
                    headers={"Idempotency-Key": key})


@pytest.mark.parametrize("kind", ["conflict", "throttling", "timeout_after_write", "timeout_before_write"])
def test_hold_capture_release_under_each_fault(api, store_time, kind):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next(kind)
        h = hold(api, ws)
        assert h.status_code == 201
        assert h.json["balance"] == {"available": 10, "plan": 10, "topup": 0, "held": 40}
        assert hold(api, ws).json == h.json
        faults.next(kind)
        cap = api.post(f"/v1/workspaces/{ws}/holds/{h.json['hold_id']}/capture", "alice", {"credits": 25})
        assert (cap.status_code, cap.json["captured"], cap.json["returned"]) == (200, 25, 15)
        assert cap.json["balance"] == {"available": 25, "plan": 25, "topup": 0, "held": 0}
        again = api.post(f"/v1/workspaces/{ws}/holds/{h.json['hold_id']}/capture", "alice", {"credits": 25})
        assert (again.status_code, again.json) == (200, cap.json)
        h2 = hold(api, ws, key="h2")
        assert h2.status_code == 402  # 40 > 25: a refusal, not a fault
        faults.next(kind)
        h3 = api.post(f"/v1/workspaces/{ws}/holds", "alice", {"service": "image", "options": {}},
                      headers={"Idempotency-Key": "h3"})
        faults.next(kind)
        rel = api.post(f"/v1/workspaces/{ws}/holds/{h3.json['hold_id']}/release", "alice")
        assert (rel.status_code, rel.json["returned"]) == (200, 10)
        again = api.post(f"/v1/workspaces/{ws}/holds/{h3.json['hold_id']}/release", "alice")
        assert (again.status_code, again.json) == (200, rel.json)
    assert faults.injected == {kind: 4}
    assert balance(api, ws) == {"available": 25, "plan": 25, "topup": 0, "held": 0}
    assert entries(api, ws) == [("release", 10, 0, -10), ("hold", -10, 0, 10), ("capture", 15, 0, -40),
                                ("hold", -40, 0, 40), GRANT]
    assert ledger.audit().clean


def test_capture_answer_lost_until_503_then_retry_gets_the_first_answer(api, store_time):
    ws = api.workspace("alice")
    h = hold(api, ws)
    with Faults() as faults:
        faults.next("timeout_after_write", times=100)
        r = api.post(f"/v1/workspaces/{ws}/holds/{h.json['hold_id']}/capture", "alice", {"credits": 25})
    assert_busy(r)
    again = api.post(f"/v1/workspaces/{ws}/holds/{h.json['hold_id']}/capture", "alice", {"credits": 25})
    assert (again.status_code, again.json["captured"], again.json["returned"]) == (200, 25, 15)
    assert again.json["balance"]["available"] == 25
    assert entries(api, ws) == [("capture", 15, 0, -40), ("hold", -40, 0, 40), GRANT]


# --- reads ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", THROTTLES + ["timeout_before_write"])
def test_reads_are_retried_then_503(api, store_time, kind):
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next(kind, times=2, ops=READS)
        r = api.get(f"/v1/workspaces/{ws}/subscription", "alice")
        assert (r.status_code, r.json["balance"]["available"]) == (200, 50)
        assert faults.calls["GetItem"] == 3
        faults.next(kind, times=100, ops=READS)
        r = api.get(f"/v1/workspaces/{ws}/ledger", "alice")
    assert_busy(r)
    assert faults.calls["Query"] == 8


def test_a_replay_read_under_faults(api, store_time):
    ws = api.workspace("alice")
    first = charge(api, ws)
    with Faults() as faults:
        faults.next("throttling", times=2, ops=READS)
        r = charge(api, ws)
    assert (r.status_code, r.json) == (201, first.json)


# --- what is a fault ---------------------------------------------------------------------------

def test_only_faults_are_faults(api):
    """A failed condition, a validation error or a missing table is raised as it is: not retried,
    not a 503."""
    from pynamodb.exceptions import PutError

    from chalicelib.credits import store
    from chalicelib.credits.models import Membership

    m = Membership("user#x", "ws#y", workspace_id="y", name="n", kind="team", role="owner")
    m.save()
    with pytest.raises(PutError) as e:
        m.save(condition=Membership.pk.does_not_exist())
    assert e.value.cause_response_code == "ConditionalCheckFailedException"
    assert store.fault(e.value) is None and store.as_unavailable(e.value) is None
    with Faults() as faults:
        for kind, expected in [("conflict", "conflict"), ("throughput", "throttled"), ("throttling", "throttled"),
                               ("request_limit", "throttled"), ("internal", "throttled"),
                               ("timeout_before_write", "unknown"), ("timeout_after_write", "unknown")]:
            faults.next(kind)
            with pytest.raises(PutError) as e:
                m.save()
            assert store.fault(e.value) == expected, kind
            assert store.as_unavailable(e.value).status == 503


def test_the_membership_query_is_retried_then_503_not_500(api, store_time):
    """GET /v1/me lists memberships with a query of its own: retried like every read, then busy."""
    ws = api.workspace("alice")
    with Faults() as faults:
        faults.next("throttling", ops=READS)
        r = api.get("/v1/me", "alice")
    assert (r.status_code, [w["workspace_id"] for w in r.json["workspaces"]]) == (200, [ws])
    with Faults() as faults:
        faults.next("throttling", times=100, ops=READS)
        r = api.get("/v1/me", "alice")
    assert (r.status_code, r.headers["Retry-After"], r.json["error"]["code"]) == (503, "1", "unavailable")


def test_settling_a_closed_hold_is_409_at_once(api, store_time):
    ws = api.workspace("alice")
    h = hold(api, ws)
    assert api.post(f"/v1/workspaces/{ws}/holds/{h.json['hold_id']}/release", "alice").status_code == 200
    with Faults() as faults:
        r = api.post(f"/v1/workspaces/{ws}/holds/{h.json['hold_id']}/capture", "alice", {"credits": 10})
    assert (r.status_code, r.json["error"]["code"]) == (409, "invalid_state")
    assert faults.calls["TransactWriteItems"] == 1
    assert store_time.sleeps == []
    assert balance(api, ws)["available"] == 50


def test_every_fault_at_random_nothing_lost_or_doubled(api, store_time):
    """Twenty charges of 10 on a 50-credit wallet, every DynamoDB call failing half the time in any
    way; the client retries each 503 with the same key. Five are charged, the rest refused, once."""
    from tests.faults.injector import KINDS, WRITES

    ws = api.workspace("alice")
    answers = {}
    with Faults(seed=2027) as faults:
        faults.rate, faults.kinds, faults.ops = 0.5, KINDS, WRITES + READS
        for i in range(20):
            for _ in range(20):
                r = api.charge(ws, "alice", "image", {"quality": "standard"}, key=f"k{i}")
                if r.status_code != 503:
                    break
            answers[f"k{i}"] = r.status_code
    assert sum(faults.injected.values()) > 20 and set(faults.injected) == set(KINDS)
    assert answers == {f"k{i}": 201 if i < 5 else 402 for i in range(20)}
    assert balance(api, ws) == {"available": 0, "plan": 0, "topup": 0, "held": 0}
    assert entries(api, ws) == [("charge", -10, 0, 0)] * 5 + [GRANT]
    assert ledger.audit().clean
