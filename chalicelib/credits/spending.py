"""Charges and holds: each settles in one transaction of the wallet and one ledger entry, with no
read before the write.

The first attempt assumes the common case (the plan bucket covers the cost, the cycle is current,
nothing raced us). If a condition fails, DynamoDB hands back the wallet as it was
(ReturnValuesOnConditionCheckFailure=ALL_OLD), and the next attempt is exact for that state:
an honest 402, a plan/top-up split, a lazy renewal, or a later seq. No balance can go below zero
because every deduction is conditional on the bucket holding it.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..catalog import catalog
from ..errors import (
    IdempotencyConflict,
    InsufficientCredits,
    InvalidRequest,
    InvalidState,
    MemberCapReached,
    NotFound,
    Forbidden,
    Unavailable,
)
from . import ledger, rules
from .actors import SYSTEM_ACTOR, Actor
from .models import Entry, Wallet, plain
from .. import clock
from .store import (MAX_ATTEMPTS, Cancelled, Put, Update, backoff, get_entry, out_of_time, transact,
                    wallet_key, within_budget)

DEFAULT_TTL = 900
MAX_TTL = 86_400
# room.<member> = what a member may still spend this cycle. Capped members start a cycle at their
# cap; a member without a cap gets UNLIMITED the first time they spend (one expression for both).
UNLIMITED = 10**15


@dataclass(frozen=True)
class Hint:
    """The wallet as this process last saw it. Only a guess for the first attempt's split and
    seq (a wrong guess costs one refused write, never a wrong balance): a wallet that lives on
    top-up credits would otherwise always miss the plan-first guess."""

    plan: int
    topup: int
    last: str


_hints: OrderedDict[str, Hint] = OrderedDict()
HINTS_KEPT = 1024


def _remember(workspace_id: str, hint: Hint) -> None:
    _hints[workspace_id] = hint
    _hints.move_to_end(workspace_id)
    if len(_hints) > HINTS_KEPT:
        _hints.popitem(last=False)


def _first_guess(workspace_id: str, cost: int) -> tuple[tuple[int, int], bool, str]:
    hint = _hints.get(workspace_id)
    split = rules.split_spend(hint.plan, hint.topup, cost) if hint else None
    if hint is None or split is None:
        return (cost, 0), False, hint.last if hint else ""
    return split, True, hint.last


def _spend_condition(actor: Actor, cost: int, split: tuple[int, int], exact: bool, now: datetime,
                     seq: str):
    p, t = split
    cond = Wallet.members[actor.user_id].exists() & (Wallet.cycle_end > int(now.timestamp()))
    cond &= Wallet.last < seq
    if cost:
        room = Wallet.room[actor.user_id]
        cond &= room.does_not_exist() | (room >= cost)
    if not exact:
        cond &= Wallet.plan >= cost
    elif t == 0:
        cond &= Wallet.plan >= p
    else:
        # Plan-first: this split empties the plan bucket exactly.
        cond &= (Wallet.plan == p) & (Wallet.topup >= t)
    return cond


def _diagnose(w: Wallet | None, actor: Actor, cost: int, now: datetime) -> tuple[int, int]:
    """Given the wallet as it was when our write was refused, raise the answer it stands for, or
    return the exact split for the next attempt."""
    from . import wallets  # lazy renewal lives there

    if w is None or actor.user_id not in w.member_map():
        raise NotFound("No such workspace.")
    if w.cycle_end <= int(now.timestamp()):
        wallets.renew_due(w, now)
        raise _Retry()
    if wallets.expired_holds(w, now) and w.plan + w.topup < cost:
        wallets.release_expired(w, now)
        raise _Retry()
    room = plain(w.room).get(actor.user_id)
    if room is not None and int(room) < cost:
        raise MemberCapReached(required=cost, available=max(int(room), 0))
    split = rules.split_spend(int(w.plan), int(w.topup), cost)
    if split is None:
        raise InsufficientCredits(required=cost, available=int(w.plan + w.topup))
    return split


class _Retry(Exception):
    pass


def _replay(workspace_id: str, sk: str, fp: str, first: dict | None) -> dict:
    """The key was used before: answer as the first time, from the entry the refused write
    returned (no extra read), or refuse a different request under the same key."""
    entry = Entry.from_raw_data(first) if first else get_entry(workspace_id, sk)
    if rules.replay_outcome(entry.fp, fp) == "conflict":
        raise IdempotencyConflict()
    answer = plain(entry.answer)
    answer["balance"] = ledger.balance_after(workspace_id, entry.seq).as_dict()
    return answer


@within_budget
def _spend(workspace_id: str, actor: Actor, kind: str, cost: int, key: str, fp: str, now: datetime,
           ref: dict, answer_for) -> dict:
    """The shared write path of charges and holds."""
    sk = f"op#{key}"
    split, exact, last = _first_guess(workspace_id, cost)
    for attempt in range(MAX_ATTEMPTS):
        if attempt and out_of_time():
            break
        backoff(attempt)
        # The seq takes the clock of this attempt: under contention a retry then sorts after the
        # writes that beat it, instead of chasing the wallet's last entry one step at a time.
        seq = rules.next_seq(max(now, clock.now()), last)
        p, t = split
        answer = answer_for(seq, p, t)
        public = {k: v for k, v in answer.items() if not k.startswith("_")}
        entry = Entry(
            workspace_id, sk, seq=seq, kind=kind, plan_delta=-p, topup_delta=-t,
            held_delta=cost if kind == "hold" else 0, ref=ref, actor=actor.label, fp=fp, answer=public,
        )
        actions = [Wallet.plan.add(-p), Wallet.topup.add(-t), Wallet.last.set(seq)]
        if cost:
            actions.append(Wallet.room[actor.user_id].set((Wallet.room[actor.user_id] | UNLIMITED) - cost))
        if kind == "hold":
            actions += [Wallet.held.add(cost), Wallet.holds[answer["hold_id"]].set(
                {"p": p, "t": t, "x": answer["_expires"], "a": actor.user_id})]
        try:
            transact([
                Put(entry, Entry.sk.does_not_exist()),
                Update(wallet_key(workspace_id), actions, _spend_condition(actor, cost, split, exact, now, seq)),
            ])
        except Cancelled as c:
            if 0 in c.failed:  # the key was used before: this is a retry (or a conflict)
                return _replay(workspace_id, sk, fp, c.failed[0])
            wallet = Wallet.from_raw_data(c.failed[1]) if c.failed.get(1) else None
            try:
                split = _diagnose(wallet, actor, cost, now)
                exact, last = True, wallet.last
            except _Retry:
                split, exact, last = (cost, 0), False, ""
            continue
        balance = ledger.balance_after(workspace_id, seq, just_written=True)
        _remember(workspace_id, Hint(balance.plan, balance.topup, seq))
        return {**public, "balance": balance.as_dict()}
    raise Unavailable("The wallet is busy; retry with the same idempotency key.", retry_after=1)


def charge(workspace_id: str, actor: Actor, service_id: Any, options: Any, key: str,
           now: datetime) -> dict:
    service, opts, cost = catalog().price(service_id, options)
    fp = rules.fingerprint({"op": "charge", "service": service.id, "options": opts, "user": actor.user_id})

    def answer(seq: str, p: int, t: int) -> dict:
        return {"charge_id": f"chg_{seq}", "credits": cost, "from_plan": p, "from_topup": t}

    ref = {"type": "charge", "service": service.id, "options": opts, "idempotency_key": key}
    return _spend(workspace_id, actor, "charge", cost, key, fp, now, ref, answer)


def hold(workspace_id: str, actor: Actor, service_id: Any, options: Any, ttl: int | None, key: str,
         now: datetime) -> dict:
    service, opts, cost = catalog().price(service_id, options)
    ttl = DEFAULT_TTL if ttl is None else ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise InvalidRequest(f"ttl_seconds must be an integer from 1 to {MAX_TTL}.")
    fp = rules.fingerprint({"op": "hold", "service": service.id, "options": opts, "ttl": ttl,
                            "user": actor.user_id})
    expires = now + timedelta(seconds=ttl)

    def answer(seq: str, p: int, t: int) -> dict:
        return {"hold_id": rules.hold_id(seq, p, t, actor.user_id), "credits": cost,
                "expires_at": rules.iso(expires), "_expires": int(expires.timestamp())}

    ref = {"type": "hold", "service": service.id, "options": opts, "idempotency_key": key, "ttl_seconds": ttl}
    return _spend(workspace_id, actor, "hold", cost, key, fp, now, ref, answer)


def _settle_condition(hid: str, p: int, t: int, creator: str, actor: Actor | None, now: datetime, seq: str,
                      plan_expired: bool, expired_ok: bool):
    h = Wallet.holds[hid]
    # A cycle that has ended renews first, so returned plan credits of that cycle expire with it.
    cond = (h["p"] == p) & (h["t"] == t) & (Wallet.last < seq) & (Wallet.cycle_end > int(now.timestamp()))
    cond &= (h["x"] <= int(now.timestamp())) if expired_ok else (h["x"] > int(now.timestamp()))
    cond &= h["e"].exists() if plan_expired else h["e"].does_not_exist()
    cond &= h["a"] == creator
    if actor is not None and not actor.is_service:
        cond &= h["a"] == actor.user_id
    return cond


@within_budget
def settle(workspace_id: str, actor: Actor, hold_id: str, captured: int | None, now: datetime,
           *, expired_ok: bool = False) -> dict:
    """Capture (captured credits) or release (captured=None) an open hold, exactly once.
    `expired_ok` is the system returning an expired hold's credits."""
    parsed = rules.parse_hold_id(hold_id)
    if parsed is None:
        raise NotFound("No such hold.")
    hold_seq, p, t, creator = parsed
    reserved = p + t
    kind = "release" if captured is None else "capture"
    taken = 0 if captured is None else captured
    if isinstance(taken, bool) or not isinstance(taken, int) or not 0 <= taken <= reserved:
        raise InvalidRequest(f"credits must be an integer from 0 to the {reserved} held.")
    s = rules.settle_hold(p, t, taken)
    sk = f"settle#{hold_seq}"
    # What identifies this request: a retry of it replays the first answer; anything else
    # (a capture after a release, a person's release after the expiry) finds the hold closed.
    fp = "expiry" if expired_ok else f"{kind}:{taken}"
    last, plan_expired = "", False
    checked = None if actor is SYSTEM_ACTOR else actor
    for attempt in range(MAX_ATTEMPTS):
        if attempt and out_of_time():
            break
        backoff(attempt)
        seq = rules.next_seq(max(now, clock.now()), last)
        back_plan = 0 if plan_expired else s.returned_plan
        lapsed = s.returned_plan - back_plan  # plan credits whose cycle ended while held
        answer = {"hold_id": hold_id, "captured": s.captured} if kind == "capture" else {"hold_id": hold_id}
        answer["returned"] = back_plan + s.returned_topup
        if lapsed:
            answer["expired"] = lapsed
        ref = {"type": "hold", "id": hold_id, **({"expired": lapsed} if lapsed else {}),
               **({"reason": "expired"} if expired_ok else {})}
        entry = Entry(workspace_id, sk, seq=seq, kind=kind, plan_delta=back_plan,
                      topup_delta=s.returned_topup, held_delta=-reserved, ref=ref,
                      actor=actor.label, fp=fp, answer=answer)
        actions = [Wallet.holds[hold_id].remove(), Wallet.plan.add(back_plan),
                   Wallet.topup.add(s.returned_topup), Wallet.held.add(-reserved), Wallet.last.set(seq)]
        if s.returned and not plan_expired:
            # What the hold gives back no longer counts against its creator's cap this cycle.
            actions.append(Wallet.room[creator].set((Wallet.room[creator] | UNLIMITED) + s.returned))
        try:
            transact([
                Put(entry, Entry.sk.does_not_exist()),
                Update(wallet_key(workspace_id), actions,
                       _settle_condition(hold_id, p, t, creator, checked, now, seq, plan_expired, expired_ok)),
            ])
        except Cancelled as c:
            if 0 in c.failed:
                first = Entry.from_raw_data(c.failed[0]) if c.failed[0] else get_entry(workspace_id, sk)
                if first.fp == fp and plain(first.ref).get("id") == hold_id:
                    balance = ledger.balance_after(workspace_id, first.seq)
                    return {**plain(first.answer), "balance": balance.as_dict()}
                raise InvalidState("This hold is no longer open.")
            w = Wallet.from_raw_data(c.failed[1]) if c.failed.get(1) else None
            if w is None or (checked is not None and not checked.is_service
                             and checked.user_id not in w.member_map()):
                raise NotFound("No such workspace.")
            if int(w.cycle_end) <= int(now.timestamp()):
                from .wallets import renew_due

                renew_due(w, now)
                last = ""
                continue
            h = w.open_holds().get(hold_id)
            if h is None or int(h["p"]) != p or int(h["t"]) != t or h["a"] != creator:
                raise NotFound("No such hold.")
            if checked is not None and not checked.is_service and h["a"] != checked.user_id:
                raise Forbidden("Only the hold's creator or a generation service may settle it.")
            expired = int(h["x"]) <= int(now.timestamp())
            if expired and not expired_ok:
                settle(workspace_id, SYSTEM_ACTOR, hold_id, None, now, expired_ok=True)
                raise InvalidState("This hold has expired; its credits were returned.")
            if not expired and expired_ok:
                raise InvalidState("This hold has not expired.")
            plan_expired = "e" in h
            last = w.last
            continue
        return {**answer, "balance": ledger.balance_after(workspace_id, seq, just_written=True).as_dict()}
    raise Unavailable("The wallet is busy; retry.", retry_after=1)
