"""Opening wallets, reading them (renewing and expiring lazily first), and the subscription view."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from dateutil.relativedelta import relativedelta

from ..catalog import catalog
from ..errors import Forbidden, NotFound
from . import ledger, rules
from .actors import SYSTEM_ACTOR
from .models import Entry, Membership, Wallet, plain
from .store import Cancelled, Put, Update, get_wallet, read, transact, wallet_key

ROLES = {"member": 1, "admin": 2, "owner": 3}
RENEW_SHARDS = 8  # the renewal index is read shard by shard; spreads a busy day's writes
CYCLES_PER_WRITE = 40  # a transaction holds 100 items: 2 entries a cycle, plus the wallet


def personal_workspace_id(user_id: str) -> str:
    # Deterministic, so that two first calls at once open one workspace, not two.
    return "ws_p" + hashlib.sha256(user_id.encode()).hexdigest()[:24]


def team_workspace_id(user_id: str, key: str | None = None) -> str:
    """A new id; with an idempotency key, the same id for the same person and key, so a resent
    request finds the workspace its first send opened instead of opening another."""
    if key is None:
        return "ws_t" + rules.new_ulid(datetime.now(timezone.utc)).lower()
    return "ws_t" + hashlib.sha256(f"{user_id}\n{key}".encode()).hexdigest()[:26]


def _shard(workspace_id: str) -> str:
    return f"r{int(hashlib.sha256(workspace_id.encode()).hexdigest(), 16) % RENEW_SHARDS}"


def role_of(w: Wallet, user_id: str) -> str | None:
    member = w.member_map().get(user_id)
    return member["role"] if member else None


def caps_for_new_cycle(w: Wallet) -> dict[str, int]:
    """At a new cycle every capped member may spend their cap again; others start unlimited."""
    return {u: int(m["cap"]) for u, m in w.member_map().items() if m.get("cap") is not None}


def require_role(w: Wallet, user_id: str, at_least: str = "member") -> str:
    """A non-member learns nothing (404); a member below the role gets 403."""
    role = role_of(w, user_id)
    if role is None:
        raise NotFound("No such workspace.")
    if ROLES[role] < ROLES[at_least]:
        raise Forbidden(f"This needs the {at_least} role or higher.")
    return role


def open_workspace(workspace_id: str, name: str, kind: str, owner: str, now: datetime) -> bool:
    """A new workspace on the free plan with its first cycle granted, in one transaction.
    Returns False if it already existed."""
    plan = catalog().plan("free")
    seq = rules.next_seq(now)
    start, end = now, now + relativedelta(months=1)
    wallet = Wallet(
        workspace_id, "wallet", name=name, kind=kind, created_at=int(now.timestamp()),
        plan=plan.credits_per_cycle, topup=0, held=0, holds={}, members={owner: {"role": "owner"}},
        room={}, last=seq, plan_id=plan.id, epoch=0, interval=None, status="active",
        anchor=int(start.timestamp()), cycle_start=int(start.timestamp()), cycle_end=int(end.timestamp()),
        renew_shard=_shard(workspace_id), renews_at=int(end.timestamp()),
    )
    grant = Entry(workspace_id, cycle_key("grant", 0, start), seq=seq, kind="grant",
                  plan_delta=plan.credits_per_cycle, ref=_cycle_ref(start, end, plan.id),
                  actor=SYSTEM_ACTOR.label)
    membership = Membership(f"user#{owner}", f"ws#{workspace_id}", workspace_id=workspace_id, name=name,
                            kind=kind, role="owner")
    try:
        transact([Put(wallet, Wallet.pk.does_not_exist()), Put(grant, Entry.sk.does_not_exist()),
                  Put(membership)])
    except Cancelled:
        return False
    return True


def memberships(user_id: str) -> list[Membership]:
    return read(lambda: list(Membership.query(f"user#{user_id}", consistent_read=True)))


def ensure_personal(user_id: str, now: datetime) -> list[Membership]:
    """GET /v1/me: the person's workspaces, opening the personal one on the first call."""
    found = memberships(user_id)
    if not any(m.kind == "personal" for m in found):
        open_workspace(personal_workspace_id(user_id), "Personal", "personal", user_id, now)
        found = memberships(user_id)
    return found


# --- lazy upkeep on read ---------------------------------------------------------------------

def expired_holds(w: Wallet, now: datetime) -> list[str]:
    ts = int(now.timestamp())
    return [hid for hid, h in w.open_holds().items() if int(h["x"]) <= ts]


def release_expired(w: Wallet, now: datetime) -> None:
    from .spending import settle

    for hid in expired_holds(w, now):
        try:
            settle(w.pk, SYSTEM_ACTOR, hid, None, now, expired_ok=True)
        except Exception as e:  # another reader released it first
            if getattr(e, "status", None) not in (404, 409):
                raise


def load(workspace_id: str, now: datetime) -> Wallet:
    """The wallet as of now: one read when nothing is due; renewals and expired holds first."""
    for _ in range(50):
        w = get_wallet(workspace_id)
        if w.cycle_end <= int(now.timestamp()):
            renew_due(w, now)
            continue
        if expired_holds(w, now):
            release_expired(w, now)
            continue
        return w
    return get_wallet(workspace_id)


# --- renewal -------------------------------------------------------------------------------

def cycle_key(kind: str, epoch: int, start: datetime) -> str:
    """The ledger key of a cycle's grant or expiry: once per cycle of a plan's run (epoch), so a
    new plan starting the same second as the old cycle cannot collide with it."""
    return f"{kind}#{int(epoch)}#{rules.iso(start)}"


def _cycle_ref(start: datetime, end: datetime, plan_id: str) -> dict:
    return {"type": "cycle", "plan": plan_id, "start": rules.iso(start), "end": rules.iso(end)}


def credits_for_cycle(w: Wallet, start: datetime, end: datetime) -> int:
    """What a cycle grants, if it is paid for: free always; paid plans while paid through its end."""
    plan = catalog().plan(w.plan_id)
    if plan.id == "free":
        return plan.credits_per_cycle
    if w.paid_until is None or int(w.paid_until) < int(end.timestamp()):
        return 0
    return int(w.contract_credits) if plan.contract else plan.credits_per_cycle


@dataclass(frozen=True)
class Renewed:
    cycles: int
    granted: int
    expired: int
    caught_up: bool = True  # False: more ended cycles remain (more than one write holds)


def renew_due(w: Wallet, now: datetime) -> Renewed | None:
    """Close every cycle that has ended: expire the plan credits left (above the rollover cap) and
    grant the next cycle if it is paid for, each a ledger entry naming its cycle. The write is
    conditioned on the wallet as read, so a cycle renews exactly once whoever races."""
    if int(w.cycle_end) > int(now.timestamp()):
        return None
    plan = catalog().plan(w.plan_id)
    anchor = rules.as_utc(w.anchor)
    start, end = rules.as_utc(w.cycle_start), rules.as_utc(w.cycle_end)
    remaining, seq, ops = int(w.plan), w.last, []
    cycles = total_granted = total_expired = 0
    while end <= now and cycles < CYCLES_PER_WRITE:
        cycles += 1
        keep = min(remaining, plan.rollover_cap)
        total_expired += remaining - keep
        if remaining - keep:
            seq = rules.next_seq(now, seq)
            ops.append(Put(Entry(w.pk, cycle_key("expire", w.epoch or 0, start), seq=seq, kind="expire",
                                 plan_delta=-(remaining - keep), ref=_cycle_ref(start, end, plan.id),
                                 actor=SYSTEM_ACTOR.label), Entry.sk.does_not_exist()))
        start, end = end, rules.cycle_at(anchor, end)[1]
        granted = credits_for_cycle(w, start, end)
        total_granted += granted
        if granted:
            seq = rules.next_seq(now, seq)
            ops.append(Put(Entry(w.pk, cycle_key("grant", w.epoch or 0, start), seq=seq, kind="grant",
                                 plan_delta=granted, ref=_cycle_ref(start, end, plan.id),
                                 actor=SYSTEM_ACTOR.label), Entry.sk.does_not_exist()))
        remaining = keep + granted
    # A paid plan whose new cycle is not paid for yet waits for billing (mark_paid) to grant it.
    status = w.status
    if plan.id != "free":
        status = "active" if granted else "past_due"
    actions = [
        Wallet.plan.set(remaining), Wallet.last.set(seq), Wallet.status.set(status),
        Wallet.room.set(caps_for_new_cycle(w)),  # member caps count per cycle
        Wallet.cycle_start.set(int(start.timestamp())), Wallet.cycle_end.set(int(end.timestamp())),
        Wallet.renews_at.set(int(end.timestamp())),
        # Plan credits still held belong to the cycle that ended: when returned, they expire.
        *[Wallet.holds[hid]["e"].set(1) for hid in w.open_holds()],
    ]
    cond = (Wallet.cycle_end == int(w.cycle_end)) & (Wallet.plan == int(w.plan)) & (Wallet.last == w.last)
    try:
        transact([*ops, Update(wallet_key(w.pk), actions, cond)])
    except Cancelled:
        return None  # someone else renewed or wrote first; the caller reads again
    from ..observe import count

    count("CreditsGranted", total_granted, source="renewal")
    count("CreditsExpired", total_expired, source="renewal")
    return Renewed(cycles, total_granted, total_expired, caught_up=end > now)


# --- the subscription view -----------------------------------------------------------------

def view(w: Wallet) -> dict:
    plan = catalog().plan(w.plan_id)
    start, end = rules.as_utc(w.cycle_start), rules.as_utc(w.cycle_end)
    ends = rules.as_utc(w.ends_at).date().isoformat() if w.ends_at else None
    status = "past_due" if w.status == "past_due" else ("ending" if ends else "active")
    pending = plain(w.pending) if w.pending is not None else None
    return {
        "workspace_id": w.pk,
        "name": w.name,
        "kind": w.kind,
        "plan": {"id": plan.id, "name": plan.name},
        "interval": w.interval,
        "status": status,
        "balance": ledger.wallet_balance(w).as_dict(),
        "cycle": {"start": start.date().isoformat(), "end": end.date().isoformat()},
        "renews_on": end.date().isoformat(),
        "ends_on": ends,
        "pending_change": {"plan": pending["plan"], "interval": pending["interval"],
                           "effective_on": rules.as_utc(pending["effective_at"]).date().isoformat()}
        if pending else None,
        "manage_payments": plan.id != "free",
    }
