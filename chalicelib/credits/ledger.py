"""Reading history: the balance after any entry, ledger pages, and the audit.

Entries commit in seq order (every wallet write is conditioned on `last < seq`), so the balance
after an entry is the wallet now minus every newer entry: exact, and the same whenever it is asked.
"""
from __future__ import annotations

import base64
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest, Unavailable
from . import rules
from .models import WALLET_SK, WALLET_SEQ, Entry, Wallet, plain
from .store import get_wallet, query_newest, scan_all

MAX_PAGE = 100


def wallet_balance(w: Wallet) -> rules.Balance:
    return rules.Balance(int(w.plan), int(w.topup), int(w.held))


def _deltas(e: Entry) -> dict[str, int]:
    return {"plan_delta": int(e.plan_delta), "topup_delta": int(e.topup_delta), "held_delta": int(e.held_delta)}


def _consistent(w: Wallet, entries: list[Entry]) -> bool:
    # A query is read-committed per item: make sure it saw the wallet and its newest entry alike.
    return not entries or entries[0].seq == w.last


def balance_after(workspace_id: str, seq: str, just_written: bool = False) -> rules.Balance:
    """The wallet's balance right after entry `seq`. For an entry just written, one GetItem
    usually settles it (nothing was written since); otherwise one query from the wallet down."""
    if just_written:
        w = get_wallet(workspace_id)
        if w.last == seq:
            return wallet_balance(w)
    for _ in range(3):
        items: list = []
        start = None
        while True:
            page, start = query_newest(workspace_id, Wallet.seq >= seq, start_key=start)
            items += page
            if not start:
                break
        wallet, entries = items[0], items[1:]
        if not _consistent(wallet, entries) or not entries or entries[-1].seq != seq:
            continue
        return rules.balances_newest_first(wallet_balance(wallet), [_deltas(e) for e in entries])[-1]
    raise Unavailable("The ledger is being written; retry.", retry_after=1)


def render(e: Entry, balance: rules.Balance) -> dict[str, Any]:
    return {
        "entry_id": e.seq,
        "at": rules.iso(rules.seq_time(e.seq)),
        "kind": e.kind,
        "plan_delta": int(e.plan_delta),
        "topup_delta": int(e.topup_delta),
        "held_delta": int(e.held_delta),
        "balance": balance.as_dict(),
        "ref": plain(e.ref),
        "actor": e.actor,
    }


def _encode_cursor(seq: str, balance: rules.Balance) -> str:
    raw = json.dumps({"s": seq, "b": [balance.plan, balance.topup, balance.held]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, rules.Balance]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        seq, (plan, topup, held) = data["s"], data["b"]
        if not isinstance(seq, str) or not all(isinstance(v, int) for v in (plan, topup, held)):
            raise ValueError
        return seq, rules.Balance(plan, topup, held)
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest("Invalid cursor.") from None


@dataclass
class Page:
    wallet: Wallet | None
    entries: list[dict] = field(default_factory=list)
    next_cursor: str | None = None


def first_page(workspace_id: str, limit: int) -> Page:
    """The wallet and its newest entries, in one query."""
    for _ in range(3):
        items, more = query_newest(workspace_id, limit=limit + 1)
        if not items or items[0].sk != WALLET_SK:
            return Page(wallet=None)
        wallet, entries = items[0], items[1:]
        if _consistent(wallet, entries):
            return _page(wallet, wallet_balance(wallet), entries, limit, more)
    raise Unavailable("The ledger is being written; retry.", retry_after=1)


def next_page(workspace_id: str, cursor: str, limit: int) -> Page:
    seq, balance = _decode_cursor(cursor)
    items, more = query_newest(workspace_id, Wallet.seq < seq, limit=limit)
    return _page(None, balance, items, limit, more)


def _page(wallet, balance: rules.Balance, entries: list[Entry], limit: int, more) -> Page:
    balances = rules.balances_newest_first(balance, [_deltas(e) for e in entries])
    out = [render(e, b) for e, b in zip(entries, balances)]
    cursor = None
    if more and entries:
        last = entries[-1]
        cursor = _encode_cursor(last.seq, balances[-1].minus(**{k: v for k, v in _deltas(last).items()}))
    return Page(wallet=wallet, entries=out, next_cursor=cursor)


def cursor_after(entry: dict) -> str:
    """A cursor that continues just below a rendered entry (the balance before it)."""
    b = entry["balance"]
    before = rules.Balance(b["plan"], b["topup"], b["held"]).minus(
        entry["plan_delta"], entry["topup_delta"], entry["held_delta"])
    return _encode_cursor(entry["entry_id"], before)


def acted_by(entry: dict, user_id: str) -> bool:
    actor = entry["actor"]
    return actor == user_id or actor.startswith(f"{user_id} via ")


@dataclass
class AuditResult:
    wallets: int = 0
    entries: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.problems


def audit() -> AuditResult:
    """Every wallet equals the sum of its ledger; nothing is negative; held matches open holds."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    newest: dict[str, str] = defaultdict(str)
    wallets: dict[str, Wallet] = {}
    result = AuditResult()
    for raw in scan_all():
        pk, sk = raw["pk"]["S"], raw["sk"]["S"]
        if sk == WALLET_SK:
            wallets[pk] = Wallet.from_raw_data(raw)
        elif "seq" in raw and raw["seq"]["S"] != WALLET_SEQ and not pk.startswith("user#"):
            e = Entry.from_raw_data(raw)
            s = sums[pk]
            s[0] += int(e.plan_delta)
            s[1] += int(e.topup_delta)
            s[2] += int(e.held_delta)
            newest[pk] = max(newest[pk], e.seq)
            result.entries += 1
    for pk in sorted(set(wallets) | set(sums)):
        w = wallets.get(pk)
        problems = []
        if w is None:
            problems.append("ledger entries without a wallet")
        else:
            have = [int(w.plan), int(w.topup), int(w.held)]
            if have != sums[pk]:
                problems.append(f"wallet plan/topup/held {have} != ledger sum {sums[pk]}")
            if min(have) < 0:
                problems.append(f"negative bucket {have}")
            open_holds = sum(int(h["p"]) + int(h["t"]) for h in w.open_holds().values())
            if open_holds != int(w.held):
                problems.append(f"held {int(w.held)} != open holds {open_holds}")
            if w.last != newest[pk]:
                problems.append(f"last {w.last!r} != newest entry {newest[pk]!r}")
        if problems:
            result.problems[pk] = problems
    result.wallets = len(wallets)
    return result
