"""What each route does, between parsing (http.py) and the wallet (credits/): who may do it,
which one function of credits it calls, and the answer's shape. app.py only wires these up."""
from __future__ import annotations

from datetime import datetime

from . import http
from .auth import Principal
from .catalog import catalog
from .credits import ledger, rules, spending, wallets
from .credits.actors import Actor
from .errors import Forbidden, IdempotencyConflict, InvalidRequest, NotFound


def estimate(body: http.EstimateBody) -> dict:
    service, _, credits = catalog().price(body.service, body.options)
    return {"service": service.id, "credits": credits, "free": credits == 0}


def me(who: Principal, now: datetime) -> dict:
    if who.is_service:
        raise Forbidden("A generation service has no workspaces of its own.")
    found = wallets.ensure_personal(who.user_id, now)
    found.sort(key=lambda m: (m.kind != "personal", m.name, m.workspace_id))
    return {
        "user_id": who.user_id,
        "workspaces": [
            {"workspace_id": m.workspace_id, "name": m.name, "kind": m.kind, "role": m.role} for m in found
        ],
    }


def create_workspace(who: Principal, body: http.WorkspaceBody, header_key: str | None, now: datetime) -> dict:
    if who.is_service:
        raise Forbidden("A generation service cannot open workspaces.")
    key = _key(header_key, body.idempotency_key) if header_key or body.idempotency_key else None
    name = body.name.strip() or "Team"
    workspace_id = wallets.team_workspace_id(who.user_id, key)
    if not wallets.open_workspace(workspace_id, name, "team", who.user_id, now):
        # Only a keyed request finds its id taken: this request again, or its key reused.
        existing = wallets.load(workspace_id, now)
        if existing.name != name:
            raise IdempotencyConflict()
    return wallets.view(wallets.load(workspace_id, now))


def _readable(who: Principal, workspace_id: str, now: datetime, at_least: str = "member"):
    if who.is_service:
        raise Forbidden("A generation service may only charge and hold.")
    w = wallets.load(workspace_id, now)
    wallets.require_role(w, who.user_id, at_least)
    return w


def subscription(who: Principal, workspace_id: str, now: datetime) -> dict:
    return wallets.view(_readable(who, workspace_id, now))


MAX_FILTER_SCAN = 2000  # entries one filtered ledger request reads at most


def ledger_page(who: Principal, workspace_id: str, limit: int, cursor: str | None, now: datetime,
                member: str | None = None) -> dict:
    """Newest first; `member` keeps the entries that person acted in (directly or through a
    generation service), reading on until the page is full."""
    if who.is_service:
        raise Forbidden("A generation service may only charge and hold.")
    if cursor:
        _readable(who, workspace_id, now, "admin")
        page = ledger.next_page(workspace_id, cursor, limit)
    else:
        page = ledger.first_page(workspace_id, limit)
        if page.wallet is None:
            raise NotFound("No such workspace.")
        wallets.require_role(page.wallet, who.user_id, "admin")
        if page.wallet.cycle_end <= int(now.timestamp()) or wallets.expired_holds(page.wallet, now):
            wallets.load(workspace_id, now)  # lazy upkeep, then read again
            page = ledger.first_page(workspace_id, limit)
    if member is None:
        return {"entries": page.entries, "next_cursor": page.next_cursor}
    entries, scanned, next_cursor = [], len(page.entries), page.next_cursor
    entries = [e for e in page.entries if ledger.acted_by(e, member)]
    while len(entries) < limit and next_cursor and scanned < MAX_FILTER_SCAN:
        more = ledger.next_page(workspace_id, next_cursor, 100)
        scanned += len(more.entries)
        entries += [e for e in more.entries if ledger.acted_by(e, member)]
        next_cursor = more.next_cursor
    if len(entries) > limit:
        entries, next_cursor = entries[:limit], ledger.cursor_after(entries[limit - 1])
    return {"entries": entries, "next_cursor": next_cursor}


def _actor(who: Principal, user_id: str | None) -> Actor:
    """A person acts for themselves; a generation service names the person it acts for."""
    if who.is_service:
        if not user_id:
            raise InvalidRequest("user_id is required when a generation service charges.")
        return Actor(user_id, via=who.user_id)
    if user_id not in (None, who.user_id):
        raise Forbidden("Only a generation service may act for another person.")
    return Actor(who.user_id)


def _key(header: str | None, body_key: str | None) -> str:
    key = header or body_key
    if key is None:
        raise InvalidRequest("An idempotency key is required (Idempotency-Key header or idempotency_key).")
    if header and body_key and header != body_key:
        raise InvalidRequest("The Idempotency-Key header and idempotency_key differ.")
    if not rules.valid_idempotency_key(key):
        raise InvalidRequest("The idempotency key must be 1-128 characters of A-Z a-z 0-9 _ - : .")
    return key


def charge(who: Principal, workspace_id: str, body: http.ChargeBody, header_key: str | None,
           now: datetime) -> dict:
    actor = _actor(who, body.user_id)
    key = _key(header_key, body.idempotency_key)
    return spending.charge(workspace_id, actor, body.service, body.options, key, now)


def hold(who: Principal, workspace_id: str, body: http.HoldBody, header_key: str | None,
         now: datetime) -> dict:
    actor = _actor(who, body.user_id)
    key = _key(header_key, body.idempotency_key)
    return spending.hold(workspace_id, actor, body.service, body.options, body.ttl_seconds, key, now)


def capture(who: Principal, workspace_id: str, hold_id: str, body: http.CaptureBody, now: datetime) -> dict:
    parsed = rules.parse_hold_id(hold_id)
    credits = body.credits if body.credits is not None else (parsed[1] + parsed[2] if parsed else 0)  # all
    return spending.settle(workspace_id, _settler(who), hold_id, credits, now)


def release(who: Principal, workspace_id: str, hold_id: str, now: datetime) -> dict:
    return spending.settle(workspace_id, _settler(who), hold_id, None, now)


def _settler(who: Principal) -> Actor:
    return Actor.service(who.user_id) if who.is_service else Actor(who.user_id)
