def test_first_me_grants_fifty(api):
    r = api.get("/v1/me", "alice")
    assert r.status_code == 200, r.body
    ws = r.json["workspaces"][0]
    assert ws["kind"] == "personal" and ws["role"] == "owner"
    view = api.get(f"/v1/workspaces/{ws['workspace_id']}/subscription", "alice").json
    assert view["balance"] == {"available": 50, "plan": 50, "topup": 0, "held": 0}
    r = api.charge(ws["workspace_id"], "alice", key="k1")
    assert r.status_code == 201, r.body
    print(r.json)
    r = api.get(f"/v1/workspaces/{ws['workspace_id']}/ledger", "alice")
    print(r.json)
