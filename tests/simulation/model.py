"""What every wallet should hold, in plain Python: the simulation's reference.

The model follows the product's rules (PRODUCT.md) and the places where the service applies them
lazily, because it is compared with the wallet as stored after every step, without a read that
would renew or release anything first:
- a cycle that has ended renews at the next charge, hold, capture, release, subscription event,
  invoice, balance or ledger read, or the daily job; a top-up or a refund does not renew;
- an expired hold is released by the next balance or ledger read and by subscription events and
  invoices (they read the wallet first); a charge or hold releases expired holds only when the
  buckets alone cannot cover it; capturing or releasing an expired hold returns it (409);
- an idempotent retry (charge, hold, capture, release) changes nothing and renews nothing.

Nothing here imports the service: cycle dates are anniversaries of the anchor (dateutil's
relativedelta clamps month ends as the service does), amounts are the catalog's defaults.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta

UNLIMITED = 10**15  # what the service counts an uncapped member's room down from
CREDITS = {"free": 50, "creator": 500, "pro": 2000, "team": 6000}
PRICE = {"creator": "price_creator_month", "pro": "price_pro_month", "team": "price_team_month"}
PACKS = {"pack_1000": (1000, 1200), "pack_5000": (5000, 5000)}  # credits, amount (cents)

# (service, options) -> credits, as the catalog prices them.
ACTIONS: list[tuple[str, dict, int]] = [
    ("image", {}, 10),
    ("image", {"quality": "hd", "count": 2}, 40),
    ("image", {"quality": "ultra", "count": 8}, 320),
    ("video", {"resolution": "720p", "seconds": 12}, 150),
    ("video", {"resolution": "1080p", "seconds": 30}, 600),
    ("audio", {"seconds": 61}, 30),
    ("avatar", {}, 100),
    ("upscale", {}, 0),
]


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Hold:
    hold_id: str
    p: int
    t: int
    expires: int
    creator: str
    lapsed: bool = False  # its plan credits belong to a cycle that has ended: they expire on return


@dataclass
class Settled:
    fp: str  # "expiry", "release:0", "capture:<n>"
    answer: dict | None  # the first answer (None when the system released it)


@dataclass
class Topup:
    workspace: str
    credits: int
    amount: int
    taken: int = 0  # credits taken back so far
    credited: bool = False
    reversed: int = 0  # money reported refunded before the top-up was credited


class Refusal(Exception):
    """The answer the model expects is an error: status and body's `error` fields to compare."""

    def __init__(self, status: int, code: str, **extra: Any):
        super().__init__(f"{status} {code} {extra}")
        self.status, self.code, self.extra = status, code, extra


@dataclass
class WalletModel:
    ws: str
    kind: str  # personal | team
    plan_id: str
    anchor: datetime
    k: int = 0  # the current cycle: [anchor + k months, anchor + k+1 months)
    epoch: int = 0
    plan: int = 0
    topup: int = 0
    holds: dict[str, Hold] = field(default_factory=dict)
    settled: dict[str, Settled] = field(default_factory=dict)
    paid_until: int | None = None
    sub_id: str | None = None
    sub_seen: str | None = None
    subs_ended: set = field(default_factory=set)
    granted: set = field(default_factory=set)  # (epoch, cycle start) granted: the ledger's keys
    grants: Counter = field(default_factory=Counter)  # (plan, cycle start iso) -> grants expected
    sessions: set = field(default_factory=set)  # checkout sessions credited
    caps: dict = field(default_factory=dict)  # member -> credits they may spend each cycle
    room: dict = field(default_factory=dict)  # member -> what they may still spend this cycle

    # --- cycles ---------------------------------------------------------------------------
    def cycle(self, k: int | None = None) -> tuple[datetime, datetime]:
        k = self.k if k is None else k
        return self.anchor + relativedelta(months=k), self.anchor + relativedelta(months=k + 1)

    @property
    def held(self) -> int:
        return sum(h.p + h.t for h in self.holds.values())

    def balance(self) -> dict:
        return {"available": self.plan + self.topup, "plan": self.plan, "topup": self.topup, "held": self.held}

    def credits_for_cycle(self, start: datetime, end: datetime) -> int:
        if self.plan_id == "free":
            return CREDITS["free"]
        if self.paid_until is None or self.paid_until < ts(end):
            return 0
        return CREDITS[self.plan_id]

    def _grant(self, epoch: int, start: datetime, end: datetime, credits: int) -> bool:
        if (epoch, ts(start)) in self.granted:
            return False
        self.granted.add((epoch, ts(start)))
        self.grants[(self.plan_id, iso(start), iso(end))] += 1
        self.plan += credits
        return True

    def due(self, now: datetime) -> bool:
        """Something the next read would do first: a renewal or an expired hold."""
        return ts(self.cycle()[1]) <= ts(now) or bool(self.expired(now))

    # --- lazy upkeep ----------------------------------------------------------------------
    def renew(self, now: datetime) -> None:
        """Close every ended cycle: plan credits expire (no rollover in the catalog), the next
        cycle grants if it is paid for. Holds open across it lose their plan part on return."""
        if ts(self.cycle()[1]) > ts(now):
            return
        while ts(self.cycle()[1]) <= ts(now):
            self.plan = 0
            self.k += 1
            start, end = self.cycle()
            credits = self.credits_for_cycle(start, end)
            if credits:
                self._grant(self.epoch, start, end, credits)
        self._new_cycle()

    def _new_cycle(self) -> None:
        """Caps count per cycle; holds open across it lose their plan part on return."""
        self.room = {u: cap for u, cap in self.caps.items() if cap is not None}
        for h in self.holds.values():
            h.lapsed = True

    def expired(self, now: datetime) -> list[str]:
        return [hid for hid, h in self.holds.items() if h.expires <= ts(now)]

    def release_expired(self, now: datetime) -> None:
        for hid in self.expired(now):
            self._settle(hid, None)
            self.settled[hid] = Settled("expiry", None)

    def upkeep(self, now: datetime) -> None:
        """What a balance or ledger read, or a billing event that reads the wallet, does first."""
        self.renew(now)
        self.release_expired(now)

    # --- spending -------------------------------------------------------------------------
    def spend(self, cost: int, now: datetime, user: str) -> tuple[int, int]:
        """A new charge or hold of `cost` by `user`: the split (plan, top-up), or Refusal(402)."""
        self.renew(now)
        if self.expired(now) and self.plan + self.topup < cost:
            self.release_expired(now)
        if cost and user in self.room and self.room[user] < cost:
            raise Refusal(402, "member_cap_reached", required=cost, available=max(self.room[user], 0))
        if self.plan + self.topup < cost:
            raise Refusal(402, "insufficient_credits", required=cost, available=self.plan + self.topup)
        if cost:
            self.room[user] = self.room.get(user, UNLIMITED) - cost
        p = min(self.plan, cost)
        self.plan -= p
        self.topup -= cost - p
        return p, cost - p

    def _settle(self, hid: str, captured: int | None) -> dict:
        h = self.holds.pop(hid)
        taken = captured or 0
        cap_plan = min(h.p, taken)
        ret_plan, ret_topup = h.p - cap_plan, h.t - (taken - cap_plan)
        back_plan = 0 if h.lapsed else ret_plan
        if ret_plan + ret_topup and not h.lapsed:  # no longer counts against its creator's cap
            self.room[h.creator] = self.room.get(h.creator, UNLIMITED) + ret_plan + ret_topup
        self.plan += back_plan
        self.topup += ret_topup
        answer = {"hold_id": hid}
        if captured is not None:
            answer["captured"] = captured
        answer["returned"] = back_plan + ret_topup
        if ret_plan - back_plan:
            answer["expired"] = ret_plan - back_plan
        return answer

    def settle(self, hid: str, captured: int | None, now: datetime) -> dict | None:
        """Capture (credits) or release (None) a hold this model knows. Returns the answer
        without balance, or None when the first answer is to be replayed; raises Refusal."""
        fp = "release:0" if captured is None else f"capture:{captured}"
        first = self.settled.get(hid)
        if first is not None:
            if first.fp == fp:
                return None  # a retry: the first answer again, nothing renews
            raise Refusal(409, "invalid_state")
        self.renew(now)
        h = self.holds[hid]
        if h.expires <= ts(now):
            self._settle(hid, None)
            self.settled[hid] = Settled("expiry", None)
            raise Refusal(409, "invalid_state")
        answer = self._settle(hid, captured)
        self.settled[hid] = Settled(fp, answer)
        return answer

    def set_cap(self, user: str, cap: int | None, now: datetime) -> int:
        """An owner sets a member's cap per cycle; returns what the member spent this cycle."""
        self.upkeep(now)
        room = self.room.get(user)
        old = self.caps.get(user)
        spent = 0 if room is None else (old if old is not None else UNLIMITED) - room
        if cap is not None:
            self.room[user] = max(cap - spent, 0)
        elif room is not None:
            self.room[user] = UNLIMITED - spent
        self.caps[user] = cap
        room = self.room.get(user)
        return 0 if room is None else (cap if cap is not None else UNLIMITED) - room

    # --- billing --------------------------------------------------------------------------
    def start_plan(self, plan_id: str, anchor: datetime, start: datetime, now: datetime,
                   sub_id: str | None) -> None:
        """The wallet moves onto a plan: the plan credits left expire, open holds lose their plan
        part, the new plan's first cycle is the one containing `start` (free: now)."""
        self.plan = 0
        self.epoch += 1
        self.plan_id = plan_id
        self.anchor = anchor
        at = max(start, now) if plan_id == "free" else start
        self.k = 0
        while ts(self.cycle()[1]) <= ts(at):
            self.k += 1
        self.paid_until = None
        self.sub_id = sub_id
        self._new_cycle()
        if plan_id == "free":
            self._grant(self.epoch, *self.cycle(), CREDITS["free"])

    def subscription_event(self, sub: Sub, seen: str, period_start: datetime, deleted: bool,
                           ended_at: datetime | None, now: datetime) -> None:
        self.upkeep(now)
        if sub.id in self.subs_ended:
            return
        if self.sub_id == sub.id and self.sub_seen and seen <= self.sub_seen:
            return
        if deleted:
            self.subs_ended.add(sub.id)  # a subscription that ended stays ended
            if self.sub_id not in (None, sub.id):
                return
            self.start_plan("free", ended_at, ended_at, now, None)
            return
        if self.superseded(sub, period_start):
            return
        if self.sub_id != sub.id or self.plan_id == "free":
            self.start_plan(sub.plan, sub.anchor, period_start, now, sub.id)
        self.sub_seen = seen

    def superseded(self, sub: Sub, period_start: datetime) -> bool:
        """An event of an older subscription than the current one (one at a time: it ended)."""
        return self.sub_id not in (None, sub.id) and ts(period_start) < ts(self.anchor)

    def invoice_paid(self, sub: Sub, period_start: datetime, period_end: datetime, now: datetime) -> None:
        self.upkeep(now)
        if sub.id in self.subs_ended or self.superseded(sub, period_start):
            return
        if self.sub_id != sub.id or self.plan_id == "free":
            # The plan starts from the invoice's period, which may be over by now (a late
            # delivery): then it renews before the payment is recorded, and grants nothing.
            self.start_plan(sub.plan, sub.anchor, period_start, now, sub.id)
            self.upkeep(now)
        until = ts(period_end)
        start, end = self.cycle()
        if self.paid_until and self.paid_until >= max(until, ts(end)):
            return
        self.paid_until = max(self.paid_until or 0, until)
        credits = self.credits_for_cycle(start, end)
        if credits:
            self._grant(self.epoch, start, end, credits)

    def credit_topup(self, session: str, credits: int) -> bool:
        if session in self.sessions:
            return False
        self.sessions.add(session)
        self.topup += credits
        return True

    def take_back(self, record: Topup, reversed_amount: int) -> None:
        target = min(record.credits, record.credits * reversed_amount // max(record.amount, 1))
        want = target - record.taken
        if want <= 0:
            return
        self.topup -= min(want, self.topup)
        record.taken = target


@dataclass
class Sub:
    """A Stripe subscription, monthly, as Stripe sees it."""

    id: str
    ws: str
    plan: str
    anchor: datetime
    shape: str
    k: int = 0  # the current billing period
    ends_at: datetime | None = None  # cancelled at period end
    ended: bool = False

    def period(self, k: int | None = None) -> tuple[datetime, datetime]:
        k = self.k if k is None else k
        return self.anchor + relativedelta(months=k), self.anchor + relativedelta(months=k + 1)


@dataclass
class Event:
    """One Stripe event: its JSON, and what the model does when the service first applies it."""

    n: int
    ws: str
    type: str
    payload: dict
    apply: Any  # callable(now) -> None, the model's effect; called once, at the first 200
    subscription: str | None = None  # events of a subscription are delivered before its period ends
    applied: bool = False
    deliveries: int = 0
    loads: bool = False  # its handler reads the wallet first: a duplicate still renews and releases
    w: int = 0  # the workspace's index in the simulation


SECOND = timedelta(seconds=1)
