"""Team workspaces: members, roles, caps per cycle."""
from __future__ import annotations

from datetime import datetime, timezone

from chalicelib import clock
from chalicelib.credits import ledger
from tests.functional.test_charges import give_topup


def team(api, owner="olga") -> str:
    r = api.post("/v1/workspaces", owner, {"name": "Studio"})
    assert r.status_code == 201, r.body
    return r.json["workspace_id"]


def put(api, ws, caller, user, role, **extra):
    return api.call("PUT", f"/v1/workspaces/{ws}/members/{user}", caller, {"role": role, **extra})


def test_roles_and_listing(api):
    ws = team(api)
    assert put(api, ws, "olga", "adam", "admin").json == {"user_id": "adam", "role": "admin", "cycle_cap": None,
                                                          "spent_this_cycle": 0}
    assert put(api, ws, "adam", "mia", "member").status_code == 200
    roles = {w["workspace_id"]: w["role"] for w in api.get("/v1/me", "mia").json["workspaces"]}
    assert roles[ws] == "member"
    # A member sees the balance, but not billing or members.
    assert api.get(f"/v1/workspaces/{ws}/subscription", "mia").status_code == 200
    assert put(api, ws, "mia", "zed", "member").status_code == 403
    assert api.post(f"/v1/workspaces/{ws}/checkout/topup", "mia", {"pack": "pack_1000"}).status_code == 403
    # The owner cannot be demoted or removed by an admin, nor leave without handing over.
    assert put(api, ws, "adam", "olga", "member").status_code == 403
    assert api.call("DELETE", f"/v1/workspaces/{ws}/members/olga", "adam").status_code == 403
    assert api.call("DELETE", f"/v1/workspaces/{ws}/members/olga", "olga").status_code == 409
    # Hand-over: the old owner stays as admin.
    assert put(api, ws, "olga", "adam", "owner").status_code == 200
    roles = {u: w["role"] for u in ("olga", "adam") for w in api.get("/v1/me", u).json["workspaces"]
             if w["workspace_id"] == ws}
    assert roles == {"olga": "admin", "adam": "owner"}
    assert api.call("DELETE", f"/v1/workspaces/{ws}/members/mia", "olga").status_code == 204
    assert api.get(f"/v1/workspaces/{ws}/subscription", "mia").status_code == 404
    assert ws not in [w["workspace_id"] for w in api.get("/v1/me", "mia").json["workspaces"]]


def test_cap_stops_a_member_and_resets_with_the_cycle(api):
    ws = team(api)
    give_topup(ws, 1000)
    assert put(api, ws, "olga", "mia", "member", cycle_cap=30).json["cycle_cap"] == 30
    codes = [api.charge(ws, "mia", key=f"m{i}").status_code for i in range(4)]
    assert codes == [201, 201, 201, 402]
    r = api.charge(ws, "mia", key="m4")
    assert (r.json["error"]["code"], r.json["error"]["required"], r.json["error"]["available"]) == ("member_cap_reached", 10, 0)
    # A hold counts against the cap until released.
    put(api, ws, "olga", "mia", "member", cycle_cap=50)
    h = api.post(f"/v1/workspaces/{ws}/holds", "mia", {"service": "image", "options": {"quality": "hd"}},
                 headers={"Idempotency-Key": "h1"}).json
    assert api.charge(ws, "mia", key="m5").status_code == 402
    api.post(f"/v1/workspaces/{ws}/holds/{h['hold_id']}/release", "mia")
    assert api.charge(ws, "mia", key="m6").status_code == 201
    assert put(api, ws, "olga", "mia", "member").json["spent_this_cycle"] == 40
    # The owner has no cap; the pool pays.
    assert api.charge(ws, "olga", "avatar", key="o1").status_code == 201
    clock.set_now(datetime(2027, 3, 1, tzinfo=timezone.utc))
    assert api.get(f"/v1/workspaces/{ws}/subscription", "olga").status_code == 200  # renews
    assert put(api, ws, "olga", "mia", "member").json["spent_this_cycle"] == 0
    assert [api.charge(ws, "mia", key=f"n{i}").status_code for i in range(6)] == [201] * 5 + [402]
    assert ledger.audit().clean


def test_ledger_filtered_by_member(api):
    ws = team(api)
    give_topup(ws, 1000)
    put(api, ws, "olga", "mia", "member")
    for i in range(7):
        api.charge(ws, "mia" if i % 2 else "olga", key=f"c{i}")
    r = api.post(f"/v1/workspaces/{ws}/charges", "svc-1", {"service": "image", "user_id": "mia"},
                 scope="credits:service", headers={"Idempotency-Key": "s1"})
    assert r.status_code == 201, r.body
    page = api.get(f"/v1/workspaces/{ws}/ledger?member=mia&limit=2", "olga").json
    assert [e["actor"] for e in page["entries"]] == ["mia via svc-1", "mia"]
    rest = api.get(f"/v1/workspaces/{ws}/ledger?member=mia&limit=10&cursor={page['next_cursor']}", "olga").json
    assert [e["actor"] for e in rest["entries"]] == ["mia", "mia"]
    assert rest["next_cursor"] is None
    # Balances stay those of the whole wallet after each entry.
    full = {e["entry_id"]: e["balance"] for e in api.get(f"/v1/workspaces/{ws}/ledger?limit=100", "olga").json["entries"]}
    assert all(full[e["entry_id"]] == e["balance"] for e in page["entries"] + rest["entries"])


def test_enterprise_contract_set_by_an_operator(api):
    from chalicelib.credits import plans
    from chalicelib.errors import InvalidRequest
    from tests.conftest import T0

    ws = team(api)
    result = plans.set_contract(ws, 20000, datetime(2027, 12, 31, tzinfo=timezone.utc), T0)
    assert result["granted_now"] == 20000
    v = api.get(f"/v1/workspaces/{ws}/subscription", "olga").json
    assert (v["plan"]["id"], v["balance"]["plan"]) == ("enterprise", 20000)
    personal = api.workspace("olga")
    try:
        plans.set_contract(personal, 100, datetime(2027, 12, 31, tzinfo=timezone.utc), T0)
        raise AssertionError("a personal workspace took an enterprise contract")
    except InvalidRequest:
        pass
    clock.set_now(datetime(2027, 3, 1, tzinfo=timezone.utc))
    plans.set_contract(ws, 30000, datetime(2027, 12, 31, tzinfo=timezone.utc), clock.now())
    clock.set_now(datetime(2027, 3, 31, 10, tzinfo=timezone.utc))
    assert api.get(f"/v1/workspaces/{ws}/subscription", "olga").json["balance"]["plan"] == 30000
    assert ledger.audit().clean
