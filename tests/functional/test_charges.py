"""Charges over HTTP: cost from the catalog, plan first, 402 with nothing deducted, idempotency,
who may charge. Helpers here (top-ups and members written straight to the store, the audit) are
shared by the other functional test files."""
from __future__ import annotations

from chalicelib import clock
from chalicelib.credits import ledger, rules
from chalicelib.credits.models import Entry, Membership, Wallet
from chalicelib.credits.store import Put, Update, get_wallet, transact, wallet_key

SERVICE = "credits:service"


# --- helpers --------------------------------------------------------------------------------

def give_topup(ws: str, credits: int) -> None:
    """Credit the top-up bucket the way a paid pack will: one wallet update plus its ledger entry
    (no top-up route exists yet)."""
    w = get_wallet(ws)
    seq = rules.next_seq(clock.now(), w.last)
    entry = Entry(ws, f"test-topup#{seq}", seq=seq, kind="topup", plan_delta=0, topup_delta=credits,
                  held_delta=0, ref={"type": "test"}, actor="system")
    transact([Put(entry, Entry.sk.does_not_exist()),
              Update(wallet_key(ws), [Wallet.topup.add(credits), Wallet.last.set(seq)], Wallet.last == w.last)])


def add_member(ws: str, user: str, role: str = "member") -> None:
    """Make a person a member of a workspace (no members route exists yet)."""
    w = get_wallet(ws)
    transact([Put(Membership(f"user#{user}", f"ws#{ws}", workspace_id=ws, name=w.name, kind=w.kind, role=role)),
              Update(wallet_key(ws), [Wallet.members[user].set({"role": role})])])


def assert_audit_clean() -> None:
    result = ledger.audit()
    assert result.clean, result.problems
    assert result.wallets >= 1


def balance(api, ws: str, user: str) -> dict:
    r = api.get(f"/v1/workspaces/{ws}/subscription", user)
    assert r.status_code == 200, r.body
    return r.json["balance"]


def entries(api, ws: str, user: str) -> list[dict]:
    r = api.get(f"/v1/workspaces/{ws}/ledger?limit=100", user)
    assert r.status_code == 200, r.body
    return r.json["entries"]


def bal(available: int, plan: int, topup: int = 0, held: int = 0) -> dict:
    assert available == plan + topup
    return {"available": available, "plan": plan, "topup": topup, "held": held}


def error(r, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.body)
    assert isinstance(r.json, dict) and set(r.json) == {"error"}, r.body
    assert r.json["error"]["code"] == code, r.body
    assert isinstance(r.json["error"]["message"], str) and r.json["error"]["message"]
    return r.json["error"]


# --- a charge -------------------------------------------------------------------------------

def test_charge_answer(api):
    ws = api.workspace("alice")
    r = api.charge(ws, "alice", "image", {}, key="k1")
    assert r.status_code == 201, r.body
    assert set(r.json) == {"charge_id", "credits", "from_plan", "from_topup", "balance"}
    assert isinstance(r.json["charge_id"], str) and r.json["charge_id"]
    assert (r.json["credits"], r.json["from_plan"], r.json["from_topup"]) == (10, 10, 0)
    assert r.json["balance"] == bal(40, 40)
    assert balance(api, ws, "alice") == bal(40, 40)
    assert_audit_clean()


def test_charge_cost_comes_from_the_catalog(api):
    ws = api.workspace("alice")
    give_topup(ws, 5000)
    cases = [
        ("image", {"quality": "hd", "count": 2}, 40),
        ("image", {"quality": "ultra"}, 40),
        ("video", {"seconds": 6}, 100),
        ("video", {"resolution": "1080p", "seconds": 5}, 100),
        ("audio", {"seconds": 31}, 20),
        ("avatar", {}, 100),
    ]
    spent = 0
    for i, (service, options, credits) in enumerate(cases):
        r = api.charge(ws, "alice", service, options, key=f"k{i}")
        assert r.status_code == 201, r.body
        assert r.json["credits"] == credits, (service, options)
        est = api.post("/v1/estimate", body={"service": service, "options": options})
        assert est.json["credits"] == credits
        spent += credits
    assert balance(api, ws, "alice")["available"] == 5050 - spent
    assert_audit_clean()


def test_client_cannot_name_the_cost(api):
    ws = api.workspace("alice")
    r = api.charge(ws, "alice", "avatar", {}, key="k1", credits=1)
    error(r, 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(50, 50)


def test_plan_first_then_topup(api):
    ws = api.workspace("alice")
    give_topup(ws, 100)
    r = api.charge(ws, "alice", "image", {"quality": "ultra"}, key="a")
    assert (r.status_code, r.json["from_plan"], r.json["from_topup"]) == (201, 40, 0)
    assert r.json["balance"] == bal(110, 10, 100)
    r = api.charge(ws, "alice", "image", {"quality": "ultra"}, key="b")  # 10 plan + 30 top-up
    assert (r.status_code, r.json["from_plan"], r.json["from_topup"]) == (201, 10, 30), r.body
    assert r.json["balance"] == bal(70, 0, 70)
    r = api.charge(ws, "alice", "image", {"quality": "ultra"}, key="c")
    assert (r.status_code, r.json["from_plan"], r.json["from_topup"]) == (201, 0, 40)
    assert r.json["balance"] == bal(30, 0, 30)
    assert balance(api, ws, "alice") == bal(30, 0, 30)
    kinds = [(e["kind"], e["plan_delta"], e["topup_delta"]) for e in entries(api, ws, "alice")]
    assert kinds[:3] == [("charge", 0, -40), ("charge", -10, -30), ("charge", -40, 0)]
    assert_audit_clean()


def test_spend_to_exactly_zero_then_402(api):
    ws = api.workspace("alice")
    for i in range(5):
        r = api.charge(ws, "alice", key=f"k{i}")
        assert r.status_code == 201, r.body
        assert r.json["balance"]["available"] == 40 - 10 * i
    before = entries(api, ws, "alice")
    err = error(api.charge(ws, "alice", key="k5"), 402, "insufficient_credits")
    assert (err["required"], err["available"]) == (10, 0)
    assert entries(api, ws, "alice") == before
    assert balance(api, ws, "alice") == bal(0, 0)
    assert_audit_clean()


def test_402_deducts_nothing(api):
    ws = api.workspace("alice")
    before = entries(api, ws, "alice")
    r = api.charge(ws, "alice", "video", {"resolution": "1080p", "seconds": 6}, key="big")
    err = error(r, 402, "insufficient_credits")
    assert (err["required"], err["available"]) == (200, 50)
    assert balance(api, ws, "alice") == bal(50, 50)
    assert entries(api, ws, "alice") == before
    assert_audit_clean()


def test_402_counts_both_buckets(api):
    ws = api.workspace("alice")
    give_topup(ws, 100)
    before = entries(api, ws, "alice")
    err = error(api.charge(ws, "alice", "video", {"resolution": "1080p", "seconds": 6}, key="big"),
                402, "insufficient_credits")
    assert (err["required"], err["available"]) == (200, 150)
    assert balance(api, ws, "alice") == bal(150, 50, 100)
    assert entries(api, ws, "alice") == before
    # One credit short of both buckets together is still short; exactly enough is not.
    err = error(api.charge(ws, "alice", "video", {"seconds": 16}, key="v16"), 402, "insufficient_credits")
    assert (err["required"], err["available"]) == (200, 150)
    r = api.charge(ws, "alice", "video", {"seconds": 15}, key="v15")
    assert (r.status_code, r.json["from_plan"], r.json["from_topup"]) == (201, 50, 100), r.body
    assert r.json["balance"] == bal(0, 0, 0)
    assert_audit_clean()


def test_402_retry_with_same_key_succeeds_once_credits_arrive(api):
    ws = api.workspace("alice")
    error(api.charge(ws, "alice", "avatar", key="av"), 402, "insufficient_credits")
    give_topup(ws, 100)
    r = api.charge(ws, "alice", "avatar", key="av")
    assert r.status_code == 201, r.body
    assert (r.json["from_plan"], r.json["from_topup"]) == (50, 50)
    assert_audit_clean()


def test_free_actions_at_balance_zero(api):
    ws = api.workspace("alice")
    for i in range(5):
        assert api.charge(ws, "alice", key=f"k{i}").status_code == 201
    assert balance(api, ws, "alice") == bal(0, 0)
    for service in ("background_removal", "upscale", "local_edit"):
        r = api.charge(ws, "alice", service, {}, key=f"free-{service}")
        assert r.status_code == 201, r.body
        assert (r.json["credits"], r.json["from_plan"], r.json["from_topup"]) == (0, 0, 0)
        assert r.json["balance"] == bal(0, 0)
    assert balance(api, ws, "alice") == bal(0, 0)
    assert_audit_clean()


# --- idempotency ----------------------------------------------------------------------------

def test_replay_returns_the_first_answer_and_deducts_nothing(api):
    ws = api.workspace("alice")
    first = api.charge(ws, "alice", "image", {"quality": "hd"}, key="same")
    assert first.status_code == 201
    again = api.charge(ws, "alice", "image", {"quality": "hd"}, key="same")
    assert again.status_code == 201, again.body
    assert again.json == first.json
    assert balance(api, ws, "alice") == bal(30, 30)
    assert [e["kind"] for e in entries(api, ws, "alice")] == ["charge", "grant"]
    assert_audit_clean()


def test_replay_after_other_charges_still_returns_the_first_answer(api):
    ws = api.workspace("alice")
    first = api.charge(ws, "alice", key="k1")
    api.charge(ws, "alice", key="k2")
    api.charge(ws, "alice", key="k3")
    again = api.charge(ws, "alice", key="k1")
    assert again.status_code == 201
    assert again.json == first.json
    assert again.json["balance"] == bal(40, 40)
    assert balance(api, ws, "alice") == bal(20, 20)
    assert_audit_clean()


def test_replay_with_defaults_spelled_out_is_the_same_request(api):
    ws = api.workspace("alice")
    first = api.charge(ws, "alice", "image", {}, key="k")
    again = api.charge(ws, "alice", "image", {"quality": "standard", "count": 1}, key="k")
    assert again.status_code == 201, again.body
    assert again.json == first.json
    assert balance(api, ws, "alice") == bal(40, 40)


def test_same_key_different_request_is_409(api):
    ws = api.workspace("alice")
    assert api.charge(ws, "alice", "image", {"quality": "hd"}, key="same").status_code == 201
    error(api.charge(ws, "alice", "image", {"quality": "ultra"}, key="same"), 409, "idempotency_conflict")
    error(api.charge(ws, "alice", "image", {"quality": "hd", "count": 2}, key="same"), 409, "idempotency_conflict")
    error(api.charge(ws, "alice", "upscale", {}, key="same"), 409, "idempotency_conflict")
    assert balance(api, ws, "alice") == bal(30, 30)
    assert [e["kind"] for e in entries(api, ws, "alice")] == ["charge", "grant"]
    assert_audit_clean()


def test_same_key_for_a_hold_is_a_conflict(api):
    ws = api.workspace("alice")
    assert api.charge(ws, "alice", key="shared").status_code == 201
    r = api.post(f"/v1/workspaces/{ws}/holds", "alice", {"service": "image", "options": {}},
                 headers={"Idempotency-Key": "shared"})
    error(r, 409, "idempotency_conflict")
    assert balance(api, ws, "alice") == bal(40, 40)


def test_key_in_body(api):
    ws = api.workspace("alice")
    r = api.charge(ws, "alice", key=None, idempotency_key="body-key")
    assert r.status_code == 201, r.body
    assert r.json["balance"] == bal(40, 40)
    again = api.charge(ws, "alice", key=None, idempotency_key="body-key")
    assert (again.status_code, again.json) == (201, r.json)
    # The same key in the header names the same request.
    header = api.charge(ws, "alice", key="body-key")
    assert (header.status_code, header.json) == (201, r.json)
    assert balance(api, ws, "alice") == bal(40, 40)
    assert_audit_clean()


def test_header_and_body_keys_that_differ_are_refused(api):
    ws = api.workspace("alice")
    error(api.charge(ws, "alice", key="h", idempotency_key="b"), 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(50, 50)


def test_missing_key_is_400(api):
    ws = api.workspace("alice")
    error(api.charge(ws, "alice", key=None), 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(50, 50)
    assert [e["kind"] for e in entries(api, ws, "alice")] == ["grant"]


def test_bad_key_is_400(api):
    ws = api.workspace("alice")
    for key in ["x" * 129, "has space", "ünicode"]:
        error(api.charge(ws, "alice", key=None, idempotency_key=key), 400, "invalid_request")
    error(api.charge(ws, "alice", key=None, idempotency_key=""), 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(50, 50)


def test_keys_are_per_workspace(api):
    a, b = api.workspace("alice"), api.workspace("bob")
    ra = api.charge(a, "alice", key="k")
    rb = api.charge(b, "bob", "image", {"quality": "hd"}, key="k")
    assert (ra.status_code, rb.status_code) == (201, 201)
    assert balance(api, a, "alice") == bal(40, 40)
    assert balance(api, b, "bob") == bal(30, 30)


# --- who may charge -------------------------------------------------------------------------

def test_non_member_gets_404_and_nothing_moves(api):
    ws = api.workspace("alice")
    api.workspace("mallory")
    error(api.charge(ws, "mallory", key="k"), 404, "not_found")
    assert balance(api, ws, "alice") == bal(50, 50)
    assert [e["kind"] for e in entries(api, ws, "alice")] == ["grant"]
    # The key stays free for its rightful owner.
    assert api.charge(ws, "alice", key="k").status_code == 201
    assert_audit_clean()


def test_unknown_workspace_is_404(api):
    api.workspace("alice")
    error(api.charge("ws_pdoesnotexist000000000000", "alice", key="k"), 404, "not_found")


def test_no_token_is_401(api):
    ws = api.workspace("alice")
    r = api.post(f"/v1/workspaces/{ws}/charges", None, {"service": "image", "options": {}},
                 headers={"Idempotency-Key": "k"})
    error(r, 401, "unauthenticated")
    r = api.post(f"/v1/workspaces/{ws}/charges", None, {"service": "image", "options": {}},
                 headers={"Idempotency-Key": "k", "Authorization": "Bearer not-a-token"})
    error(r, 401, "unauthenticated")
    assert balance(api, ws, "alice") == bal(50, 50)


def test_a_person_cannot_charge_for_someone_else(api):
    ws = api.workspace("alice")
    add_member(ws, "bob")
    error(api.charge(ws, "bob", key="k", user_id="alice"), 403, "forbidden")
    assert balance(api, ws, "alice") == bal(50, 50)
    r = api.charge(ws, "alice", key="k2", user_id="alice")  # naming oneself is fine
    assert r.status_code == 201, r.body


def test_member_spends_from_the_shared_wallet(api):
    ws = api.workspace("alice")
    add_member(ws, "bob")
    r = api.charge(ws, "bob", key="k")
    assert r.status_code == 201, r.body
    assert balance(api, ws, "alice") == bal(40, 40)
    assert entries(api, ws, "alice")[0]["actor"] == "bob"
    assert_audit_clean()


def test_service_charges_for_a_member(api):
    ws = api.workspace("alice")
    r = api.post(f"/v1/workspaces/{ws}/charges", "svc-image",
                 {"service": "image", "options": {"quality": "hd"}, "user_id": "alice"},
                 scope=SERVICE, headers={"Idempotency-Key": "job-1"})
    assert r.status_code == 201, r.body
    assert (r.json["credits"], r.json["balance"]) == (20, bal(30, 30))
    newest = entries(api, ws, "alice")[0]
    assert newest["kind"] == "charge" and "alice" in newest["actor"] and "svc-image" in newest["actor"]
    assert_audit_clean()


def test_service_must_name_a_member(api):
    ws = api.workspace("alice")
    r = api.post(f"/v1/workspaces/{ws}/charges", "svc-image", {"service": "image", "options": {}},
                 scope=SERVICE, headers={"Idempotency-Key": "job-1"})
    error(r, 400, "invalid_request")
    r = api.post(f"/v1/workspaces/{ws}/charges", "svc-image",
                 {"service": "image", "options": {}, "user_id": "stranger"},
                 scope=SERVICE, headers={"Idempotency-Key": "job-2"})
    error(r, 404, "not_found")
    assert balance(api, ws, "alice") == bal(50, 50)


def test_service_replay_for_another_person_is_a_conflict(api):
    ws = api.workspace("alice")
    add_member(ws, "bob")
    body = {"service": "image", "options": {}, "user_id": "alice"}
    h = {"Idempotency-Key": "job-1"}
    assert api.post(f"/v1/workspaces/{ws}/charges", "svc", body, scope=SERVICE, headers=h).status_code == 201
    r = api.post(f"/v1/workspaces/{ws}/charges", "svc", {**body, "user_id": "bob"}, scope=SERVICE, headers=h)
    error(r, 409, "idempotency_conflict")
    assert balance(api, ws, "alice") == bal(40, 40)


# --- charges and the cycle --------------------------------------------------------------------

def test_charge_after_cycle_end_renews_first(api):
    from datetime import datetime, timezone

    ws = api.workspace("alice")
    give_topup(ws, 100)
    assert api.charge(ws, "alice", "image", {"quality": "ultra"}, key="k1").status_code == 201  # plan 10 left
    clock.set_now(datetime(2027, 2, 28, 9, 0, tzinfo=timezone.utc))  # the first cycle's end
    r = api.charge(ws, "alice", "image", {"quality": "hd"}, key="k2")
    assert r.status_code == 201, r.body
    assert (r.json["from_plan"], r.json["from_topup"]) == (20, 0)
    assert r.json["balance"] == bal(130, 30, 100)  # 10 left expired, 50 granted, 20 spent
    kinds = [(e["kind"], e["plan_delta"], e["topup_delta"]) for e in entries(api, ws, "alice")]
    assert kinds[:3] == [("charge", -20, 0), ("grant", 50, 0), ("expire", -10, 0)]
    view = api.get(f"/v1/workspaces/{ws}/subscription", "alice").json
    assert view["cycle"] == {"start": "2027-02-28", "end": "2027-03-31"}
    assert_audit_clean()
