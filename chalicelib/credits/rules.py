"""The rules that decide numbers, as pure functions over plain values. No store, no HTTP."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from dateutil.relativedelta import relativedelta


@dataclass(frozen=True)
class Balance:
    plan: int
    topup: int
    held: int

    @property
    def available(self) -> int:
        return self.plan + self.topup

    def minus(self, plan_delta: int, topup_delta: int, held_delta: int) -> "Balance":
        """The balance before a change with these deltas."""
        return Balance(self.plan - plan_delta, self.topup - topup_delta, self.held - held_delta)

    def as_dict(self) -> dict[str, int]:
        return {"available": self.available, "plan": self.plan, "topup": self.topup, "held": self.held}


# --- spending -------------------------------------------------------------------------------

def split_spend(plan: int, topup: int, cost: int) -> tuple[int, int] | None:
    """How a cost is taken: plan credits first, then top-up. None if the buckets cannot cover it."""
    if cost < 0:
        raise ValueError("cost must not be negative")
    if plan + topup < cost:
        return None
    from_plan = min(max(plan, 0), cost)
    return from_plan, cost - from_plan


@dataclass(frozen=True)
class Settlement:
    """A hold of p plan + t top-up credits, settled by capturing some of it."""

    captured_plan: int
    captured_topup: int
    returned_plan: int
    returned_topup: int

    @property
    def captured(self) -> int:
        return self.captured_plan + self.captured_topup

    @property
    def returned(self) -> int:
        return self.returned_plan + self.returned_topup


def settle_hold(held_plan: int, held_topup: int, captured: int) -> Settlement:
    """The capture consumes the hold's plan part first, as a charge would; so what comes back is
    top-up first (credits that never expire), then plan."""
    reserved = held_plan + held_topup
    if not 0 <= captured <= reserved:
        raise ValueError("captured must be between 0 and the reserved amount")
    cap_plan = min(held_plan, captured)
    cap_topup = captured - cap_plan
    return Settlement(cap_plan, cap_topup, held_plan - cap_plan, held_topup - cap_topup)


# --- idempotency ----------------------------------------------------------------------------

def fingerprint(request: Mapping[str, Any]) -> str:
    """A stable digest of what a request asks for; the same key must come with the same digest."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def replay_outcome(stored_fp: str | None, fp: str) -> str:
    """'replay' when a retry asks for the same thing as the first request, else 'conflict'."""
    return "replay" if stored_fp == fp else "conflict"


IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_\-:.]{1,128}")


def valid_idempotency_key(key: Any) -> bool:
    return isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key) is not None


# --- ordering -------------------------------------------------------------------------------
# Entry ids are ULIDs (https://github.com/ulid/spec): 48 bits of milliseconds and 80 random bits
# in Crockford base32, so they sort by time. Written here rather than imported: python-ulid loads
# importlib.metadata on import, about 35 ms of every cold start, for these few lines.

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(CROCKFORD)}


def _encode_ulid(value: int) -> str:
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _decode_ulid(text: str) -> int:
    value = 0
    for char in text:
        value = (value << 5) | _DECODE[char]
    return value


def new_ulid(moment: datetime) -> str:
    millis = int(moment.timestamp() * 1000)
    return _encode_ulid((millis << 80) | int.from_bytes(os.urandom(10), "big"))


def next_seq(now: datetime, after: str = "") -> str:
    """A ULID for a new entry, strictly above the wallet's last one (entries commit in seq order,
    so a clock that lags another Lambda's cannot reorder history)."""
    candidate = new_ulid(now)
    if after and candidate <= after:
        candidate = _encode_ulid(_decode_ulid(after) + 1)
    return candidate


def seq_time(seq: str) -> datetime:
    return datetime.fromtimestamp((_decode_ulid(seq) >> 80) / 1000, tz=timezone.utc)


# --- holds ----------------------------------------------------------------------------------

HOLD_ID = re.compile(r"hold_([0-9A-HJKMNP-TV-Z]{26})_([0-9]{1,12})_([0-9]{1,12})_([a-z2-7]{1,400})")


def hold_id(seq: str, held_plan: int, held_topup: int, creator: str) -> str:
    """Hold ids carry the hold's split and its creator so that capture and release need no read
    before their write: the write's condition checks them against the wallet's record of the
    hold, and the creator's cycle cap gets back what the hold returns."""
    who = base64.b32encode(creator.encode()).decode().rstrip("=").lower()
    return f"hold_{seq}_{held_plan}_{held_topup}_{who}"


def parse_hold_id(value: str) -> tuple[str, int, int, str] | None:
    m = HOLD_ID.fullmatch(value or "")
    if not m:
        return None
    try:
        encoded = m.group(4).upper()
        creator = base64.b32decode(encoded + "=" * (-len(encoded) % 8)).decode()
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return None
    return m.group(1), int(m.group(2)), int(m.group(3)), creator


# --- cycles ---------------------------------------------------------------------------------

def iso(moment: datetime) -> str:
    """API times: ISO 8601 UTC with a Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(ts: float | int) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def cycle_at(anchor: datetime, at: datetime) -> tuple[datetime, datetime]:
    """The monthly cycle containing `at`: from the n-th to the (n+1)-th anniversary of the anchor,
    each clamped to its month's end (Jan 31 -> Feb 28/29 -> Mar 31)."""
    if at < anchor:
        raise ValueError("at is before the anchor")
    months = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    n = max(months - 1, 0)
    while anchor + relativedelta(months=n + 1) <= at:
        n += 1
    return anchor + relativedelta(months=n), anchor + relativedelta(months=n + 1)


def anchor_of_period(start: datetime, end: datetime) -> datetime:
    """The billing anchor a monthly period implies. Periods keep their anchor's day, clamped to
    short months, so the anchor's day is the larger of the two (Feb 28 -> Mar 31: the 31st), and
    the anchor is the latest moment on that day at or before the start (Jan 31)."""
    day = max(start.day, end.day)
    candidate, back = start, 0
    while candidate.day != day and back < 12:
        back += 1
        candidate = (start - relativedelta(months=back)).replace(day=1) + relativedelta(day=day)
    return candidate if candidate.day == day else start


def cycles_between(anchor: datetime, start: datetime, until: datetime) -> Iterable[tuple[datetime, datetime]]:
    """Every cycle that begins at or after `start` and ends at or before `until`, in order."""
    n = 0
    while True:
        lo, hi = anchor + relativedelta(months=n), anchor + relativedelta(months=n + 1)
        n += 1
        if lo < start:
            continue
        if hi > until:
            return
        yield lo, hi


def balances_newest_first(current: Balance, entries: Iterable[Mapping[str, int]]) -> list[Balance]:
    """Balances after each entry, given the wallet now and its entries newest first."""
    out = []
    balance = current
    for e in entries:
        out.append(balance)
        balance = balance.minus(e["plan_delta"], e["topup_delta"], e["held_delta"])
    return out


def scheduled_change(phases: list[tuple[int, int | None, str | None]], current_start: int | None,
                     now: int) -> tuple[str, int] | None:
    """What a Stripe subscription schedule changes next: the price of the phase after the current
    one and when it starts, if that price differs; None if nothing changes. `phases` are
    (start, end, price); the current phase is the one starting at `current_start` (the schedule's
    own word for it), else the one running at `now`."""
    ordered = sorted(phases, key=lambda p: p[0])
    current = next((p for p in ordered if p[0] == current_start), None) if current_start is not None else None
    current = current or next((p for p in ordered if p[0] <= now and (p[1] is None or now < p[1])), None)
    if current is None or current[1] is None:
        return None
    following = next((p for p in ordered if p[0] >= current[1]), None)
    if following is None or following[2] is None or following[2] == current[2]:
        return None
    return following[2], following[0]
