"""Members and team workspaces under lost answers: removing a member or opening a team, resent,
happens once and leaves nothing behind."""
from __future__ import annotations

from tests.faults.injector import Faults


def memberships(api, user: str) -> list[str]:
    return [w["workspace_id"] for w in api.get("/v1/me", user).json["workspaces"] if w["kind"] == "team"]


def test_a_member_removed_whose_answer_was_lost_is_removed_once_and_everywhere(api, store_time):
    team = api.post("/v1/workspaces", "alice", {"name": "Crew"}).json["workspace_id"]
    assert api.call("PUT", f"/v1/workspaces/{team}/members/bob", "alice", {"role": "member"}).status_code == 200
    assert memberships(api, "bob") == [team]
    with Faults() as faults:
        faults.next("timeout_after_write")
        r = api.call("DELETE", f"/v1/workspaces/{team}/members/bob", "alice")
    assert r.status_code == 204  # the resend found bob gone: that is what was asked
    assert faults.calls["TransactWriteItems"] == 2
    assert memberships(api, "bob") == []  # the membership row went with the wallet's member entry
    assert api.get(f"/v1/workspaces/{team}/subscription", "bob").status_code == 404
    again = api.call("DELETE", f"/v1/workspaces/{team}/members/bob", "alice")
    assert (again.status_code, again.json["error"]["code"]) == (404, "not_found")


def test_a_team_opened_with_a_key_is_opened_once_however_often_it_is_sent(api, store_time):
    with Faults() as faults:
        faults.next("timeout_after_write")
        first = api.post("/v1/workspaces", "alice", {"name": "Crew"}, headers={"Idempotency-Key": "crew-1"})
    assert first.status_code == 201
    assert faults.calls["TransactWriteItems"] == 2
    again = api.post("/v1/workspaces", "alice", {"name": "Crew"}, headers={"Idempotency-Key": "crew-1"})
    assert (again.status_code, again.json) == (201, first.json)
    assert memberships(api, "alice") == [first.json["workspace_id"]]
    other = api.post("/v1/workspaces", "alice", {"name": "Other"}, headers={"Idempotency-Key": "crew-1"})
    assert (other.status_code, other.json["error"]["code"]) == (409, "idempotency_conflict")
    # Another person's key of the same name is another workspace.
    bobs = api.post("/v1/workspaces", "bob", {"name": "Crew"}, headers={"Idempotency-Key": "crew-1"})
    assert bobs.status_code == 201 and bobs.json["workspace_id"] != first.json["workspace_id"]
