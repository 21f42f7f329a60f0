"""The simulation's driver: operations on the real service (the Chalice app through its test
client, signed Stripe webhooks, the renewal job, an injected clock), the model's expectation for
each, and the invariants checked after every step.

Used by the hypothesis state machine (test_simulation.py), which picks the operations and shrinks a
failure to the shortest sequence, and by bench/bench_simulation.py, which walks it at random.

Operations answer as the service answers; a 5xx under injected faults is allowed only as 503
`unavailable`, and the client then does what clients do: sends the same request again (the same
Idempotency-Key; Stripe redelivers the same event) until it gets an answer. That answer must be
the first answer, if the first attempt applied, or a fresh correct one if it did not: either way
the model, which applies every request once, must agree.

Operations: charge and hold (random service and options, by the person or by a generation service
on their behalf; 402s expected when the buckets or a member's cap cannot cover it), capture (a
quarter to all of a hold, or more than held: 400) and release of any earlier hold (open, settled
or expired: replay or 409), a client's retry of an earlier charge or hold (the first answer,
exactly), the same key with another body (409), top-up checkouts (paid at once or by a delayed
method) and refunds of them, monthly subscriptions created, renewed each period, cancelled now or
at period end, Stripe delivering any pending event, all of them in a random order, or one already
delivered again (a duplicate, maybe days later), the clock moving on (holds expire, cycles end),
the renewal job, balance reads, a member's cap, and bursts of DynamoDB faults of every kind.

Stripe's order is random, with one limit: before a subscription's period ends, Stripe has
delivered what it sent about that subscription (at the end it starts the next period). An old
subscription's events may still be on their way when the next one starts.

Invariants after every step: the audit (every wallet is the sum of its ledger, no bucket below
zero, held = open holds) over one scan; each wallet's buckets, open holds, members' room, plan and
cycle equal the model's; and, through the ledger route, its entries sum to the wallet, one top-up
per checkout session, and grants exactly the model's (no cycle granted twice).
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from chalicelib import auth, clock
from chalicelib.credits import ledger, models, renewal, rules, spending
from chalicelib.credits.models import WALLET_SK, plain
from chalicelib.credits.store import scan_all
from tests.simulation.model import (ACTIONS, PACKS, PRICE, SECOND, Event, Refusal, Sub, Topup, WalletModel, iso,
                                    ts)
from tests.stripe_events import Stripe, sign

T0 = datetime(2027, 1, 31, 9, 0, tzinfo=timezone.utc)
SECRET = "whsec_simulation_0123456789"
SERVICE = "svc-generation"
MAX_TRIES = 40  # a client gives up after this many 5xx answers in a row (a failure of the test)
ADVANCES = (timedelta(minutes=1), timedelta(minutes=10), timedelta(hours=1), timedelta(hours=7),
            timedelta(days=1), timedelta(days=3), timedelta(days=11), timedelta(days=27))
TTLS = (60, 900, 3600)


class SimulationFailure(AssertionError):
    pass


def expect(cond: bool, what: str, **details: Any) -> None:
    if not cond:
        shown = "\n".join(f"  {k}: {v!r}" for k, v in details.items())
        raise SimulationFailure(f"{what}\n{shown}" if shown else what)


@dataclass
class Answer:
    status: int
    body: Any


@dataclass
class SpendRequest:
    """A charge or hold as a client sent it, and the first answer it got (for its retries)."""

    kind: str  # charge | hold
    w: int
    user: str
    via_service: bool
    body: dict
    key: str
    first: Answer


@dataclass
class HoldRecord:
    w: int
    hold_id: str
    creator: str
    via_service: bool
    reserved: int
    answers: dict = field(default_factory=dict)  # fp -> the first 200 answer (for retries)


@dataclass
class Workspace:
    ws: str
    kind: str
    owner: str
    users: tuple[str, ...]
    model: WalletModel


class Sim:
    def __init__(self, client, faults=None):
        self.client = client
        self.faults = faults
        self.ops: Counter = Counter()  # operations run, by name
        self.answers: Counter = Counter()  # 5xx answers seen, by status (client retried them)
        self._tokens: dict[tuple[str, str], str] = {}

    # --- set-up ---------------------------------------------------------------------------
    def reset(self) -> None:
        """A fresh table and three workspaces on free: two personal, one team of two."""
        from moto.core.model_instances import reset_model_data

        if self.faults is not None:
            self.faults.clear()
        reset_model_data()  # moto keeps every model instance it made; data stays
        spending._hints.clear()
        if models.Wallet.exists():
            models.Wallet.delete_table()
        models.create_table()
        self.now = T0
        clock.set_now(T0)
        self.n = 0
        self.requests: list[SpendRequest] = []
        self.holds: list[HoldRecord] = []
        self.events: list[Event] = []
        self.subs: dict[int, Sub] = {}  # workspace index -> its current Stripe subscription
        self.topups: dict[str, Topup] = {}  # payment intent -> what the service should know of it
        self.refunded: dict[str, int] = {}  # payment intent -> money refunded so far (Stripe's view)
        self.pi_ws: dict[str, int] = {}
        self.workspaces: list[Workspace] = []
        self._paged: dict[str, str] = {}  # workspace -> its wallet's `last` when its ledger was paged
        for user in ("alice", "bob"):
            r = self.call("GET", "/v1/me", user)
            ws = r.body["workspaces"][0]["workspace_id"]
            self.workspaces.append(Workspace(ws, "personal", user, (user,), self._fresh_model(ws, "personal")))
        r = self.call("POST", "/v1/workspaces", "carol", {"name": "Studio"})
        expect(r.status == 201, "team workspace", answer=r)
        ws = r.body["workspace_id"]
        r = self.call("PUT", f"/v1/workspaces/{ws}/members/dave", "carol", {"role": "member"})
        expect(r.status == 200, "add member", answer=r)
        self.workspaces.append(Workspace(ws, "team", "carol", ("carol", "dave"), self._fresh_model(ws, "team")))

    def _fresh_model(self, ws: str, kind: str) -> WalletModel:
        m = WalletModel(ws, kind, "free", T0)
        m._grant(0, *m.cycle(), 50)
        return m

    # --- talking to the service -----------------------------------------------------------
    def _token(self, user: str, scope: str = "") -> str:
        if (user, scope) not in self._tokens:
            self._tokens[(user, scope)] = auth.mint_dev_token(user, scope=scope, ttl=10 * 86400)
        return self._tokens[(user, scope)]

    def call(self, method: str, path: str, user: str | None = None, body: Any = None,
             headers: dict | None = None, scope: str = "", raw: bytes | None = None) -> Answer:
        h = {"Content-Type": "application/json", **(headers or {})}
        if user:
            h["Authorization"] = "Bearer " + self._token(user, scope)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        r = getattr(self.client.http, method.lower())(path, headers=h, body=data)
        try:
            parsed = json.loads(r.body) if r.body else None
        except ValueError:
            parsed = r.body
        return Answer(r.status_code, parsed)

    def until_answered(self, send: Callable[[], Answer], what: str) -> Answer:
        """Send, and send again while the answer is a 5xx (a client's retry with the same key,
        Stripe's redelivery after a lost answer). Only 503 `unavailable` may come back."""
        for _ in range(MAX_TRIES):
            a = send()
            if a.status < 500:
                return a
            self.answers[a.status] += 1
            code = a.body.get("error", {}).get("code") if isinstance(a.body, dict) else None
            expect(a.status == 503 and code == "unavailable",
                   f"{what}: a fault surfaced as {a.status} {code} (only 503 unavailable may)", answer=a.body)
        raise SimulationFailure(f"{what}: still 5xx after {MAX_TRIES} tries")

    def _key(self) -> str:
        self.n += 1
        return f"sim-{self.n}"

    def tick(self) -> None:
        """Each step happens a second after the one before."""
        self.move_to(self.now + SECOND)

    # --- spending -------------------------------------------------------------------------
    def _spend_path(self, kind: str, w: int) -> str:
        return f"/v1/workspaces/{self.workspaces[w].ws}/{'charges' if kind == 'charge' else 'holds'}"

    def _send_spend(self, req: SpendRequest, body: dict | None = None) -> Answer:
        scope = "credits:service" if req.via_service else ""
        caller = SERVICE if req.via_service else req.user
        return self.until_answered(
            lambda: self.call("POST", self._spend_path(req.kind, req.w), caller, body or req.body,
                              headers={"Idempotency-Key": req.key}, scope=scope),
            f"{req.kind} {req.key}")

    def spend(self, kind: str, w: int, action: int, user: int = 0, via_service: bool = False,
              ttl: int = 900) -> Answer:
        self.ops[kind] += 1
        self.tick()
        space = self.workspaces[w]
        who = space.users[user % len(space.users)]
        service, options, cost = ACTIONS[action % len(ACTIONS)]
        body = {"service": service, "options": options}
        if via_service:
            body["user_id"] = who
        if kind == "hold":
            body["ttl_seconds"] = ttl
        req = SpendRequest(kind, w, who, via_service, body, self._key(), Answer(0, None))
        got = self._send_spend(req)
        req.first = got
        self._check_fresh_spend(req, cost, got)
        self.requests.append(req)
        return got

    def _check_fresh_spend(self, req: SpendRequest, cost: int, got: Answer) -> None:
        """A request the service has not recorded: the model decides the answer."""
        m = self.workspaces[req.w].model
        try:
            p, t = m.spend(cost, self.now, req.user)
        except Refusal as r:
            self._expect_refusal(got, r, f"{req.kind} {req.key}")
            return
        expect(got.status == 201, f"{req.kind} {req.key}: expected 201", answer=got, model=m.balance())
        b = got.body
        if req.kind == "charge":
            expect(set(b) == {"charge_id", "credits", "from_plan", "from_topup", "balance"}
                   and b["charge_id"].startswith("chg_") and (b["credits"], b["from_plan"], b["from_topup"]) == (cost, p, t),
                   f"charge {req.key}: the answer", answer=b, want=(cost, p, t))
        else:
            expires = self.now + timedelta(seconds=req.body["ttl_seconds"])
            parsed = rules.parse_hold_id(b.get("hold_id", ""))
            expect(parsed is not None and parsed[1:] == (p, t, req.user) and b["credits"] == cost
                   and b["expires_at"] == iso(expires), f"hold {req.key}: the answer", answer=b, want=(p, t, req.user))
            from tests.simulation.model import Hold

            m.holds[b["hold_id"]] = Hold(b["hold_id"], p, t, ts(expires), req.user)
            self.holds.append(HoldRecord(req.w, b["hold_id"], req.user, req.via_service, cost))
        expect(b["balance"] == m.balance(), f"{req.kind} {req.key}: the balance", got=b["balance"], want=m.balance())

    def _expect_refusal(self, got: Answer, r: Refusal, what: str) -> None:
        err = got.body.get("error", {}) if isinstance(got.body, dict) else {}
        expect(got.status == r.status and err.get("code") == r.code
               and all(err.get(k) == v for k, v in r.extra.items()),
               f"{what}: expected {r.status} {r.code} {r.extra}", answer=got)

    def retry(self, i: int) -> None:
        """A client sends an earlier charge or hold again, the same key and body."""
        if not self.requests:
            return
        self.ops["retry"] += 1
        self.tick()
        req = self.requests[i % len(self.requests)]
        got = self._send_spend(req)
        if req.first.status == 201:
            expect(got.status == req.first.status and got.body == req.first.body,
                   f"retry of {req.kind} {req.key}: not answered as the first time", first=req.first, retry=got)
            return
        # Refused the first time: nothing was recorded, so this is a fresh request.
        cost = ACTIONS[[a[:2] for a in ACTIONS].index((req.body["service"], req.body["options"]))][2]
        self._check_fresh_spend(req, cost, got)
        req.first = got

    def conflict(self, i: int, action: int) -> None:
        """The same key with a different request: 409 idempotency_conflict, nothing changes."""
        recorded = [r for r in self.requests if r.first.status == 201]
        if not recorded:
            return
        self.ops["conflict"] += 1
        self.tick()
        req = recorded[i % len(recorded)]
        service, options, _ = ACTIONS[action % len(ACTIONS)]
        if (service, options) == (req.body["service"], req.body["options"]):
            service, options, _ = ACTIONS[(action + 1) % len(ACTIONS)]
        got = self._send_spend(req, {**req.body, "service": service, "options": options})
        self._expect_refusal(got, Refusal(409, "idempotency_conflict"), f"{req.kind} {req.key} with another body")

    def settle(self, i: int, quarters: int | None) -> None:
        """Capture (quarters of the hold, 5 = more than held) or release (None) an earlier hold,
        open or not: a second identical request replays the first answer."""
        if not self.holds:
            return
        self.ops["release" if quarters is None else "capture"] += 1
        self.tick()
        h = self.holds[i % len(self.holds)]
        space = self.workspaces[h.w]
        m = space.model
        path = f"/v1/workspaces/{space.ws}/holds/{h.hold_id}/" + ("release" if quarters is None else "capture")
        captured = None if quarters is None else (h.reserved + 1 if quarters > 4 else h.reserved * quarters // 4)
        body = {} if captured is None else {"credits": captured}
        caller, scope = (SERVICE, "credits:service") if h.via_service else (h.creator, "")
        got = self.until_answered(lambda: self.call("POST", path, caller, body, scope=scope), f"settle {h.hold_id}")
        what = f"{'release' if captured is None else f'capture {captured}'} of {h.hold_id}"
        if captured is not None and captured > h.reserved:
            self._expect_refusal(got, Refusal(400, "invalid_request"), what)
            return
        fp = "release:0" if captured is None else f"capture:{captured}"
        try:
            answer = m.settle(h.hold_id, captured, self.now)
        except Refusal as r:
            self._expect_refusal(got, r, what)
            return
        if answer is None:
            expect(got.status == 200 and got.body == h.answers[fp],
                   f"retry of {what}: not answered as the first time", first=h.answers[fp], retry=got)
            return
        want = {**answer, "balance": m.balance()}
        expect(got.status == 200 and got.body == want, what, got=got, want=want)
        h.answers[fp] = got.body

    # --- Stripe ---------------------------------------------------------------------------
    def _event(self, w: int, shape: str, type_: str, obj: dict, created: datetime, apply, sub: str | None = None,
               loads: bool = False) -> None:
        self.n += 1
        payload = Stripe(shape).event(type_, obj, created=ts(created), event_id=f"evt_sim{self.n:08d}")
        self.events.append(Event(self.n, self.workspaces[w].ws, type_, payload, apply, sub, loads=loads, w=w))

    def pending(self) -> list[Event]:
        return [e for e in self.events if not e.applied]

    def deliver(self, i: int, again: bool = False) -> None:
        """Deliver a pending event (any of them: Stripe's order is not ours), or, with `again`,
        one delivered before (a duplicate, maybe days later)."""
        pool = [e for e in self.events if e.applied] if again else self.pending()
        if not pool:
            return
        self.ops["redeliver" if again else "deliver"] += 1
        self.tick()
        self._deliver(pool[i % len(pool)])

    def deliver_all(self, order: int) -> None:
        """Stripe catches up: every pending event, in an order drawn from `order`."""
        pool = self.pending()
        if not pool:
            return
        self.ops["deliver_all"] += 1
        self.tick()
        random.Random(order).shuffle(pool)
        for e in pool:
            self._deliver(e)

    def _deliver(self, e: Event) -> None:
        raw = json.dumps(e.payload).encode()
        got = self.until_answered(
            lambda: self.call("POST", "/stripe/webhook", raw=raw, headers={"Stripe-Signature": sign(raw, SECRET)}),
            f"{e.type} {e.payload['id']}")
        expect(got.status == 200, f"{e.type} {e.payload['id']}: expected 200", answer=got)
        e.deliveries += 1
        if not e.applied:
            e.applied = True
            e.apply(self.now)
        elif e.loads:
            self.workspaces[e.w].model.upkeep(self.now)

    def buy_topup(self, w: int, pack_index: int, delayed: bool, shape: str = "new") -> None:
        """A top-up checkout is paid: its completion (and, for a delayed method, the later
        async_payment_succeeded) is queued for delivery."""
        self.ops["topup"] += 1
        self.tick()
        pack = sorted(PACKS)[pack_index % len(PACKS)]
        credits, amount = PACKS[pack]
        self.n += 1
        session, pi = f"cs_sim{self.n}", f"pi_sim{self.n}"
        ws = self.workspaces[w].ws
        st = Stripe(shape)
        self.topups[pi] = Topup(ws, credits, amount)
        self.refunded[pi] = 0
        self.pi_ws[pi] = w

        def paid(now: datetime) -> None:
            record = self.topups[pi]
            m = self.workspaces[w].model
            if m.credit_topup(session, credits):
                record.credited = True
                if record.reversed:
                    m.take_back(record, record.reversed)

        if delayed:
            self._event(w, shape, "checkout.session.completed",
                        st.checkout_topup(ws, pack, session, pi, amount, paid=False), self.now, lambda now: None)
            self._event(w, shape, "checkout.session.async_payment_succeeded",
                        st.checkout_topup(ws, pack, session, pi, amount), self.now + SECOND, paid)
        else:
            self._event(w, shape, "checkout.session.completed",
                        st.checkout_topup(ws, pack, session, pi, amount), self.now, paid)

    def refund(self, i: int, full: bool) -> None:
        """Stripe refunds part (half) or all of a top-up's payment: charge.refunded carries the
        total refunded so far."""
        open_ = [pi for pi in self.topups if self.refunded[pi] < self.topups[pi].amount]
        if not open_:
            return
        self.ops["refund"] += 1
        self.tick()
        pi = open_[i % len(open_)]
        record = self.topups[pi]
        total = record.amount if full or self.refunded[pi] else record.amount // 2
        self.refunded[pi] = total
        w = self.pi_ws[pi]

        def apply(now: datetime) -> None:
            if record.credited:
                self.workspaces[w].model.take_back(record, max(total, record.reversed))
            else:  # remembered, and taken back when the top-up is credited
                record.reversed = max(record.reversed, total)

        self._event(w, "new", "charge.refunded",
                    Stripe("new").refunded_charge(pi, record.amount, total, charge_id=f"ch_{pi}"), self.now, apply)

    def subscribe(self, w: int, plan_index: int, shape: str) -> None:
        """The workspace's owner pays a monthly plan through Checkout: Stripe creates the
        subscription and its first invoice (events queued, any order)."""
        space = self.workspaces[w]
        if self._live_sub(w):
            return  # one subscription at a time (the last one's events may still be on their way)
        self.ops["subscribe"] += 1
        self.tick()
        plan = "team" if space.kind == "team" else ("creator", "pro")[plan_index % 2]
        self.n += 1
        sub = Sub(f"sub_sim{self.n}", space.ws, plan, self.now, shape)
        self.subs[w] = sub
        st = Stripe(shape)
        self._event(w, shape, "checkout.session.completed",
                    st.checkout_subscription(space.ws, plan, f"cs_sim{self.n}", sub.id), self.now, lambda now: None,
                    sub=sub.id)
        self._sub_event(w, sub, "created", self.now)
        self._invoice(w, sub, self.now + 2 * SECOND)

    def _live_sub(self, w: int) -> Sub | None:
        sub = self.subs.get(w)
        return sub if sub and not sub.ended else None

    def _sub_event(self, w: int, sub: Sub, type_: str, created: datetime, **kw) -> None:
        start, end = sub.period()
        obj = Stripe(sub.shape).subscription(sub.ws, sub.id, PRICE[sub.plan], ts(start), ts(end),
                                             anchor=ts(sub.anchor), **kw)
        deleted = type_ == "deleted"
        ended_at = datetime.fromtimestamp(kw["ended_at"], tz=timezone.utc) if deleted else None
        seen = f"{ts(created):012d}:evt_sim{self.n + 1:08d}"

        def apply(now: datetime) -> None:
            self.workspaces[w].model.subscription_event(sub, seen, start, deleted, ended_at, now)

        self._event(w, sub.shape, f"customer.subscription.{type_}", obj, created, apply, sub=sub.id, loads=True)

    def _invoice(self, w: int, sub: Sub, created: datetime) -> None:
        start, end = sub.period()
        self.n += 1
        obj = Stripe(sub.shape).invoice(sub.ws, sub.id, PRICE[sub.plan], ts(start), ts(end), f"in_sim{self.n}",
                                        reason="subscription_create" if sub.k == 0 else "subscription_cycle")

        def apply(now: datetime) -> None:
            self.workspaces[w].model.invoice_paid(sub, start, end, now)

        self._event(w, sub.shape, "invoice.paid", obj, created, apply, sub=sub.id, loads=True)

    def cancel(self, w: int, at_period_end: bool) -> None:
        sub = self._live_sub(w)
        if sub is None or sub.ends_at:
            return
        self.ops["cancel"] += 1
        self.tick()
        if at_period_end:
            sub.ends_at = sub.period()[1]
            self._sub_event(w, sub, "updated", self.now, cancel_at_period_end=True, cancel_at=ts(sub.ends_at))
        else:
            sub.ended = True
            self._sub_event(w, sub, "deleted", self.now, status="canceled", ended_at=ts(self.now))

    # --- time -----------------------------------------------------------------------------
    def move_to(self, target: datetime) -> None:
        """The clock moves on. Before a subscription's period ends, Stripe has delivered what it
        sent about it (any order; the model needs the period's events before the next ones);
        at the end Stripe starts the next period (subscription updated, invoice paid) or, if
        cancelled at period end, deletes the subscription."""
        while True:
            ends = [(sub.period()[1], w) for w, sub in self.subs.items() if not sub.ended and sub.period()[1] <= target]
            if not ends:
                break
            end, w = min(ends)
            sub = self.subs[w]
            for e in [e for e in self.pending() if e.subscription == sub.id]:
                self._deliver(e)
            self.now = max(self.now, end)
            clock.set_now(self.now)
            if sub.ends_at and sub.ends_at <= end:
                sub.ended = True
                self._sub_event(w, sub, "deleted", end, status="canceled", cancel_at_period_end=True,
                                cancel_at=ts(end), ended_at=ts(end))
            else:
                sub.k += 1
                self._sub_event(w, sub, "updated", end)
                self._invoice(w, sub, end + 2 * SECOND)
        self.now = target
        clock.set_now(target)

    def advance(self, step: int) -> None:
        self.ops["advance"] += 1
        self.move_to(self.now + ADVANCES[step % len(ADVANCES)])

    def renewal_job(self) -> None:
        """The daily job, run now (retried if a fault stops it, as Lambda retries it)."""
        self.ops["renewal_job"] += 1
        self.tick()
        for _ in range(MAX_TRIES):
            try:
                renewal.run(self.now)
                break
            except Exception as e:  # a fault the job could not absorb: it runs again
                self.answers[type(e).__name__] += 1
        else:
            raise SimulationFailure(f"the renewal job failed {MAX_TRIES} times in a row")
        for space in self.workspaces:
            space.model.renew(self.now)

    def read(self, w: int) -> None:
        """A balance read: renews and releases what is due first, and shows the model's balance."""
        self.ops["read"] += 1
        self.tick()
        space = self.workspaces[w]
        got = self.until_answered(lambda: self.call("GET", f"/v1/workspaces/{space.ws}/subscription", space.owner),
                                  "balance read")
        space.model.upkeep(self.now)
        expect(got.status == 200 and got.body["balance"] == space.model.balance()
               and got.body["plan"]["id"] == space.model.plan_id,
               f"balance of {space.ws}", got=got.body, want=space.model.balance(), plan=space.model.plan_id)

    def set_cap(self, cap: int | None) -> None:
        """The team's owner sets (or lifts, None) the member's cap per cycle."""
        self.ops["set_cap"] += 1
        self.tick()
        space = self.workspaces[2]
        member = space.users[1]
        got = self.until_answered(
            lambda: self.call("PUT", f"/v1/workspaces/{space.ws}/members/{member}", space.owner,
                              {"role": "member", "cycle_cap": cap}), "set cap")
        spent = space.model.set_cap(member, cap, self.now)
        want = {"user_id": member, "role": "member", "cycle_cap": cap, "spent_this_cycle": spent}
        expect(got.status == 200 and got.body == want, f"cap {cap} for {member}", got=got, want=want)

    def inject(self, kind: str, times: int) -> None:
        """The next `times` DynamoDB writes fail with this fault, whoever makes them."""
        if self.faults is not None:
            self.ops["inject"] += 1
            self.faults.next(kind, times)

    # --- invariants -----------------------------------------------------------------------
    def check(self) -> None:
        """After every step. The reads here change nothing: one scan of the table serves the
        audit and the comparison with the model; a ledger page is read through the route for a
        wallet that changed since its last page (and where nothing is due: else the route would
        renew or release first)."""
        items = list(scan_all())
        real_scan, ledger.scan_all = ledger.scan_all, lambda: iter(items)
        try:
            result = ledger.audit()  # the operators' audit, over this scan
        finally:
            ledger.scan_all = real_scan
        expect(result.clean, "audit: a wallet differs from the sum of its ledger", problems=result.problems)
        wallets = {raw["pk"]["S"]: models.Wallet.from_raw_data(raw) for raw in items if raw["sk"]["S"] == WALLET_SK}
        for space in self.workspaces:
            m, w = space.model, wallets[space.ws]
            have = {"plan": int(w.plan), "topup": int(w.topup), "held": int(w.held)}
            expect(min(have.values()) >= 0, f"{space.ws}: a bucket below zero", wallet=have)
            want = {"plan": m.plan, "topup": m.topup, "held": m.held}
            expect(have == want, f"{space.ws}: the wallet differs from the model", wallet=have, model=want,
                   now=iso(self.now))
            expect(sorted(w.open_holds()) == sorted(m.holds), f"{space.ws}: open holds differ from the model",
                   wallet=sorted(w.open_holds()), model=sorted(m.holds))
            room = {u: int(v) for u, v in plain(w.room).items()}
            expect(room == m.room, f"{space.ws}: what members may still spend differs from the model",
                   wallet=room, model=m.room)
            start, end = m.cycle()
            expect((w.plan_id, int(w.cycle_start), int(w.cycle_end)) == (m.plan_id, ts(start), ts(end)),
                   f"{space.ws}: plan and cycle differ from the model",
                   wallet=(w.plan_id, iso(datetime.fromtimestamp(int(w.cycle_start), timezone.utc)),
                           iso(datetime.fromtimestamp(int(w.cycle_end), timezone.utc))),
                   model=(m.plan_id, iso(start), iso(end)))
            if self._paged.get(space.ws) != w.last and not m.due(self.now):
                self._check_ledger(space, have)
                self._paged[space.ws] = w.last

    def _check_ledger(self, space: Workspace, have: dict) -> None:
        """The ledger as the route pages it: its sum is the wallet, the newest entry's balance
        is the wallet's, one top-up per checkout, grants exactly the model's (none twice)."""
        entries, cursor = [], None
        while True:
            path = f"/v1/workspaces/{space.ws}/ledger?limit=100" + (f"&cursor={cursor}" if cursor else "")
            page = self.call("GET", path, space.owner)
            expect(page.status == 200, "ledger page", answer=page)
            entries += page.body["entries"]
            cursor = page.body["next_cursor"]
            if not cursor:
                break
        total = {"plan": sum(e["plan_delta"] for e in entries), "topup": sum(e["topup_delta"] for e in entries),
                 "held": sum(e["held_delta"] for e in entries)}
        expect(total == have, f"{space.ws}: the ledger's sum differs from the wallet", ledger=total, wallet=have)
        expect(entries[0]["balance"] == {**have, "available": have["plan"] + have["topup"]},
               f"{space.ws}: the newest entry's balance differs from the wallet", entry=entries[0], wallet=have)
        sessions = Counter(e["ref"]["id"] for e in entries if e["kind"] == "topup")
        expect(all(n == 1 for n in sessions.values()), f"{space.ws}: a checkout credited twice", sessions=sessions)
        expect(sorted(sessions) == sorted(space.model.sessions), f"{space.ws}: top-ups differ from the model",
               ledger=sorted(sessions), model=sorted(space.model.sessions))
        grants = Counter((e["ref"]["plan"], e["ref"]["start"], e["ref"]["end"]) for e in entries if e["kind"] == "grant")
        expect(grants == space.model.grants, f"{space.ws}: grants differ from the model (a cycle granted twice?)",
               ledger=dict(grants), model=dict(space.model.grants))
