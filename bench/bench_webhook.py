"""DynamoDB requests per Stripe webhook event, by event type, reads and writes apart.

    .venv/bin/python bench/bench_webhook.py

Each event is signed as Stripe signs it (tests/stripe_events.py, from Stripe's own example
objects) and POSTed to /stripe/webhook through Chalice's test client, on an in-process moto table;
requests are counted with botocore's event hooks (bench/counting.py). One workspace lives through
a top-up, a subscription, two renewals, a failed payment, an upgrade, refunds and a cancellation;
every row is one delivery, in that order, the counts being only that delivery's. Set-up outside
the rows (opening the workspace, a second top-up, the daily job renewing a cycle) is not counted.
The issue's target is at most 2 requests per event; the numbers are printed as they are.

Both API shapes are played on their own workspaces; the table is the "new" shape's (2025-03-31 on),
and the rows where the old shape differs are listed after it.
"""
from __future__ import annotations

import json

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SECRET = "whsec_bench_0123456789"
from bench.inprocess import use_moto  # noqa: E402

use_moto("bench-webhook", STRIPE_WEBHOOK_SECRET=SECRET)

from dateutil.relativedelta import relativedelta  # noqa: E402

from bench.counting import attach_to_models  # noqa: E402

T0 = datetime(2027, 1, 31, 9, 0, tzinfo=timezone.utc)
S = datetime(2027, 2, 10, 10, 0, tzinfo=timezone.utc)  # the subscription's start
TARGET = 2


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def play(shape: str, client, counter, user: str) -> list[tuple[str, int, int, dict, str]]:
    from chalicelib import auth, clock
    from chalicelib.credits import wallets
    from tests.stripe_events import Stripe, sign

    st = Stripe(shape)
    h = {"Authorization": "Bearer " + auth.mint_dev_token(user), "Content-Type": "application/json"}
    clock.set_now(T0)
    ws = json.loads(client.http.get("/v1/me", headers=h).body)["workspaces"][0]["workspace_id"]
    tag = f"{shape}_{user}"
    sub = f"sub_{tag}"
    rows = []

    def send(event: dict) -> dict:
        body = json.dumps(event).encode()
        r = client.http.post("/stripe/webhook", body=body,
                             headers={"Content-Type": "application/json", "Stripe-Signature": sign(body, SECRET)})
        assert r.status_code == 200, r.body
        return json.loads(r.body)

    def measure(name: str, type_: str, obj: dict, at: datetime, created: datetime | None = None) -> None:
        clock.set_now(at)
        event = st.event(type_, obj, created=ts(created or at))
        counter.reset()
        result = send(event)["result"]
        rows.append((name, counter.reads, counter.writes, dict(sorted(counter.ops.items())), result))

    def quietly(type_: str, obj: dict, at: datetime) -> None:
        clock.set_now(at)
        send(st.event(type_, obj, created=ts(at)))

    p1 = (S, S + relativedelta(months=1))
    p2 = (p1[1], S + relativedelta(months=2))
    p3 = (p2[1], S + relativedelta(months=3))
    creator, pro = "price_creator_month", "price_pro_month"

    # Top-ups: a paid checkout, then the delayed-method event of the same session (a duplicate).
    measure("checkout.session.completed (top-up, paid)", "checkout.session.completed",
            st.checkout_topup(ws, "pack_1000", f"cs_{tag}_1", f"pi_{tag}_1", 1200), T0 + timedelta(days=1))
    measure("checkout.session.async_payment_succeeded (dup)", "checkout.session.async_payment_succeeded",
            st.checkout_topup(ws, "pack_1000", f"cs_{tag}_1", f"pi_{tag}_1", 1200), T0 + timedelta(days=1, hours=1))
    measure("checkout.session.completed (unpaid, delayed)", "checkout.session.completed",
            st.checkout_topup(ws, "pack_5000", f"cs_{tag}_2", f"pi_{tag}_2", 5000, paid=False), T0 + timedelta(days=2))
    quietly("checkout.session.async_payment_succeeded",
            st.checkout_topup(ws, "pack_5000", f"cs_{tag}_2", f"pi_{tag}_2", 5000), T0 + timedelta(days=3))

    # Subscribing from free.
    measure("checkout.session.completed (subscription)", "checkout.session.completed",
            st.checkout_subscription(ws, "creator", f"cs_{tag}_3", sub), S)
    measure("customer.subscription.created", "customer.subscription.created",
            st.subscription(ws, sub, creator, ts(p1[0]), ts(p1[1])), S + timedelta(seconds=1))
    measure("invoice.paid (first)", "invoice.paid",
            st.invoice(ws, sub, creator, ts(p1[0]), ts(p1[1]), f"in_{tag}_1", reason="subscription_create"),
            S + timedelta(seconds=2))

    # The first renewal, after the daily job renewed the cycle (not counted): the period's
    # subscription update, a failed payment, then the invoice paid (and delivered again).
    at = p2[0] + timedelta(minutes=5)
    clock.set_now(at)
    wallets.load(ws, at)
    measure("customer.subscription.updated (renewal)", "customer.subscription.updated",
            st.subscription(ws, sub, creator, ts(p2[0]), ts(p2[1])), at, created=p2[0])
    failed = st.invoice(ws, sub, creator, ts(p2[0]), ts(p2[1]), f"in_{tag}_2")
    failed.update(status="open")
    measure("invoice.payment_failed", "invoice.payment_failed", failed, at + timedelta(hours=1))
    paid2 = st.invoice(ws, sub, creator, ts(p2[0]), ts(p2[1]), f"in_{tag}_2")
    measure("invoice.paid (renewal, cycle renewed)", "invoice.paid", paid2, at + timedelta(days=2))
    measure("invoice.paid (renewal, duplicate)", "invoice.paid", paid2, at + timedelta(days=2, minutes=1))

    # An upgrade mid-period: the subscription updated (pro, same period), its proration invoice.
    up = p2[0] + timedelta(days=10)
    measure("customer.subscription.updated (upgrade)", "customer.subscription.updated",
            st.subscription(ws, sub, pro, ts(p2[0]), ts(p2[1])), up)
    measure("invoice.paid (proration)", "invoice.paid",
            st.invoice(ws, sub, pro, ts(up), ts(p2[1]), f"in_{tag}_3", proration=True, reason="subscription_update"),
            up + timedelta(seconds=2))
    measure("customer.subscription.updated (stale)", "customer.subscription.updated",
            st.subscription(ws, sub, creator, ts(p2[0]), ts(p2[1])), up + timedelta(minutes=1), created=p2[0])
    # A downgrade scheduled in the portal, then withdrawn there.
    phases = [(ts(p2[0]), ts(p2[1]), pro), (ts(p2[1]), None, creator)]
    measure("subscription_schedule.created (downgrade)", "subscription_schedule.created",
            st.schedule(sub, phases), up + timedelta(minutes=2))
    measure("subscription_schedule.released", "subscription_schedule.released",
            st.schedule(sub, phases, status="released"), up + timedelta(minutes=3))

    # The second renewal, before the daily job ran: the webhook renews the cycle itself.
    at = p3[0] + timedelta(minutes=5)
    measure("customer.subscription.updated (renewal, lazy)", "customer.subscription.updated",
            st.subscription(ws, sub, pro, ts(p3[0]), ts(p3[1])), at, created=p3[0])
    measure("invoice.paid (renewal)", "invoice.paid",
            st.invoice(ws, sub, pro, ts(p3[0]), ts(p3[1]), f"in_{tag}_4"), at + timedelta(seconds=2))

    # Money back on the top-ups: a refund (half), a dispute (the whole pack).
    measure("charge.refunded (top-up, half)", "charge.refunded",
            st.refunded_charge(f"pi_{tag}_1", 1200, 600, f"ch_{tag}_1"), at + timedelta(days=1))
    measure("charge.refunded (duplicate)", "charge.refunded",
            st.refunded_charge(f"pi_{tag}_1", 1200, 600, f"ch_{tag}_1"), at + timedelta(days=1, minutes=1))
    measure("charge.refunded (not a top-up)", "charge.refunded",
            st.refunded_charge(f"pi_{tag}_invoice", 2900, 1000, f"ch_{tag}_9"), at + timedelta(days=1, minutes=2))
    measure("charge.dispute.created", "charge.dispute.created",
            st.dispute(f"pi_{tag}_2", 5000, f"dp_{tag}"), at + timedelta(days=2))

    # Cancel now, then a late event of the ended subscription.
    end = at + timedelta(days=3)
    measure("customer.subscription.deleted (now)", "customer.subscription.deleted",
            st.subscription(ws, sub, pro, ts(p3[0]), ts(p3[1]), status="canceled", ended_at=ts(end)), end)
    measure("customer.subscription.updated (after end)", "customer.subscription.updated",
            st.subscription(ws, sub, pro, ts(p3[0]), ts(p3[1])), end + timedelta(minutes=1))
    measure("customer.created (not acted on)", "customer.created", {"id": "cus_x", "object": "customer"},
            end + timedelta(minutes=2))
    clock.set_now(None)
    return rows


def count() -> tuple[dict, dict, bool]:
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib import config
    from chalicelib.credits import ledger, models

    with mock_aws():
        config.reload()
        models.bind(config.settings())
        models.create_table()
        from app import app

        counter = attach_to_models()
        with Client(app) as client:
            new = play("new", client, counter, "bench-new")
            old = play("old", client, counter, "bench-old")
        clean = ledger.audit().clean
    return new, old, clean


def main() -> None:
    new, old, clean = count()
    print("DynamoDB requests per Stripe webhook event (in-process moto, counted with botocore event hooks)")
    print(f"target: at most {TARGET} requests per event; signature checked, then the handler; 'new' API shape")
    width = max(len(r[0]) for r in new) + 2
    print(f"{'event':<{width}}{'reads':>6}{'writes':>7}{'total':>6}  requests; handler's result")
    over = 0
    for name, reads, writes, ops, result in new:
        total = reads + writes
        over += total > TARGET
        mark = " *" if total > TARGET else "  "
        ops_text = " ".join(f"{op} {n}" for op, n in ops.items()) or "-"
        print(f"{name:<{width}}{reads:>6}{writes:>7}{total:>6}{mark}{ops_text}; {result}")
    print(f"* over the target: {over} of {len(new)} rows")
    diff = [(a[0], a[1:3], b[1:3]) for a, b in zip(new, old) if a[1:3] != b[1:3]]
    if diff:
        print("old API shape (before 2025-03-31), rows that differ (reads, writes): "
              + "; ".join(f"{n}: {b} (new {a})" for n, a, b in diff))
    else:
        print("old API shape (before 2025-03-31): the same counts on every row")
    print(f"audit after both runs: {'clean' if clean else 'NOT CLEAN'}")


if __name__ == "__main__":
    main()
