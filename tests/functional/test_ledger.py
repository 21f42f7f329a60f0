"""GET /v1/me (the personal workspace and its first grant), the subscription view, and the ledger:
newest first, pages that cover every entry once, exact balances after each entry, who may read."""
from __future__ import annotations

from datetime import timedelta

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

ENTRY_KEYS = {"entry_id", "at", "kind", "plan_delta", "topup_delta", "balance", "ref", "actor"}
KINDS = {"grant", "expire", "charge", "hold", "capture", "release", "topup", "refund", "adjust"}


# --- /v1/me and the subscription view ---------------------------------------------------------

def test_first_me_opens_a_personal_workspace_with_one_grant_of_50(api):
    r = api.get("/v1/me", "alice")
    assert r.status_code == 200, r.body
    assert r.json["user_id"] == "alice"
    assert len(r.json["workspaces"]) == 1
    w = r.json["workspaces"][0]
    assert (w["kind"], w["role"]) == ("personal", "owner")
    assert isinstance(w["workspace_id"], str) and w["workspace_id"] and isinstance(w["name"], str)
    page = api.get(f"/v1/workspaces/{w['workspace_id']}/ledger", "alice").json
    assert page["next_cursor"] is None
    assert len(page["entries"]) == 1
    e = page["entries"][0]
    assert ENTRY_KEYS <= set(e)
    assert (e["kind"], e["plan_delta"], e["topup_delta"]) == ("grant", 50, 0)
    assert e["balance"] == bal(50, 50)
    assert e["at"] == "2027-01-31T09:00:00Z"
    assert_audit_clean()


def test_second_me_returns_the_same_workspace_and_grants_nothing(api):
    first = api.get("/v1/me", "alice").json
    second = api.get("/v1/me", "alice").json
    assert second == first
    ws = first["workspaces"][0]["workspace_id"]
    assert [e["kind"] for e in entries(api, ws, "alice")] == ["grant"]
    assert balance(api, ws, "alice") == bal(50, 50)
    assert_audit_clean()


def test_me_after_spending_does_not_grant_again(api):
    ws = api.workspace("alice")
    assert api.charge(ws, "alice", key="k").status_code == 201
    assert api.workspace("alice") == ws
    assert balance(api, ws, "alice") == bal(40, 40)


def test_each_person_has_their_own_workspace(api):
    a, b = api.workspace("alice"), api.workspace("bob")
    assert a != b
    assert api.charge(a, "alice", key="k").status_code == 201
    assert balance(api, b, "bob") == bal(50, 50)
    assert_audit_clean()


def test_me_needs_a_person(api):
    error(api.get("/v1/me"), 401, "unauthenticated")
    error(api.get("/v1/me", "svc-image", scope=SERVICE), 403, "forbidden")


def test_subscription_view_on_free(api):
    ws = api.workspace("alice")
    r = api.get(f"/v1/workspaces/{ws}/subscription", "alice")
    assert r.status_code == 200, r.body
    v = r.json
    assert v["workspace_id"] == ws
    assert v["plan"] == {"id": "free", "name": "Free"}
    assert v["interval"] is None
    assert v["status"] == "active"
    assert v["balance"] == bal(50, 50)
    assert v["cycle"] == {"start": "2027-01-31", "end": "2027-02-28"}
    assert v["renews_on"] == "2027-02-28"
    assert v["ends_on"] is None
    assert v["pending_change"] is None
    assert v["manage_payments"] is False


def test_subscription_after_the_cycle_ends_shows_the_next_cycle(api):
    ws = api.workspace("alice")
    assert api.charge(ws, "alice", "image", {"quality": "ultra"}, key="k").status_code == 201
    clock.set_now(T0 + timedelta(days=28))  # 2027-02-28T09:00Z: the first cycle's end
    v = api.get(f"/v1/workspaces/{ws}/subscription", "alice").json
    assert v["balance"] == bal(50, 50)
    assert v["cycle"] == {"start": "2027-02-28", "end": "2027-03-31"}
    assert v["renews_on"] == "2027-03-31"
    kinds = [(e["kind"], e["plan_delta"]) for e in entries(api, ws, "alice")]
    assert kinds == [("grant", 50), ("expire", -10), ("charge", -40), ("grant", 50)]
    assert_audit_clean()


def test_subscription_catches_up_missed_cycles_once(api):
    ws = api.workspace("alice")
    clock.set_now(T0 + timedelta(days=28 + 31 + 1))  # 2027-04-01: two cycles ended
    assert balance(api, ws, "alice") == bal(50, 50)
    assert balance(api, ws, "alice") == bal(50, 50)
    kinds = [(e["kind"], e["plan_delta"]) for e in entries(api, ws, "alice")]
    assert kinds == [("grant", 50), ("expire", -50), ("grant", 50), ("expire", -50), ("grant", 50)]
    v = api.get(f"/v1/workspaces/{ws}/subscription", "alice").json
    assert v["cycle"] == {"start": "2027-03-31", "end": "2027-04-30"}
    assert_audit_clean()


def test_subscription_readers(api):
    ws = api.workspace("alice")
    add_member(ws, "bob")
    assert api.get(f"/v1/workspaces/{ws}/subscription", "bob").status_code == 200  # members see the balance
    error(api.get(f"/v1/workspaces/{ws}/subscription", "mallory"), 404, "not_found")
    error(api.get(f"/v1/workspaces/{ws}/subscription"), 401, "unauthenticated")
    error(api.get("/v1/workspaces/ws_pnothing/subscription", "alice"), 404, "not_found")


# --- the ledger -------------------------------------------------------------------------------

def busy_wallet(api, user="alice") -> str:
    """grant 50, top-up 100, charge 40, hold 100 (10 plan + 90 top-up), capture 60, charge 20,
    hold 10 released: plan 0, top-up 30 at the end."""
    ws = api.workspace(user)
    give_topup(ws, 100)
    tick = iter(range(1, 100))

    def later():
        clock.set_now(T0 + timedelta(seconds=next(tick)))

    later()
    assert api.charge(ws, user, "image", {"quality": "ultra"}, key="c1").status_code == 201
    later()
    h = api.post(f"/v1/workspaces/{ws}/holds", user,
                 {"service": "video", "options": {"resolution": "1080p", "seconds": 5}},
                 headers={"Idempotency-Key": "h1"}).json
    later()
    assert api.post(f"/v1/workspaces/{ws}/holds/{h['hold_id']}/capture", user,
                    {"credits": 60}).status_code == 200
    later()
    assert api.charge(ws, user, "image", {"quality": "hd"}, key="c2").status_code == 201
    later()
    h2 = api.post(f"/v1/workspaces/{ws}/holds", user, {"service": "image", "options": {}},
                  headers={"Idempotency-Key": "h2"}).json
    later()
    assert api.post(f"/v1/workspaces/{ws}/holds/{h2['hold_id']}/release", user, {}).status_code == 200
    return ws


def test_ledger_newest_first_with_exact_balances(api):
    ws = busy_wallet(api)
    got = entries(api, ws, "alice")
    assert [(e["kind"], e["plan_delta"], e["topup_delta"]) for e in got] == [
        ("release", 0, 10),
        ("hold", 0, -10),
        ("charge", 0, -20),
        ("capture", 0, 40),
        ("hold", -10, -90),
        ("charge", -40, 0),
        ("topup", 0, 100),
        ("grant", 50, 0),
    ]
    assert [e["balance"] for e in got] == [
        bal(30, 0, 30),
        bal(20, 0, 20, 10),
        bal(30, 0, 30),
        bal(50, 0, 50),  # 60 captured: the hold's 10 plan + 50 top-up; 40 top-up back
        bal(10, 0, 10, 100),
        bal(110, 10, 100),
        bal(150, 50, 100),
        bal(50, 50),
    ]
    assert got[0]["balance"] == balance(api, ws, "alice")
    ids = [e["entry_id"] for e in got]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    ats = [e["at"] for e in got]
    assert ats == sorted(ats, reverse=True)
    assert all(ENTRY_KEYS <= set(e) and e["kind"] in KINDS for e in got)
    assert_audit_clean()


def test_ledger_balances_follow_from_the_deltas(api):
    ws = busy_wallet(api)
    got = entries(api, ws, "alice")
    before = {"plan": 0, "topup": 0}
    for e in reversed(got):  # oldest first
        b = e["balance"]
        assert b["plan"] == before["plan"] + e["plan_delta"]
        assert b["topup"] == before["topup"] + e["topup_delta"]
        assert b["available"] == b["plan"] + b["topup"]
        assert min(b.values()) >= 0
        before = b


def test_ledger_refs_and_actors(api):
    ws = api.workspace("alice")
    assert api.charge(ws, "alice", "image", {"quality": "hd"}, key="order-7").status_code == 201
    h = api.post(f"/v1/workspaces/{ws}/holds", "alice", {"service": "image", "options": {}},
                 headers={"Idempotency-Key": "h1"}).json
    clock.set_now(T0 + timedelta(seconds=1))
    api.post(f"/v1/workspaces/{ws}/holds/{h['hold_id']}/capture", "alice", {"credits": 5})
    cap, hld, chg, grant = entries(api, ws, "alice")
    assert chg["kind"] == "charge" and chg["actor"] == "alice"
    assert chg["ref"]["service"] == "image" and chg["ref"]["idempotency_key"] == "order-7"
    assert chg["ref"]["options"] == {"quality": "hd", "count": 1}
    assert hld["kind"] == "hold" and hld["ref"]["idempotency_key"] == "h1" and hld["actor"] == "alice"
    assert cap["kind"] == "capture" and cap["ref"]["id"] == h["hold_id"] and cap["actor"] == "alice"
    assert grant["actor"] == "system" and grant["ref"]["plan"] == "free"


def test_failed_requests_write_nothing(api):
    ws = api.workspace("alice")
    before = entries(api, ws, "alice")
    api.charge(ws, "alice", "avatar", key="too-much")  # 402
    api.charge(ws, "alice", "nothing", key="bad")  # 400
    api.charge(ws, "mallory", key="stranger")  # 404
    api.post(f"/v1/workspaces/{ws}/holds", "alice", {"service": "image", "ttl_seconds": 0},
             headers={"Idempotency-Key": "h"})  # 400
    assert entries(api, ws, "alice") == before
    assert_audit_clean()


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7, 8])
def test_paging_covers_every_entry_exactly_once(api, limit):
    ws = busy_wallet(api)
    everything = entries(api, ws, "alice")
    assert len(everything) == 8
    seen, cursor, pages = [], None, 0
    while True:
        path = f"/v1/workspaces/{ws}/ledger?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = api.get(path, "alice")
        assert r.status_code == 200, r.body
        assert len(r.json["entries"]) <= limit
        seen += r.json["entries"]
        cursor = r.json["next_cursor"]
        pages += 1
        assert pages <= 10
        if cursor is None:
            break
    assert seen == everything  # same entries, same order, same balances
    assert pages >= -(-8 // limit)


def test_paging_with_many_entries(api):
    ws = api.workspace("alice")
    give_topup(ws, 5000)
    for i in range(120):
        clock.set_now(T0 + timedelta(seconds=i + 1))
        assert api.charge(ws, "alice", "image", {}, key=f"k{i}").status_code == 201
    default = api.get(f"/v1/workspaces/{ws}/ledger", "alice").json
    assert len(default["entries"]) == 50 and default["next_cursor"]
    seen, cursor = [], None
    while True:
        r = api.get(f"/v1/workspaces/{ws}/ledger?limit=100" + (f"&cursor={cursor}" if cursor else ""), "alice")
        seen += r.json["entries"]
        cursor = r.json["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 122  # 120 charges, a top-up, the grant
    assert len({e["entry_id"] for e in seen}) == 122
    assert seen[0]["balance"] == bal(3850, 0, 3850)
    assert seen[-1]["balance"] == bal(50, 50)
    assert [e["balance"]["available"] for e in seen[:-2]] == [3850 + 10 * i for i in range(120)]
    assert_audit_clean()


def test_a_page_is_stable_while_the_wallet_moves_on(api):
    ws = busy_wallet(api)
    first = api.get(f"/v1/workspaces/{ws}/ledger?limit=3", "alice").json
    clock.set_now(T0 + timedelta(minutes=5))
    assert api.charge(ws, "alice", key="new").status_code == 201
    rest = api.get(f"/v1/workspaces/{ws}/ledger?limit=100&cursor={first['next_cursor']}", "alice").json
    full = entries(api, ws, "alice")
    assert first["entries"] + rest["entries"] == full[1:]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=-1", "limit=abc", "limit=1.5",
                                   f"limit={10**30}", "cursor=not-a-cursor", "cursor=e30"])
def test_bad_paging_parameters_are_400(api, query):
    ws = api.workspace("alice")
    error(api.get(f"/v1/workspaces/{ws}/ledger?{query}", "alice"), 400, "invalid_request")


def test_only_owner_and_admin_read_the_ledger(api):
    ws = busy_wallet(api)
    add_member(ws, "bob", "member")
    add_member(ws, "carol", "admin")
    assert api.get(f"/v1/workspaces/{ws}/ledger", "alice").status_code == 200
    r = api.get(f"/v1/workspaces/{ws}/ledger", "carol")
    assert r.status_code == 200, r.body
    assert r.json["entries"] == entries(api, ws, "alice")[:50]
    error(api.get(f"/v1/workspaces/{ws}/ledger", "bob"), 403, "forbidden")
    error(api.get(f"/v1/workspaces/{ws}/ledger", "mallory"), 404, "not_found")
    error(api.get(f"/v1/workspaces/{ws}/ledger"), 401, "unauthenticated")
    error(api.get(f"/v1/workspaces/{ws}/ledger", "svc-image", scope=SERVICE), 403, "forbidden")
    error(api.get("/v1/workspaces/ws_pnothing/ledger", "alice"), 404, "not_found")


def test_a_cursor_does_not_open_someone_elses_ledger(api):
    ws = busy_wallet(api)
    cursor = api.get(f"/v1/workspaces/{ws}/ledger?limit=2", "alice").json["next_cursor"]
    assert cursor
    add_member(ws, "bob", "member")
    api.workspace("mallory")
    error(api.get(f"/v1/workspaces/{ws}/ledger?limit=2&cursor={cursor}", "bob"), 403, "forbidden")
    error(api.get(f"/v1/workspaces/{ws}/ledger?limit=2&cursor={cursor}", "mallory"), 404, "not_found")
