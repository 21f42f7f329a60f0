"""Members of team workspaces: roles (one owner; admins and members) and per-cycle caps. The
member list lives in the wallet item, so a charge checks membership and cap in its one write."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from ..auth import Principal
from ..credits import wallets
from ..credits.models import Membership, Wallet, plain
from ..credits.spending import UNLIMITED
from ..credits.store import Cancelled, Delete, Put, Update, transact, wallet_key
from ..errors import Forbidden, InvalidRequest, InvalidState, NotFound, Unavailable

KEEP = object()  # cycle_cap not given: leave it as it is


def _manager(who: Principal, workspace_id: str, now: datetime) -> tuple[Wallet, str]:
    if who.is_service:
        raise Forbidden("A generation service may only charge and hold.")
    w = wallets.load(workspace_id, now)
    role = wallets.require_role(w, who.user_id, "admin")
    if w.kind != "team":
        raise InvalidRequest("A personal workspace has only its owner; open a team workspace to share credits.")
    return w, role


def _spent(member: dict | None, room: Any) -> int:
    """Credits the member spent this cycle, from their room and cap."""
    if room is None:
        return 0
    cap = (member or {}).get("cap")
    return (int(cap) if cap is not None else UNLIMITED) - int(room)


def describe(user_id: str, member: dict, room: Any) -> dict:
    cap = member.get("cap")
    return {"user_id": user_id, "role": member["role"], "cycle_cap": None if cap is None else int(cap),
            "spent_this_cycle": _spent(member, room)}


def put_member(who: Principal, workspace_id: str, user_id: str, role: str, cycle_cap: Any,
               now: datetime) -> dict:
    if not user_id or len(user_id) > 200:
        raise InvalidRequest("user_id must be 1-200 characters.")
    for _ in range(5):
        w, caller_role = _manager(who, workspace_id, now)
        members, rooms = w.member_map(), plain(w.room)
        current = members.get(user_id)
        if current and current["role"] == "owner" and caller_role != "owner":
            raise Forbidden("Only the owner can change the owner.")
        if current and current["role"] == "owner" and role != "owner":
            raise InvalidState("A workspace needs its owner: transfer ownership (role owner) to someone first.")
        if role == "owner" and caller_role != "owner":
            raise Forbidden("Only the owner can hand ownership over.")
        cap = (current or {}).get("cap") if cycle_cap is KEEP else cycle_cap
        member = {"role": role, **({"cap": int(cap)} if cap is not None else {})}
        spent = _spent(current, rooms.get(user_id))
        actions = [Wallet.members[user_id].set(member)]
        if cap is not None:
            actions.append(Wallet.room[user_id].set(max(int(cap) - spent, 0)))
        elif rooms.get(user_id) is not None:
            actions.append(Wallet.room[user_id].set(UNLIMITED - spent))
        cond = (Wallet.members[user_id]["role"] == current["role"]) if current else Wallet.members[user_id].does_not_exist()
        cond &= (Wallet.room[user_id] == int(rooms[user_id])) if user_id in rooms else Wallet.room[user_id].does_not_exist()
        ops: list = [Put(Membership(f"user#{user_id}", f"ws#{workspace_id}", workspace_id=workspace_id,
                                    name=w.name, kind=w.kind, role=role))]
        if role == "owner" and user_id != who.user_id:  # hand-over: the old owner stays as admin
            old = members[who.user_id]
            actions.append(Wallet.members[who.user_id].set({**old, "role": "admin"}))
            cond &= Wallet.members[who.user_id]["role"] == "owner"
            ops.append(Put(Membership(f"user#{who.user_id}", f"ws#{workspace_id}", workspace_id=workspace_id,
                                      name=w.name, kind=w.kind, role="admin")))
        try:
            transact([*ops, Update(wallet_key(workspace_id), actions, cond)])
        except Cancelled:
            continue
        room = max(int(cap) - spent, 0) if cap is not None else (UNLIMITED - spent if user_id in rooms else None)
        return describe(user_id, member, room)
    raise Unavailable("The workspace is busy; retry.", retry_after=1)


def remove_member(who: Principal, workspace_id: str, user_id: str, now: datetime) -> None:
    w, caller_role = _manager(who, workspace_id, now)
    current = w.member_map().get(user_id)
    if current is None:
        raise NotFound("No such member.")
    if current["role"] == "owner":
        if caller_role != "owner":
            raise Forbidden("Only the owner can change the owner.")
        raise InvalidState("The owner cannot leave: transfer ownership first.")
    try:
        # One transaction: a lost answer can't leave the person's membership row behind.
        transact([Delete(Membership(f"user#{user_id}", f"ws#{workspace_id}")),
                  Update(wallet_key(workspace_id), [Wallet.members[user_id].remove(), Wallet.room[user_id].remove()],
                         Wallet.members[user_id].exists())])
    except Cancelled:
        # They were a member a moment ago and are not now: removed by this request's own first
        # send (its answer lost, then resent) or by another at the same time. Either way, done.
        return
