"""Top-up credits: credited once per paid checkout, taken back in proportion to money refunded or
disputed, never below zero (a shortfall is written in the ledger)."""
from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from .. import clock
from ..errors import NotFound, Unavailable
from . import rules
from .actors import SYSTEM_ACTOR
from .models import Entry, TopupRecord, Wallet
from .store import MAX_ATTEMPTS, Cancelled, Put, Update, read, transact, wallet_key


def credit(workspace_id: str, session_id: str, credits: int, amount: int, payment_intent: str | None,
           now: datetime) -> bool:
    """Credit a paid top-up. False if this checkout was credited before."""
    last = ""
    for _ in range(MAX_ATTEMPTS):
        seq = rules.next_seq(now, last)
        ops = [Put(Entry(workspace_id, f"topup#{session_id}", seq=seq, kind="topup", topup_delta=credits,
                         ref={"type": "checkout", "id": session_id, "payment_intent": payment_intent or "",
                              "amount": amount}, actor=SYSTEM_ACTOR.label),
                   Entry.sk.does_not_exist()),
               Update(wallet_key(workspace_id), [Wallet.topup.add(credits), Wallet.last.set(seq)],
                      Wallet.pk.exists() & (Wallet.last < seq))]
        if payment_intent:
            ops.append(Put(TopupRecord(f"pi#{payment_intent}", "topup", workspace_id=workspace_id,
                                       session_id=session_id, credits=credits, amount=amount, taken=0),
                           TopupRecord.pk.does_not_exist()))
        try:
            transact(ops)
            return True
        except Cancelled as c:
            if 0 in c.failed:
                return False
            if c.failed.get(1) is None and 1 in c.failed:
                raise NotFound("No such workspace.")
            if 1 in c.failed:
                last = Wallet.from_raw_data(c.failed[1]).last
                continue
            if 2 in c.failed and c.failed[2] and "credits" not in c.failed[2]:
                # A refund or dispute of this payment arrived first: credit, then apply it.
                reversed_amount = int(c.failed[2].get("reversed", {}).get("N", 0))
                ops[2] = Update(TopupRecord(f"pi#{payment_intent}", "topup"), [
                    TopupRecord.workspace_id.set(workspace_id), TopupRecord.session_id.set(session_id),
                    TopupRecord.credits.set(credits), TopupRecord.amount.set(amount)],
                    TopupRecord.credits.does_not_exist())
                try:
                    transact(ops)
                except Cancelled:
                    continue
                take_back(payment_intent, reversed_amount, "reported before the top-up", now)
                return True
            return False  # the payment intent was recorded by an earlier credit of this checkout
    raise Unavailable("The wallet is busy; retry.", retry_after=1)


def take_back(payment_intent: str | None, reversed_amount: int, source: str, now: datetime) -> int:
    """Money was refunded or disputed: take back that share of the top-up's credits (the
    cumulative share, so repeated or reordered events converge). Returns credits taken now."""
    if not payment_intent:
        return 0
    w = None  # the wallet as a refused write reported it; the first attempt needs no read
    for _ in range(MAX_ATTEMPTS):
        try:
            record = read(lambda: TopupRecord.get(f"pi#{payment_intent}", "topup", consistent_read=True))
        except DoesNotExist:
            record = None
        if record is None or record.credits is None:
            # Not (yet) a top-up we know: remember the reversal, so a top-up of this payment that
            # is reported later is credited and taken back alike. Other payments stay ignored.
            _remember_reversal(payment_intent, reversed_amount, record)
            return 0
        reversed_amount = max(reversed_amount, int(record.reversed or 0))
        target = min(int(record.credits), int(record.credits) * reversed_amount // max(int(record.amount), 1))
        want = target - int(record.taken)
        if want <= 0:
            return 0
        if w is None:  # guess: the top-up bucket still holds what is wanted
            take, seq = want, rules.next_seq(max(now, clock.now()))
            guard = (Wallet.topup >= take) & (Wallet.last < seq)
        else:
            take, seq = min(want, int(w.topup)), rules.next_seq(max(now, clock.now()), w.last)
            guard = (Wallet.topup == int(w.topup)) & (Wallet.last == w.last)
        ref = {"type": "reversal", "payment_intent": payment_intent, "source": source,
               "reversed_amount": reversed_amount, "wanted": want}
        if want > take:
            ref["shortfall"] = want - take  # spent already: the credits cannot come back
        try:
            transact([
                Put(Entry(record.workspace_id, f"refund#{payment_intent}#{target}", seq=seq, kind="refund",
                          topup_delta=-take, ref=ref, actor=SYSTEM_ACTOR.label), Entry.sk.does_not_exist()),
                Update(wallet_key(record.workspace_id), [Wallet.topup.add(-take), Wallet.last.set(seq)],
                       Wallet.pk.exists() & guard),
                Update(TopupRecord(f"pi#{payment_intent}", "topup"), [TopupRecord.taken.set(target)],
                       TopupRecord.taken == int(record.taken)),
            ])
            return take
        except Cancelled as c:
            if 0 in c.failed:
                return 0  # this share was taken back before
            if c.failed.get(1):
                w = Wallet.from_raw_data(c.failed[1])
            continue
    raise Unavailable("The wallet is busy; retry.", retry_after=1)


def _remember_reversal(payment_intent: str, reversed_amount: int, record: TopupRecord | None) -> None:
    key = TopupRecord(f"pi#{payment_intent}", "topup")
    try:
        if record is None:
            transact([Put(TopupRecord(f"pi#{payment_intent}", "topup", reversed=reversed_amount, taken=0),
                          TopupRecord.pk.does_not_exist())])
        elif reversed_amount > int(record.reversed or 0):
            transact([Update(key, [TopupRecord.reversed.set(reversed_amount)],
                             TopupRecord.credits.does_not_exist() & (TopupRecord.reversed < reversed_amount))])
    except Cancelled:
        pass  # the top-up or a larger reversal got there first; whoever comes next applies it
