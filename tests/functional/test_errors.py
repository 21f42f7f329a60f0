"""Bad input over HTTP: always a 4xx with {"error": {"code", "message"}}, never a 500, never a
stack trace, and nothing deducted."""
from __future__ import annotations

import json

import pytest

from tests.functional.test_charges import assert_audit_clean, bal, balance, error

LIMIT = 65536  # MAX_BODY_BYTES default


def check(r, status: int, code: str):
    err = error(r, status, code)
    text = r.body.decode("utf-8", "replace")
    assert "Traceback" not in text and 'File "' not in text
    return err


def post_raw(api, path, raw: bytes, user="alice", key="k1"):
    return api.post(path, user, raw=raw, headers={"Idempotency-Key": key})


@pytest.fixture
def ws(api):
    return api.workspace("alice")


def routes(ws: str, hold_id: str = "hold_01MDNFHZM0TDWETP6J6W9XZ2GW_10_0") -> list[str]:
    return [
        "/v1/estimate",
        f"/v1/workspaces/{ws}/charges",
        f"/v1/workspaces/{ws}/holds",
        f"/v1/workspaces/{ws}/holds/{hold_id}/capture",
        "/v1/workspaces",
    ]


# --- malformed bodies -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw",
    [
        b'{"service": "image"',
        b"{service: image}",
        b"{'service': 'image'}",
        b'{"service": "image",}',
        b"nul",
        b"\xff\xfe\x00garbage",
        b'{"service": "\xff"}',
        b"[" * 50000,
        b'{"a":' * 10000 + b"1" + b"}" * 10000,  # deep nesting, under the size limit
    ],
)
def test_malformed_json(api, ws, raw):
    for path in routes(ws):
        check(post_raw(api, path, raw), 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(50, 50)


@pytest.mark.parametrize("raw", [b"[]", b'["image"]', b'"image"', b"42", b"null", b"true", b"1e400"])
def test_body_not_an_object(api, ws, raw):
    for path in routes(ws):
        check(post_raw(api, path, raw), 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(50, 50)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"service": None},
        {"service": 5},
        {"service": ["image"]},
        {"service": {"id": "image"}},
        {"service": "image", "options": "hd"},
        {"service": "image", "options": ["quality", "hd"]},
        {"service": "image", "options": {"count": "2"}},
        {"service": "image", "options": {"count": 2.5}},
        {"service": "image", "options": {"count": True}},
        {"service": "image", "options": {"count": None}},
        {"service": "image", "options": {"quality": 20}},
        {"service": "image", "user_id": 5},
        {"service": "image", "idempotency_key": 5},
        {"service": "image", "credits": 10},  # a client never names the cost
        {"service": "image", "unknown_field": 1},
    ],
)
def test_wrong_types_on_charges(api, ws, body):
    r = api.post(f"/v1/workspaces/{ws}/charges", "alice", body, headers={"Idempotency-Key": "k"})
    check(r, 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(50, 50)


@pytest.mark.parametrize(
    "body",
    [
        {"service": "image", "ttl_seconds": "900"},
        {"service": "image", "ttl_seconds": 900.5},
        {"service": "image", "ttl_seconds": [900]},
        {"service": "image", "ttl_seconds": False},
        {"service": "image", "options": {"quality": "mega"}},
    ],
)
def test_wrong_types_on_holds(api, ws, body):
    r = api.post(f"/v1/workspaces/{ws}/holds", "alice", body, headers={"Idempotency-Key": "k"})
    check(r, 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(50, 50)


@pytest.mark.parametrize("body", [{"credits": "5"}, {"credits": 5.5}, {"credits": None, "extra": 1},
                                  {"credits": [5]}, {"credits": True}])
def test_wrong_types_on_capture(api, ws, body):
    h = api.post(f"/v1/workspaces/{ws}/holds", "alice", {"service": "image"},
                 headers={"Idempotency-Key": "h"}).json
    r = api.post(f"/v1/workspaces/{ws}/holds/{h['hold_id']}/capture", "alice", body)
    check(r, 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(40, 40, 0, 10)


def test_release_takes_no_fields(api, ws):
    h = api.post(f"/v1/workspaces/{ws}/holds", "alice", {"service": "image"},
                 headers={"Idempotency-Key": "h"}).json
    r = api.post(f"/v1/workspaces/{ws}/holds/{h['hold_id']}/release", "alice", {"credits": 5})
    check(r, 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(40, 40, 0, 10)


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": 5}, {"name": "x" * 101}, {"name": None}])
def test_wrong_types_on_workspaces(api, body):
    check(api.post("/v1/workspaces", "alice", body), 400, "invalid_request")


# --- huge numbers -------------------------------------------------------------------------------

HUGE = 10**30


def test_huge_integers_everywhere(api, ws):
    charges = f"/v1/workspaces/{ws}/charges"
    holds = f"/v1/workspaces/{ws}/holds"
    for path, body in [
        (charges, {"service": "image", "options": {"count": HUGE}}),
        (charges, {"service": "image", "options": {"count": -HUGE}}),
        (charges, {"service": "video", "options": {"seconds": HUGE}}),
        (charges, {"service": "audio", "options": {"seconds": HUGE}}),
        (holds, {"service": "image", "ttl_seconds": HUGE}),
        (holds, {"service": "image", "ttl_seconds": -HUGE}),
        (holds, {"service": "video", "options": {"seconds": HUGE}}),
        ("/v1/estimate", {"service": "image", "options": {"count": HUGE}}),
    ]:
        check(api.post(path, "alice", body, headers={"Idempotency-Key": "k"}), 400, "invalid_request")
    check(api.post(f"/v1/workspaces/{ws}/charges", "alice", raw=b'{"service":"image","options":{"count":'
                   + b"9" * 5000 + b"}}", headers={"Idempotency-Key": "k"}), 400, "invalid_request")
    h = api.post(holds, "alice", {"service": "image"}, headers={"Idempotency-Key": "h"}).json
    for credits in (HUGE, -HUGE):
        r = api.post(f"/v1/workspaces/{ws}/holds/{h['hold_id']}/capture", "alice", {"credits": credits})
        check(r, 400, "invalid_request")
    huge_id = f"hold_{h['hold_id'].split('_')[1]}_{'9' * 12}_0_{h['hold_id'].split('_')[4]}"
    check(api.post(f"/v1/workspaces/{ws}/holds/{huge_id}/capture", "alice", {}), 404, "not_found")
    check(api.get(f"/v1/workspaces/{ws}/ledger?limit={HUGE}", "alice"), 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(40, 40, 0, 10)
    assert_audit_clean()


@pytest.mark.parametrize("raw", [b'{"service":"image","options":{"count":NaN}}',
                                 b'{"service":"image","options":{"count":Infinity}}',
                                 b'{"service":"image","options":{"count":-Infinity}}',
                                 b'{"service":"image","options":{"count":1e400}}',
                                 b'{"service":"image","options":{"count":2E0}}'])
def test_non_finite_and_float_numbers(api, ws, raw):
    check(post_raw(api, f"/v1/workspaces/{ws}/charges", raw), 400, "invalid_request")
    check(post_raw(api, "/v1/estimate", raw), 400, "invalid_request")
    assert balance(api, ws, "alice") == bal(50, 50)


# --- oversized bodies -----------------------------------------------------------------------------

def padded(body: dict, size: int) -> bytes:
    raw = json.dumps(body).encode()
    assert len(raw) < size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def test_oversized_body_is_413(api, ws):
    raw = padded({"service": "image", "options": {}}, LIMIT + 1)
    for path in routes(ws):
        check(post_raw(api, path, raw), 413, "payload_too_large")
    big = json.dumps({"service": "image", "options": {"x": "y" * 200_000}}).encode()
    check(post_raw(api, f"/v1/workspaces/{ws}/charges", big), 413, "payload_too_large")
    assert balance(api, ws, "alice") == bal(50, 50)


def test_body_of_exactly_the_limit_is_read(api, ws):
    raw = padded({"service": "image", "options": {}}, LIMIT)
    assert len(raw) == LIMIT
    r = post_raw(api, f"/v1/workspaces/{ws}/charges", raw)
    assert r.status_code == 201, r.body
    assert balance(api, ws, "alice") == bal(40, 40)
    assert_audit_clean()


def test_oversized_garbage_is_413_not_400(api, ws):
    check(post_raw(api, f"/v1/workspaces/{ws}/charges", b"\xff" * (LIMIT + 10)), 413, "payload_too_large")


# --- auth and addressing errors come in the same shape --------------------------------------------

@pytest.mark.parametrize("auth", [None, "", "Bearer", "Bearer x.y.z", "Basic YWxpY2U6cHc=", "bearer  "])
def test_bad_authorization_is_401(api, ws, auth):
    headers = {"Idempotency-Key": "k"}
    if auth is not None:
        headers["Authorization"] = auth
    r = api.post(f"/v1/workspaces/{ws}/charges", None, {"service": "image"}, headers=headers)
    check(r, 401, "unauthenticated")
    check(api.get("/v1/me", None, headers={"Authorization": auth} if auth is not None else None),
          401, "unauthenticated")


def test_auth_is_checked_before_the_body(api, ws):
    check(api.post(f"/v1/workspaces/{ws}/charges", None, raw=b"{not json"), 401, "unauthenticated")


@pytest.mark.parametrize("workspace", ["nothing", "ws_p" + "0" * 24, "ws_t" + "z" * 26, "x" * 500, "%20"])
def test_unknown_workspace_is_404(api, workspace):
    api.workspace("alice")
    body = {"service": "image"}
    check(api.post(f"/v1/workspaces/{workspace}/charges", "alice", body, headers={"Idempotency-Key": "k"}),
          404, "not_found")
    check(api.post(f"/v1/workspaces/{workspace}/holds", "alice", body, headers={"Idempotency-Key": "k"}),
          404, "not_found")
    check(api.get(f"/v1/workspaces/{workspace}/subscription", "alice"), 404, "not_found")
    check(api.get(f"/v1/workspaces/{workspace}/ledger", "alice"), 404, "not_found")


def test_empty_body_on_charge_is_400_not_500(api, ws):
    check(post_raw(api, f"/v1/workspaces/{ws}/charges", b""), 400, "invalid_request")
    check(post_raw(api, f"/v1/workspaces/{ws}/charges", b"   \n"), 400, "invalid_request")
