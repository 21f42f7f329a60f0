"""Holds over HTTP: reserve, capture at most the held amount, release, expiry by the next read."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import clock
from tests.conftest import T0
from tests.functional.test_charges import (
    SERVICE,
    add_member,
    assert_audit_clean,
    bal,
    balance,
    entries,
    error,
    give_topup,
)


def hold(api, ws, user, service="image", options=None, key="h1", ttl=None, scope="", **extra):
    body = {"service": service, "options": options if options is not None else {}, **extra}
    if ttl is not None:
        body["ttl_seconds"] = ttl
    return api.post(f"/v1/workspaces/{ws}/holds", user, body, scope=scope,
                    headers={"Idempotency-Key": key} if key else None)


def capture(api, ws, user, hold_id, credits=None, scope=""):
    body = {} if credits is None else {"credits": credits}
    return api.post(f"/v1/workspaces/{ws}/holds/{hold_id}/capture", user, body, scope=scope)


def release(api, ws, user, hold_id, scope=""):
    return api.post(f"/v1/workspaces/{ws}/holds/{hold_id}/release", user, {}, scope=scope)


ULTRA = {"quality": "ultra"}  # 40 credits


# --- creating a hold --------------------------------------------------------------------------

def test_hold_answer(api):
    ws = api.workspace("alice")
    r = hold(api, ws, "alice", options=ULTRA)
    assert r.status_code == 201, r.body
    assert set(r.json) == {"hold_id", "credits", "expires_at", "balance"}
    assert isinstance(r.json["hold_id"], str) and r.json["hold_id"]
    assert r.json["credits"] == 40
    assert r.json["expires_at"] == "2027-01-31T09:15:00Z"  # default ttl 900 s
    assert r.json["balance"] == bal(10, 10, 0, 40)
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)
    newest = entries(api, ws, "alice")[0]
    assert (newest["kind"], newest["plan_delta"], newest["topup_delta"]) == ("hold", -40, 0)
    assert newest["balance"] == bal(10, 10, 0, 40)
    assert_audit_clean()


@pytest.mark.parametrize("ttl, expires", [(1, "2027-01-31T09:00:01Z"), (60, "2027-01-31T09:01:00Z"),
                                          (86400, "2027-02-01T09:00:00Z")])
def test_ttl_bounds(api, ttl, expires):
    ws = api.workspace("alice")
    r = hold(api, ws, "alice", ttl=ttl)
    assert r.status_code == 201, r.body
    assert r.json["expires_at"] == expires
    assert_audit_clean()


@pytest.mark.parametrize("ttl", [0, -1, 86401, 10**30, "60", 60.0, True])
def test_bad_ttl_is_400(api, ttl):
    ws = api.workspace("alice")
    body = {"service": "image", "options": {}, "ttl_seconds": ttl}
    r = api.post(f"/v1/workspaces/{ws}/holds", "alice", body, headers={"Idempotency-Key": "h"})
    error(r, 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(50, 50)


def test_hold_402_reserves_nothing(api):
    ws = api.workspace("alice")
    before = entries(api, ws, "alice")
    err = error(hold(api, ws, "alice", "video", {"resolution": "1080p", "seconds": 5}), 402,
                "insufficient_credits")
    assert (err["required"], err["available"]) == (100, 50)
    assert balance(api, ws, "alice") == bal(50, 50)
    assert entries(api, ws, "alice") == before


def test_held_credits_are_not_available_to_charges(api):
    ws = api.workspace("alice")
    assert hold(api, ws, "alice", options=ULTRA).status_code == 201
    err = error(api.charge(ws, "alice", "image", {"quality": "hd"}, key="c"), 402, "insufficient_credits")
    assert (err["required"], err["available"]) == (20, 10)
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)


def test_hold_takes_plan_first(api):
    ws = api.workspace("alice")
    give_topup(ws, 100)
    r = hold(api, ws, "alice", "video", {"resolution": "1080p", "seconds": 5})  # 100
    assert r.status_code == 201, r.body
    assert r.json["balance"] == bal(50, 0, 50, 100)
    newest = entries(api, ws, "alice")[0]
    assert (newest["kind"], newest["plan_delta"], newest["topup_delta"]) == ("hold", -50, -50)
    assert_audit_clean()


def test_hold_replay_and_conflict(api):
    ws = api.workspace("alice")
    first = hold(api, ws, "alice", options=ULTRA, ttl=600)
    again = hold(api, ws, "alice", options=ULTRA, ttl=600)
    assert (again.status_code, again.json) == (201, first.json)
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)
    error(hold(api, ws, "alice", options=ULTRA, ttl=601), 409, "idempotency_conflict")
    error(hold(api, ws, "alice", options={"quality": "hd"}, ttl=600), 409, "idempotency_conflict")
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)
    assert_audit_clean()


def test_hold_needs_a_key(api):
    ws = api.workspace("alice")
    error(hold(api, ws, "alice", key=None), 400, "invalid_request")
    r = hold(api, ws, "alice", key=None, idempotency_key="in-body")
    assert r.status_code == 201, r.body
    assert_audit_clean()


# --- capture ----------------------------------------------------------------------------------

def test_capture_partial_returns_the_rest(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    r = capture(api, ws, "alice", h["hold_id"], 25)
    assert r.status_code == 200, r.body
    assert r.json == {"hold_id": h["hold_id"], "captured": 25, "returned": 15, "balance": bal(25, 25, 0, 0)}
    assert balance(api, ws, "alice") == bal(25, 25)
    newest = entries(api, ws, "alice")[0]
    assert (newest["kind"], newest["plan_delta"], newest["topup_delta"]) == ("capture", 15, 0)
    assert newest["balance"] == bal(25, 25)
    assert_audit_clean()


def test_capture_without_credits_takes_the_whole_hold(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    r = capture(api, ws, "alice", h["hold_id"])
    assert r.status_code == 200, r.body
    assert (r.json["captured"], r.json["returned"]) == (40, 0)
    assert r.json["balance"] == bal(10, 10)
    assert_audit_clean()


def test_capture_zero_returns_everything(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    r = capture(api, ws, "alice", h["hold_id"], 0)
    assert r.status_code == 200, r.body
    assert (r.json["captured"], r.json["returned"], r.json["balance"]) == (0, 40, bal(50, 50))
    assert_audit_clean()


def test_capture_consumes_the_plan_part_first(api):
    ws = api.workspace("alice")
    give_topup(ws, 100)
    h = hold(api, ws, "alice", "video", {"resolution": "1080p", "seconds": 5}).json  # 50 plan + 50 top-up
    r = capture(api, ws, "alice", h["hold_id"], 30)
    assert r.status_code == 200, r.body
    assert (r.json["captured"], r.json["returned"]) == (30, 70)
    assert r.json["balance"] == bal(120, 20, 100)  # 20 plan and all 50 top-up back
    newest = entries(api, ws, "alice")[0]
    assert (newest["kind"], newest["plan_delta"], newest["topup_delta"]) == ("capture", 20, 50)
    assert_audit_clean()


def test_capture_past_the_plan_part_returns_topup(api):
    ws = api.workspace("alice")
    give_topup(ws, 100)
    h = hold(api, ws, "alice", "video", {"resolution": "1080p", "seconds": 5}).json
    r = capture(api, ws, "alice", h["hold_id"], 70)
    assert r.status_code == 200, r.body
    assert r.json["balance"] == bal(80, 0, 80)
    assert_audit_clean()


@pytest.mark.parametrize("credits", [41, 1000, 10**30, -1])
def test_capture_outside_the_hold_is_400_and_the_hold_stays_open(api, credits):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    error(capture(api, ws, "alice", h["hold_id"], credits), 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)
    r = capture(api, ws, "alice", h["hold_id"], 40)
    assert (r.status_code, r.json["balance"]) == (200, bal(10, 10))
    assert_audit_clean()


@pytest.mark.parametrize("credits", ["10", 10.5, True, [10], {"n": 10}])
def test_capture_credits_must_be_an_integer(api, credits):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    error(capture(api, ws, "alice", h["hold_id"], credits), 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)


def test_capture_retry_gets_the_same_answer(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    first = capture(api, ws, "alice", h["hold_id"], 25)
    api.charge(ws, "alice", key="between")  # the wallet moves on
    again = capture(api, ws, "alice", h["hold_id"], 25)
    assert (again.status_code, again.json) == (200, first.json)
    assert balance(api, ws, "alice") == bal(15, 15)
    assert [e["kind"] for e in entries(api, ws, "alice")] == ["charge", "capture", "hold", "grant"]
    assert_audit_clean()


def test_capture_again_with_another_amount_is_409(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    assert capture(api, ws, "alice", h["hold_id"], 25).status_code == 200
    error(capture(api, ws, "alice", h["hold_id"], 30), 409, "invalid_state")
    error(capture(api, ws, "alice", h["hold_id"]), 409, "invalid_state")
    assert balance(api, ws, "alice") == bal(25, 25)
    assert_audit_clean()


def test_release_after_capture_is_409(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    assert capture(api, ws, "alice", h["hold_id"], 25).status_code == 200
    error(release(api, ws, "alice", h["hold_id"]), 409, "invalid_state")
    assert balance(api, ws, "alice") == bal(25, 25)
    assert_audit_clean()


# --- release ----------------------------------------------------------------------------------

def test_release_returns_all(api):
    ws = api.workspace("alice")
    give_topup(ws, 100)
    h = hold(api, ws, "alice", "video", {"resolution": "1080p", "seconds": 5}).json
    r = release(api, ws, "alice", h["hold_id"])
    assert r.status_code == 200, r.body
    assert r.json == {"hold_id": h["hold_id"], "returned": 100, "balance": bal(150, 50, 100)}
    assert balance(api, ws, "alice") == bal(150, 50, 100)
    newest = entries(api, ws, "alice")[0]
    assert (newest["kind"], newest["plan_delta"], newest["topup_delta"]) == ("release", 50, 50)
    assert_audit_clean()


def test_release_retry_gets_the_same_answer_and_capture_after_is_409(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    first = release(api, ws, "alice", h["hold_id"])
    again = release(api, ws, "alice", h["hold_id"])
    assert (again.status_code, again.json) == (200, first.json)
    error(capture(api, ws, "alice", h["hold_id"], 10), 409, "invalid_state")
    assert balance(api, ws, "alice") == bal(50, 50)
    assert [e["kind"] for e in entries(api, ws, "alice")] == ["release", "hold", "grant"]
    assert_audit_clean()


# --- unknown and forged hold ids ----------------------------------------------------------------

def test_unknown_hold_is_404(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    seq, creator = h["hold_id"].split("_")[1], h["hold_id"].split("_")[4]
    other_seq = seq[:-1] + ("0" if seq[-1] != "0" else "1")
    for hid in ["nothing", "hold_", f"hold_{other_seq}_40_0_{creator}"]:
        error(capture(api, ws, "alice", hid, 1), 404, "not_found")
        error(release(api, ws, "alice", hid), 404, "not_found")
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)


def test_forged_split_in_hold_id_cannot_capture_more(api):
    ws = api.workspace("alice")
    give_topup(ws, 100)
    h = hold(api, ws, "alice", options=ULTRA).json  # 40 from plan
    _, seq, p, t, creator = h["hold_id"].split("_")
    assert (p, t) == ("40", "0")
    for forged in (f"hold_{seq}_100_0_{creator}", f"hold_{seq}_0_40_{creator}", f"hold_{seq}_40_60_{creator}",
                   f"hold_{seq}_{p}_{t}_nvqwy3dpoj4q"):  # base32 of "mallory": someone else as creator
        error(capture(api, ws, "alice", forged, 100 if forged.endswith("_60") else 40), 404, "not_found")
        error(release(api, ws, "alice", forged), 404, "not_found")
    assert balance(api, ws, "alice") == bal(110, 10, 100, 40)
    r = release(api, ws, "alice", h["hold_id"])
    assert r.json["balance"] == bal(150, 50, 100)
    assert_audit_clean()


def test_hold_of_another_workspace_is_404(api):
    a, b = api.workspace("alice"), api.workspace("bob")
    h = hold(api, a, "alice", options=ULTRA).json
    error(capture(api, b, "bob", h["hold_id"], 10), 404, "not_found")
    error(release(api, b, "bob", h["hold_id"]), 404, "not_found")
    assert balance(api, a, "alice") == bal(10, 10, 0, 40)
    assert balance(api, b, "bob") == bal(50, 50)


# --- who may settle ---------------------------------------------------------------------------

def test_non_member_cannot_settle(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    error(capture(api, ws, "mallory", h["hold_id"], 0), 404, "not_found")
    error(release(api, ws, "mallory", h["hold_id"]), 404, "not_found")
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)


def test_plain_member_cannot_settle_someone_elses_hold(api):
    # API.md: capture and release are for "its creator, service"; api.py/spending.py answer a
    # member who is not the creator with 403 forbidden.
    ws = api.workspace("alice")
    add_member(ws, "bob")
    h = hold(api, ws, "alice", options=ULTRA).json
    error(capture(api, ws, "bob", h["hold_id"], 0), 403, "forbidden")
    error(release(api, ws, "bob", h["hold_id"]), 403, "forbidden")
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)
    r = capture(api, ws, "alice", h["hold_id"], 40)
    assert r.status_code == 200, r.body
    assert_audit_clean()


def test_member_settles_own_hold(api):
    ws = api.workspace("alice")
    add_member(ws, "bob")
    h = hold(api, ws, "bob", options=ULTRA).json
    r = capture(api, ws, "bob", h["hold_id"], 10)
    assert r.status_code == 200, r.body
    assert r.json["balance"] == bal(40, 40)
    assert_audit_clean()


def test_service_holds_and_captures_for_a_member(api):
    ws = api.workspace("alice")
    r = hold(api, ws, "svc-video", "video", {"seconds": 5}, scope=SERVICE, user_id="alice")
    assert r.status_code == 201, r.body
    assert r.json["balance"] == bal(0, 0, 0, 50)
    clock.set_now(T0 + timedelta(seconds=1))
    c = capture(api, ws, "svc-video", r.json["hold_id"], 20, scope=SERVICE)
    assert c.status_code == 200, c.body
    assert c.json["balance"] == bal(30, 30)
    assert_audit_clean()


def test_service_settles_a_hold_a_person_made(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    clock.set_now(T0 + timedelta(seconds=1))
    r = release(api, ws, "svc-image", h["hold_id"], scope=SERVICE)
    assert r.status_code == 200, r.body
    assert r.json["balance"] == bal(50, 50)
    assert_audit_clean()


def test_service_settles_with_a_clock_behind_the_wallets_last_entry(api):
    """Another Lambda's clock ran a second ahead when it made the hold; a service's capture from
    a Lambda whose clock lags must still go through (next_seq exists for exactly this)."""
    ws = api.workspace("alice")
    clock.set_now(T0 + timedelta(seconds=1))
    h = hold(api, ws, "svc-image", options=ULTRA, scope=SERVICE, user_id="alice").json
    clock.set_now(T0)
    r = capture(api, ws, "svc-image", h["hold_id"], 30, scope=SERVICE)
    assert r.status_code == 200, r.body
    assert r.json["balance"] == bal(20, 20)
    assert_audit_clean()


def test_service_capture_after_expiry_is_409(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "svc-image", options=ULTRA, ttl=60, scope=SERVICE, user_id="alice").json
    clock.set_now(T0 + timedelta(seconds=61))
    error(capture(api, ws, "svc-image", h["hold_id"], 40, scope=SERVICE), 409, "invalid_state")
    assert balance(api, ws, "alice") == bal(50, 50)
    assert_audit_clean()


def test_service_releases_a_hold_across_the_cycle_end(api):
    ws = api.workspace("alice")
    give_topup(ws, 100)
    clock.set_now(datetime(2027, 2, 28, 8, 0, tzinfo=timezone.utc))
    h = hold(api, ws, "svc-video", "video", {"resolution": "1080p", "seconds": 5}, ttl=7200,
             scope=SERVICE, user_id="alice").json
    clock.set_now(datetime(2027, 2, 28, 9, 30, tzinfo=timezone.utc))
    assert balance(api, ws, "alice") == bal(100, 50, 50, 100)  # renewed; the hold is still open
    r = release(api, ws, "svc-video", h["hold_id"], scope=SERVICE)
    assert r.status_code == 200, r.body
    assert r.json["balance"] == bal(150, 50, 100, 0)
    assert_audit_clean()


def test_settling_needs_a_token(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA).json
    error(capture(api, ws, None, h["hold_id"], 0), 401, "unauthenticated")
    error(release(api, ws, None, h["hold_id"]), 401, "unauthenticated")
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)


# --- expiry -----------------------------------------------------------------------------------

def test_expired_hold_is_back_by_the_next_read(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA, ttl=60).json
    assert h["expires_at"] == "2027-01-31T09:01:00Z"
    clock.set_now(T0 + timedelta(seconds=59))
    assert balance(api, ws, "alice") == bal(10, 10, 0, 40)
    clock.set_now(T0 + timedelta(seconds=61))
    assert balance(api, ws, "alice") == bal(50, 50)
    newest = entries(api, ws, "alice")[0]
    assert newest["kind"] == "release"
    assert (newest["plan_delta"], newest["topup_delta"]) == (40, 0)
    assert newest["balance"] == bal(50, 50)
    assert [e["kind"] for e in entries(api, ws, "alice")] == ["release", "hold", "grant"]
    assert_audit_clean()


def test_expired_hold_is_back_by_a_ledger_read(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA, ttl=60).json
    clock.set_now(T0 + timedelta(seconds=120))
    top = entries(api, ws, "alice")  # the ledger is read before any other read of the wallet
    assert top[0]["kind"] == "release" and top[0]["balance"] == bal(50, 50)
    assert h["hold_id"] in str(top[0]["ref"])
    assert_audit_clean()


def test_expired_hold_credits_are_there_for_the_next_charge(api):
    ws = api.workspace("alice")
    assert hold(api, ws, "alice", options=ULTRA, ttl=60).status_code == 201
    clock.set_now(T0 + timedelta(seconds=61))
    r = api.charge(ws, "alice", "image", {"quality": "hd", "count": 2}, key="after")  # 40
    assert r.status_code == 201, r.body
    assert r.json["balance"] == bal(10, 10)
    assert_audit_clean()


def test_capture_after_expiry_is_409_and_credits_are_back(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA, ttl=60).json
    clock.set_now(T0 + timedelta(seconds=60))  # expires_at itself: no longer open
    error(capture(api, ws, "alice", h["hold_id"], 10), 409, "invalid_state")
    assert balance(api, ws, "alice") == bal(50, 50)
    assert [e["kind"] for e in entries(api, ws, "alice")] == ["release", "hold", "grant"]
    assert_audit_clean()


def test_release_after_expiry_is_409_before_any_read(api):
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA, ttl=60).json
    clock.set_now(T0 + timedelta(seconds=61))
    error(release(api, ws, "alice", h["hold_id"]), 409, "invalid_state")
    assert balance(api, ws, "alice") == bal(50, 50)
    assert_audit_clean()


def test_release_after_expiry_is_409_after_a_read(api):
    """The hold is no longer open whether or not a read has already returned its credits; the
    answer must not depend on that."""
    ws = api.workspace("alice")
    h = hold(api, ws, "alice", options=ULTRA, ttl=60).json
    clock.set_now(T0 + timedelta(seconds=61))
    assert balance(api, ws, "alice") == bal(50, 50)  # expiry applied by this read
    error(release(api, ws, "alice", h["hold_id"]), 409, "invalid_state")
    assert balance(api, ws, "alice") == bal(50, 50)
    assert [e["kind"] for e in entries(api, ws, "alice")] == ["release", "hold", "grant"]
    assert_audit_clean()


def test_returned_plan_credits_expire_when_their_cycle_has_ended(api):
    ws = api.workspace("alice")
    give_topup(ws, 100)
    clock.set_now(datetime(2027, 2, 28, 8, 0, tzinfo=timezone.utc))  # an hour before the cycle ends
    h = hold(api, ws, "alice", "video", {"resolution": "1080p", "seconds": 5}, ttl=7200).json
    assert h["balance"] == bal(50, 0, 50, 100)  # 50 plan + 50 top-up held
    clock.set_now(datetime(2027, 2, 28, 9, 30, tzinfo=timezone.utc))  # new cycle, hold still open
    assert balance(api, ws, "alice") == bal(100, 50, 50, 100)  # the new cycle's 50 granted
    r = release(api, ws, "alice", h["hold_id"])
    assert r.status_code == 200, r.body
    # The 50 plan credits held belonged to the cycle that ended: they expire; the top-up comes back.
    assert r.json["balance"] == bal(150, 50, 100, 0)
    assert balance(api, ws, "alice") == bal(150, 50, 100, 0)
    newest = entries(api, ws, "alice")[0]
    assert (newest["kind"], newest["plan_delta"], newest["topup_delta"]) == ("release", 0, 50)
    assert_audit_clean()


def test_partial_capture_across_cycle_end_keeps_only_topup(api):
    """No read between the cycle's end and the capture: the capture itself must not hand back
    plan credits of the cycle that ended, and its answer must not show them."""
    ws = api.workspace("alice")
    give_topup(ws, 100)
    clock.set_now(datetime(2027, 2, 28, 8, 0, tzinfo=timezone.utc))
    h = hold(api, ws, "alice", "video", {"resolution": "1080p", "seconds": 5}, ttl=7200).json
    clock.set_now(datetime(2027, 2, 28, 9, 30, tzinfo=timezone.utc))
    r = capture(api, ws, "alice", h["hold_id"], 20)  # 20 of the 50 plan part used
    assert r.status_code == 200, r.body
    # Only the top-up part comes back; the plan part's cycle ended, so those 30 expired.
    assert (r.json["captured"], r.json["returned"], r.json["expired"]) == (20, 50, 30)
    # The new cycle's 50, the top-up's 100; the 30 plan credits expired with their cycle.
    assert balance(api, ws, "alice") == bal(150, 50, 100, 0)
    assert_audit_clean()
    assert r.json["balance"] == bal(150, 50, 100, 0)
