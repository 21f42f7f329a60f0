"""8 members charging one team pool at once over HTTP, with per-member caps per cycle.

Each scenario has its own team workspace: the owner opens it, adds 8 members with their cycle_cap
(None: uncapped), and buys a +1,000 top-up through the Stripe stand-in (pool: free 50 + 1,000).
Then 8 threads, one per member, released together, each fire the member's N charges of 10 (image,
standard) with unique Idempotency-Keys, several in flight at a time, so that a member races
the others for the pool and races itself for its cap. A reader polls the balance meanwhile.

"pool covers the caps": what the caps allow adds up to less than the pool, so every capped member
gets exactly cap/10 charges, every uncapped one all N, and every refusal is member_cap_reached.
"pool short of the caps": the caps allow more than the pool holds, so exactly pool // 10 charges
succeed and insufficient_credits appears as well.

A 503 `unavailable` ("the wallet is busy; retry with the same idempotency key") is not one of the
contract's answers to a charge, but it promises that a retry with the same key is safe: the burst
retries it (after Retry-After) so that the caps and the pool are checked on every request's final
answer, and a test of its own counts how many first answers were 503.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

POOL = 1050  # free 50 + one +1,000 top-up
COST = 10  # image, standard
N = 25  # charges per member: 8 x 25 = 200 requests
IN_FLIGHT_PER_MEMBER = 4  # 8 members x 4: 32 requests in flight on one pool
BUSY_RETRIES = 10  # a 503 answer is retried with the same key after its Retry-After, as a client would


@dataclass(frozen=True)
class Scenario:
    name: str
    caps: tuple  # one per member; None: no cap

    def quota(self, cap) -> int:
        """The charges a member may make if the pool never runs dry."""
        return N if cap is None else min(N, cap // COST)


COVERED = Scenario("covered", (0, 30, 50, 70, 90, 110, None, None))  # 35 + 2 x 25 = 85 charges: 850 <= 1,050
SHORT = Scenario("short", (100, 100, 150, 150, 200, 200, None, None))  # 140 charges' worth > 105 in the pool
assert sum(COVERED.quota(c) for c in COVERED.caps) * COST <= POOL
assert sum(SHORT.quota(c) for c in SHORT.caps) * COST > POOL


def _team(server, sc: Scenario) -> tuple[requests.Session, str, list[str]]:
    owner = server.session(f"tc-{sc.name}-owner")
    r = owner.post(server.url + "/v1/workspaces", json={"name": f"Caps {sc.name}"})
    assert r.status_code == 201, r.text
    ws = r.json()["workspace_id"]
    members = [f"tc-{sc.name}-m{i}" for i in range(len(sc.caps))]
    for user, cap in zip(members, sc.caps):
        r = owner.put(f"{server.url}/v1/workspaces/{ws}/members/{user}", json={"role": "member", "cycle_cap": cap})
        assert r.status_code == 200, r.text
        assert r.json() == {"user_id": user, "role": "member", "cycle_cap": cap, "spent_this_cycle": 0}
    r = owner.post(f"{server.url}/v1/workspaces/{ws}/checkout/topup", json={"pack": "pack_1000"})
    assert r.status_code == 201, r.text
    paid = requests.post(r.json()["checkout_url"] + "/pay", allow_redirects=False, timeout=60)
    assert paid.status_code == 303, paid.text
    balance = owner.get(f"{server.url}/v1/workspaces/{ws}/subscription").json()["balance"]
    assert balance == {"available": POOL, "plan": 50, "topup": 1000, "held": 0}
    return owner, ws, members


def _ledger(owner: requests.Session, url: str, ws: str, member: str | None = None) -> list[dict]:
    entries, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {}), **({"member": member} if member else {})}
        r = owner.get(f"{url}/v1/workspaces/{ws}/ledger", params=params)
        assert r.status_code == 200, r.text
        entries += r.json()["entries"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return entries


@dataclass
class Burst:
    sc: Scenario
    owner: requests.Session
    ws: str
    members: list[str]
    results: dict[str, list[tuple[int, dict]]]  # each member's final answers
    first: Counter  # the statuses of the first answers, before any retry of a 503
    busy: list[dict]  # the 503 answers: body and Retry-After
    seen: list[int]  # available, as a reader polling the subscription saw it during the burst


@pytest.fixture(scope="module", params=[COVERED, SHORT], ids=lambda sc: sc.name)
def burst(server, request) -> Burst:
    sc: Scenario = request.param
    owner, ws, members = _team(server, sc)
    tokens = {user: server.token(user) for user in members}
    url = f"{server.url}/v1/workspaces/{ws}/charges"
    start = threading.Barrier(len(members))
    done = threading.Event()
    first: Counter = Counter()
    busy: list[dict] = []

    def charge(user: str, i: int) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {tokens[user]}",
                   "Idempotency-Key": f"{sc.name}-{user}-{i}-{uuid.uuid4().hex[:6]}"}
        for attempt in range(BUSY_RETRIES + 1):
            r = requests.post(url, json={"service": "image", "options": {"quality": "standard"}},
                              headers=headers, timeout=120)
            if attempt == 0:
                first[r.status_code] += 1
            if r.status_code != 503:
                break
            busy.append({"body": r.json(), "retry_after": r.headers.get("Retry-After")})
            time.sleep(float(r.headers.get("Retry-After") or 1))
        return r.status_code, r.json()

    def member_burst(user: str) -> list[tuple[int, dict]]:
        start.wait()
        with ThreadPoolExecutor(max_workers=IN_FLIGHT_PER_MEMBER) as own:
            return list(own.map(lambda i: charge(user, i), range(N)))

    seen: list[int] = []

    def watch() -> None:
        reader = requests.Session()
        reader.headers["Authorization"] = owner.headers["Authorization"]
        while not done.is_set():
            seen.append(reader.get(f"{server.url}/v1/workspaces/{ws}/subscription", timeout=60)
                        .json()["balance"]["available"])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=len(members)) as pool:
            results = dict(zip(members, pool.map(member_burst, members)))
    finally:
        done.set()
        watcher.join()
    return Burst(sc, owner, ws, members, results, first, busy, seen)


def test_no_member_above_its_cap_and_the_pool_exact(server, burst):
    sc, owner, ws, members, results = burst.sc, burst.owner, burst.ws, burst.members, burst.results

    # Every final answer is a 201 or an honest 402.
    statuses = Counter(status for rs in results.values() for status, _ in rs)
    assert set(statuses) <= {201, 402}, statuses
    assert sum(statuses.values()) == len(members) * N
    ok = {user: sum(1 for status, _ in rs if status == 201) for user, rs in results.items()}
    refusals = {user: Counter(body["error"]["code"] for status, body in rs if status == 402)
                for user, rs in results.items()}
    for user, rs in results.items():
        for status, body in rs:
            if status == 201:
                assert body["credits"] == COST and body["balance"]["available"] >= 0, body
            else:
                err = body["error"]
                assert err["code"] in ("member_cap_reached", "insufficient_credits"), body
                # Caps and the pool are multiples of 10: what is left when 10 is refused is 0.
                assert (err["required"], err["available"]) == (COST, 0), body
    total = sum(ok.values())

    for user, cap in zip(members, sc.caps):
        if cap is not None:
            assert ok[user] * COST <= cap, (user, cap, ok[user])
        if ok[user] < sc.quota(cap):
            # Below its cap, a member can only have been refused because the pool ran dry.
            assert set(refusals[user]) <= {"insufficient_credits"}, (user, cap, ok[user], refusals[user])

    if sc is COVERED:
        assert ok == {user: sc.quota(cap) for user, cap in zip(members, sc.caps)}
        assert sum(refusals.values(), Counter()) == Counter(member_cap_reached=len(members) * N - total)
    else:
        assert total == POOL // COST
        unmet = sum(sc.quota(cap) - ok[user] for user, cap in zip(members, sc.caps))
        assert unmet == sum(sc.quota(c) for c in sc.caps) - POOL // COST
        assert sum(r["insufficient_credits"] for r in refusals.values()) >= unmet > 0

    # The pool: never below zero, each success exactly 10 off it, nothing lost or counted twice.
    final = owner.get(f"{server.url}/v1/workspaces/{ws}/subscription").json()["balance"]
    assert final == {"available": POOL - COST * total, "plan": 0, "topup": POOL - COST * total, "held": 0}
    after = sorted(body["balance"]["available"] for rs in results.values() for status, body in rs if status == 201)
    assert after == [POOL - COST * k for k in range(total, 0, -1)]
    assert burst.seen and min(burst.seen) >= 0 and burst.seen == sorted(burst.seen, reverse=True), burst.seen

    entries = _ledger(owner, server.url, ws)
    charges = [e for e in entries if e["kind"] == "charge"]
    assert [e["kind"] for e in entries[len(charges):]] in (["topup", "grant"], ["grant", "topup"])
    assert [e["balance"]["available"] for e in charges] == [POOL - COST * k for k in range(total, 0, -1)]
    assert all(e["plan_delta"] + e["topup_delta"] == -COST for e in charges)
    assert Counter(e["actor"] for e in charges) == +Counter(ok)
    for user in members:  # the ledger filtered by member finds the same charges
        mine = _ledger(owner, server.url, ws, member=user)
        assert [e["entry_id"] for e in mine] == [e["entry_id"] for e in charges if e["actor"] == user], user

    # What each member spent this cycle, as the members route reports it (cap left as it is).
    for user, cap in zip(members, sc.caps):
        r = owner.put(f"{server.url}/v1/workspaces/{ws}/members/{user}", json={"role": "member"})
        assert r.status_code == 200, r.text
        assert r.json() == {"user_id": user, "role": "member", "cycle_cap": cap, "spent_this_cycle": COST * ok[user]}

    audit = server.cli("audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_no_charge_is_turned_away_as_busy(burst):
    """32 charges in flight on one team pool are answered 201 or 402 the first time, not 503."""
    for b in burst.busy:
        assert b["body"]["error"]["code"] == "unavailable" and b["retry_after"], b
    assert burst.first[503] == 0, (f"{burst.first[503]} of {sum(burst.first.values())} first answers were "
                                   f"503 unavailable: {dict(burst.first)}; e.g. {burst.busy[:1]}")
