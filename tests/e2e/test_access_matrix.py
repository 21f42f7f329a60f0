"""Who may call what, over HTTP against the local server: every route of app.py x every kind of
caller, each cell asserting the exact status (and the error code of a 4xx).

One team workspace is set up once for the module: its owner opens it (POST /v1/workspaces), adds an
admin and a member, and buys a +1,000 top-up through the Stripe stand-in so that charges succeed.

Callers:
  anonymous   no Authorization header
  non_member  a signed-in person who is not in the workspace
  member      role member
  admin       role admin
  owner       the owner
  service     a token with scope credits:service (its sub is no member); where the body takes
              user_id it names the member

Billing changes (subscription change/cancel/resume) for owner and admin answer 409 invalid_state:
the workspace is on free with no Stripe subscription, and the service checks the caller's role
before it looks at the subscription (billing/service.py: _manager_wallet, then `if not w.sub_id`),
so a 409 proves authorisation passed, where a member gets 403 for the very same request.
The portal answers 200 for them because the module's top-up made the workspace a Stripe customer.
Not in the matrix: /standin/* pages (no bearer auth; the stand-in's own tests cover them); the
webhook is only checked for "no signature -> 400".
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
import requests

from tests.e2e.conftest import SECRET

CALLERS = ("anonymous", "non_member", "member", "admin", "owner", "service")
USERS = {"non_member": "am-outsider", "member": "am-member", "admin": "am-admin", "owner": "am-owner",
         "service": "am-image-service"}
IMAGE = {"service": "image", "options": {"quality": "standard"}}


@dataclass
class Team:
    url: str
    ws: str
    tokens: dict[str, str]  # caller -> bearer token ("" for anonymous)
    holds_made: list = field(default_factory=list)

    def headers(self, caller: str, key: str | None = None) -> dict:
        h = {"Authorization": f"Bearer {self.tokens[caller]}"} if self.tokens.get(caller) else {}
        if key:
            h["Idempotency-Key"] = key
        return h

    def call(self, caller: str, method: str, path: str, body: dict | None = None, key: str | None = None):
        path = path.replace("{ws}", self.ws)
        return requests.request(method, self.url + path, json=body, headers=self.headers(caller, key), timeout=60)

    def spend_body(self, caller: str) -> dict:
        return {**IMAGE, "user_id": USERS["member"]} if caller == "service" else dict(IMAGE)

    def open_hold(self, caller: str) -> str:
        """An open hold whose creator is the caller (for the service: made by it for the member);
        for callers who cannot make one, the member's."""
        maker = caller if caller in ("member", "admin", "owner", "service") else "member"
        r = self.call(maker, "POST", "/v1/workspaces/{ws}/holds", self.spend_body(maker), key=f"h-{uuid.uuid4()}")
        assert r.status_code == 201, r.text
        return r.json()["hold_id"]

    def add_member(self, user_id: str) -> None:
        r = self.call("owner", "PUT", f"/v1/workspaces/{{ws}}/members/{user_id}", {"role": "member"})
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def team(server) -> Team:
    tokens = {caller: server.token(user, "credits:service" if caller == "service" else "")
              for caller, user in USERS.items()}
    tokens["anonymous"] = ""
    t = Team(server.url, "", tokens)
    r = t.call("owner", "POST", "/v1/workspaces", {"name": "Matrix team"})
    assert r.status_code == 201, r.text
    t.ws = r.json()["workspace_id"]
    for caller in ("admin", "member"):
        r = t.call("owner", "PUT", f"/v1/workspaces/{{ws}}/members/{USERS[caller]}", {"role": caller})
        assert r.status_code == 200, r.text
    r = t.call("owner", "POST", "/v1/workspaces/{ws}/checkout/topup", {"pack": "pack_1000"})
    assert r.status_code == 201, r.text
    paid = requests.post(r.json()["checkout_url"] + "/pay", allow_redirects=False, timeout=60)
    assert paid.status_code == 303, paid.text
    view = t.call("owner", "GET", "/v1/workspaces/{ws}/subscription").json()
    assert view["balance"] == {"available": 1050, "plan": 50, "topup": 1000, "held": 0}
    return t


# --- the routes, each as one request a caller makes ----------------------------------------------

def _capture(t: Team, caller: str):
    return t.call(caller, "POST", f"/v1/workspaces/{{ws}}/holds/{t.open_hold(caller)}/capture", {"credits": 5})


def _release(t: Team, caller: str):
    return t.call(caller, "POST", f"/v1/workspaces/{{ws}}/holds/{t.open_hold(caller)}/release")


def _delete_member(t: Team, caller: str):
    target = f"am-leaver-{caller}-{uuid.uuid4().hex[:8]}"
    t.add_member(target)
    return t.call(caller, "DELETE", f"/v1/workspaces/{{ws}}/members/{target}")


ROUTES = {
    "GET /v1/catalog": lambda t, c: t.call(c, "GET", "/v1/catalog"),
    "GET /v1/openapi.json": lambda t, c: t.call(c, "GET", "/v1/openapi.json"),
    "POST /v1/estimate": lambda t, c: t.call(c, "POST", "/v1/estimate", {"service": "video",
                                                                         "options": {"seconds": 7}}),
    "GET /v1/me": lambda t, c: t.call(c, "GET", "/v1/me"),
    "POST /v1/workspaces": lambda t, c: t.call(c, "POST", "/v1/workspaces", {"name": f"Side team of {c}"}),
    "GET subscription": lambda t, c: t.call(c, "GET", "/v1/workspaces/{ws}/subscription"),
    "GET ledger": lambda t, c: t.call(c, "GET", "/v1/workspaces/{ws}/ledger?limit=5"),
    "GET ledger?member=": lambda t, c: t.call(c, "GET", f"/v1/workspaces/{{ws}}/ledger?limit=5&member={USERS['member']}"),
    "POST charges": lambda t, c: t.call(c, "POST", "/v1/workspaces/{ws}/charges", t.spend_body(c),
                                        key=f"c-{uuid.uuid4()}"),
    "POST holds": lambda t, c: t.call(c, "POST", "/v1/workspaces/{ws}/holds", t.spend_body(c),
                                      key=f"h-{uuid.uuid4()}"),
    "POST hold capture": _capture,
    "POST hold release": _release,
    "PUT members": lambda t, c: t.call(c, "PUT", f"/v1/workspaces/{{ws}}/members/am-new-{c}-{uuid.uuid4().hex[:8]}",
                                       {"role": "member", "cycle_cap": 100}),
    "DELETE members": _delete_member,
    "POST checkout/subscription": lambda t, c: t.call(c, "POST", "/v1/workspaces/{ws}/checkout/subscription",
                                                      {"plan": "team", "interval": "month"}),
    "POST checkout/topup": lambda t, c: t.call(c, "POST", "/v1/workspaces/{ws}/checkout/topup",
                                               {"pack": "pack_1000"}),
    "POST portal": lambda t, c: t.call(c, "POST", "/v1/workspaces/{ws}/portal"),
    "POST subscription/change": lambda t, c: t.call(c, "POST", "/v1/workspaces/{ws}/subscription/change",
                                                    {"plan": "team", "interval": "year"}),
    "POST subscription/cancel": lambda t, c: t.call(c, "POST", "/v1/workspaces/{ws}/subscription/cancel",
                                                    {"when": "period_end"}),
    "POST subscription/resume": lambda t, c: t.call(c, "POST", "/v1/workspaces/{ws}/subscription/resume"),
}

# --- what each caller gets -----------------------------------------------------------------------

OK, CREATED, GONE = (200, None), (201, None), (204, None)
UNAUTH, FORBIDDEN, HIDDEN = (401, "unauthenticated"), (403, "forbidden"), (404, "not_found")
NO_SUBSCRIPTION = (409, "invalid_state")  # authorised; the free workspace has nothing to change


def row(anonymous, non_member, member, admin, owner, service) -> dict:
    return dict(zip(CALLERS, (anonymous, non_member, member, admin, owner, service)))


EXPECTED = {
    # anyone (no token needed; a token is not refused either)
    "GET /v1/catalog": row(OK, OK, OK, OK, OK, OK),
    "GET /v1/openapi.json": row(OK, OK, OK, OK, OK, OK),
    "POST /v1/estimate": row(OK, OK, OK, OK, OK, OK),
    # a person, not a service
    "GET /v1/me": row(UNAUTH, OK, OK, OK, OK, FORBIDDEN),
    "POST /v1/workspaces": row(UNAUTH, CREATED, CREATED, CREATED, CREATED, FORBIDDEN),
    # members (and, for spending, generation services)
    "GET subscription": row(UNAUTH, HIDDEN, OK, OK, OK, FORBIDDEN),
    "POST charges": row(UNAUTH, HIDDEN, CREATED, CREATED, CREATED, CREATED),
    "POST holds": row(UNAUTH, HIDDEN, CREATED, CREATED, CREATED, CREATED),
    "POST hold capture": row(UNAUTH, HIDDEN, OK, OK, OK, OK),
    "POST hold release": row(UNAUTH, HIDDEN, OK, OK, OK, OK),
    # owner and admin
    "GET ledger": row(UNAUTH, HIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    "GET ledger?member=": row(UNAUTH, HIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),  # even filtered to themselves
    "PUT members": row(UNAUTH, HIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    "DELETE members": row(UNAUTH, HIDDEN, FORBIDDEN, GONE, GONE, FORBIDDEN),
    "POST checkout/subscription": row(UNAUTH, HIDDEN, FORBIDDEN, CREATED, CREATED, FORBIDDEN),
    "POST checkout/topup": row(UNAUTH, HIDDEN, FORBIDDEN, CREATED, CREATED, FORBIDDEN),
    "POST portal": row(UNAUTH, HIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    "POST subscription/change": row(UNAUTH, HIDDEN, FORBIDDEN, NO_SUBSCRIPTION, NO_SUBSCRIPTION, FORBIDDEN),
    "POST subscription/cancel": row(UNAUTH, HIDDEN, FORBIDDEN, NO_SUBSCRIPTION, NO_SUBSCRIPTION, FORBIDDEN),
    "POST subscription/resume": row(UNAUTH, HIDDEN, FORBIDDEN, NO_SUBSCRIPTION, NO_SUBSCRIPTION, FORBIDDEN),
}
assert set(EXPECTED) == set(ROUTES)

CELLS = [pytest.param(route, caller, *EXPECTED[route][caller], id=f"{route} | {caller}")
         for route in ROUTES for caller in CALLERS]


def check(r: requests.Response, status: int, code: str | None) -> None:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    if status >= 400:
        assert r.json()["error"]["code"] == code, r.text
    elif status != 204:
        assert "error" not in r.json(), r.text


@pytest.mark.parametrize("route,caller,status,code", CELLS)
def test_access(team, route, caller, status, code):
    check(ROUTES[route](team, caller), status, code)


def test_every_route_of_app_is_in_the_matrix():
    """A route added to app.py without a row here fails this test."""
    import ast

    from tests.e2e.conftest import ROOT

    routes = set()
    for node in ast.walk(ast.parse((ROOT / "app.py").read_text())):
        for d in getattr(node, "decorator_list", []):
            if isinstance(d, ast.Call) and getattr(d.func, "attr", None) == "route":
                methods = next(ast.literal_eval(k.value) for k in d.keywords if k.arg == "methods")
                routes |= {(m, ast.literal_eval(d.args[0])) for m in methods}
    covered = {
        ("GET", "/v1/catalog"), ("GET", "/v1/openapi.json"), ("POST", "/v1/estimate"), ("GET", "/v1/me"), ("POST", "/v1/workspaces"),
        ("GET", "/v1/workspaces/{ws}/subscription"), ("GET", "/v1/workspaces/{ws}/ledger"),
        ("POST", "/v1/workspaces/{ws}/charges"), ("POST", "/v1/workspaces/{ws}/holds"),
        ("POST", "/v1/workspaces/{ws}/holds/{hold_id}/capture"),
        ("POST", "/v1/workspaces/{ws}/holds/{hold_id}/release"),
        ("PUT", "/v1/workspaces/{ws}/members/{user_id}"), ("DELETE", "/v1/workspaces/{ws}/members/{user_id}"),
        ("POST", "/v1/workspaces/{ws}/checkout/subscription"), ("POST", "/v1/workspaces/{ws}/checkout/topup"),
        ("POST", "/v1/workspaces/{ws}/portal"), ("POST", "/v1/workspaces/{ws}/subscription/change"),
        ("POST", "/v1/workspaces/{ws}/subscription/cancel"), ("POST", "/v1/workspaces/{ws}/subscription/resume"),
    }
    assert len(covered) == len(ROUTES) - 1  # the ledger has two rows: with and without ?member=
    not_bearer = {("POST", "/stripe/webhook")} | {r for r in routes if r[1].startswith("/standin/")}
    assert routes - not_bearer == covered


def test_webhook_without_signature_is_400(server):
    r = requests.post(server.url + "/stripe/webhook", json={"type": "checkout.session.completed",
                                                            "data": {"object": {}}}, timeout=30)
    check(r, 400, "invalid_signature")


# --- around the edges of the matrix ---------------------------------------------------------------

@pytest.mark.parametrize("caller", ["member", "admin", "owner"])
@pytest.mark.parametrize("action", ["capture", "release"])
def test_only_its_creator_or_a_service_settles_a_hold(team, caller, action):
    """Capture/release is for the hold's creator and services: not even the owner settles a
    member's hold, and a member cannot settle the admin's."""
    maker = "admin" if caller == "member" else "member"
    hold_id = team.open_hold(maker)
    r = team.call(caller, "POST", f"/v1/workspaces/{{ws}}/holds/{hold_id}/{action}")
    check(r, 403, "forbidden")
    # ...and the hold is still open for its creator.
    check(team.call(maker, "POST", f"/v1/workspaces/{{ws}}/holds/{hold_id}/release"), 200, None)


@pytest.mark.parametrize("route", ["GET subscription", "GET ledger", "POST charges", "POST holds",
                                   "PUT members", "POST checkout/topup", "POST subscription/cancel"])
def test_a_hidden_workspace_looks_like_no_workspace(team, route):
    """What a non-member gets for the team equals what a member gets for a workspace that does not
    exist: same status, code and message, so the 404 reveals nothing."""
    hidden = ROUTES[route](team, "non_member")
    missing = ROUTES[route](Team(team.url, "ws_tnosuchworkspace000000000", team.tokens), "member")
    check(hidden, 404, "not_found")
    assert hidden.json() == missing.json()


@pytest.mark.parametrize("route", ["POST charges", "POST holds"])
def test_a_person_cannot_spend_for_someone_else(team, route):
    path = "/v1/workspaces/{ws}/" + route.split()[1]
    r = team.call("member", "POST", path, {**IMAGE, "user_id": USERS["admin"]}, key=f"x-{uuid.uuid4()}")
    check(r, 403, "forbidden")


@pytest.mark.parametrize("route", ["POST charges", "POST holds"])
def test_a_service_must_name_a_member(team, route):
    path = "/v1/workspaces/{ws}/" + route.split()[1]
    check(team.call("service", "POST", path, IMAGE, key=f"s-{uuid.uuid4()}"), 400, "invalid_request")
    r = team.call("service", "POST", path, {**IMAGE, "user_id": USERS["non_member"]}, key=f"s-{uuid.uuid4()}")
    check(r, 404, "not_found")


@pytest.mark.parametrize("route", ["GET subscription", "GET ledger", "PUT members", "POST checkout/topup",
                                   "POST portal", "POST subscription/cancel", "GET /v1/me"])
def test_a_service_token_of_the_owner_is_still_only_a_service(server, team, route):
    """The scope decides, not who the sub is: a service token whose sub is the owner may not do
    what the owner may."""
    t = Team(team.url, team.ws, {"service": server.token(USERS["owner"], "credits:service")})
    check(ROUTES[route](t, "service"), 403, "forbidden")


@pytest.mark.parametrize("route", ["GET /v1/me", "GET subscription", "POST charges"])
def test_a_token_signed_with_another_secret_is_401(team, route):
    import jwt

    forged = jwt.encode({"sub": USERS["owner"], "aud": "studio-credits", "exp": 4102444800},
                        SECRET[::-1], algorithm="HS256")
    t = Team(team.url, team.ws, {"owner": forged})
    check(ROUTES[route](t, "owner"), 401, "unauthenticated")


def test_the_matrix_left_the_books_straight(server, team):
    audit = server.cli("audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
