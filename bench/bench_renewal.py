"""The daily renewal job: DynamoDB requests for a renewal day, and wallets renewed per second.

    .venv/bin/python bench/bench_renewal.py

Everything runs on an in-process moto table (no network, no real DynamoDB): request counts are
what the code would send to DynamoDB, counted with botocore's event hooks (bench/counting.py);
the rate is moto's, in one process, and says little about DynamoDB's latency.

Wallets are made by wallets.open_workspace itself with its transaction captured, then written with
BatchWriteItem: the same items (wallet, first grant, membership) as a real sign-up, made quickly.
Due wallets' cycles ended the day before the job's moment; the others renew on the days of the
month that follows, as in a real month."""
from __future__ import annotations


import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.inprocess import use_moto  # noqa: E402

use_moto("bench-renewal")

from dateutil.relativedelta import relativedelta  # noqa: E402

from bench.counting import attach_to_models  # noqa: E402

MOMENT = datetime(2027, 3, 1, 0, 10, tzinfo=timezone.utc)  # the job's 00:10 UTC run


def created_at(i: int, due: bool) -> datetime:
    if due:  # the cycle ended before MOMENT (on Feb 28, clamped, at some hour)
        return MOMENT - relativedelta(months=1) - timedelta(hours=1, seconds=i)
    # renews on one of the next 27 days, never before MOMENT
    return datetime(2027, 2, 1, 1, 0, tzinfo=timezone.utc) + timedelta(days=i % 27, seconds=i % 3600)


def populate(total: int, due: int) -> float:
    """`total` wallets of which `due` are due at MOMENT. Returns seconds taken."""
    from chalicelib.credits import wallets
    from chalicelib.credits.models import Wallet

    t = time.perf_counter()
    items: list = []

    def collect(ops) -> None:
        items.extend(op.item for op in ops)

    real = wallets.transact
    wallets.transact = collect
    try:
        for i in range(total):
            is_due = i < due
            ws = f"ws_b{'d' if is_due else 'n'}{i:05d}"
            wallets.open_workspace(ws, f"Bench {i}", "personal", f"bench-user-{i}", created_at(i, is_due))
    finally:
        wallets.transact = real
    with Wallet.batch_write() as batch:
        for item in items:
            batch.save(item)
    return time.perf_counter() - t


def fresh_table() -> None:
    from chalicelib import config
    from chalicelib.credits import models
    from chalicelib.catalog import catalog

    catalog.cache_clear()
    config.reload()
    models.bind(config.settings())
    if models.Wallet.exists():
        models.Wallet.delete_table()
    models.create_table()


def renewal_day(total: int, due: int) -> dict:
    from chalicelib import clock
    from chalicelib.credits import renewal

    fresh_table()
    made = populate(total, due)
    counter = attach_to_models()
    counter.reset()
    clock.set_now(MOMENT)
    t = time.perf_counter()
    report = renewal.run(MOMENT)
    took = time.perf_counter() - t
    clock.set_now(None)
    ops = dict(sorted(counter.ops.items()))
    return {"total": total, "due": due, "renewed": report.renewed, "reads": counter.reads,
            "writes": counter.writes, "ops": ops, "items": sum(counter.items_written),
            "seconds": took, "populate": made, "summary": report.summary()}


def patch_store() -> str:
    """The embedded store's patches to moto (what `make run` serves from): without them moto copies
    the whole table on every transaction, which makes a 10,000-wallet table take minutes."""
    try:
        from devserver.store import apply_patches

        apply_patches()
    except Exception as e:  # the store is being changed; fall back to moto as it is
        return f"moto as it is (devserver.store patches unavailable: {e!r})"
    return "moto with the embedded store's patches (devserver.store.apply_patches)"


def main() -> None:
    from moto import mock_aws

    print("Renewal day: DynamoDB requests of renewal.run, counted with botocore hooks on in-process moto")
    with mock_aws():  # moto as it is, first: small tables only
        plain = renewal_day(100, 100)
    store = patch_store()
    with mock_aws():
        rows = [renewal_day(10_000, 100), renewal_day(100, 100)]
        rate_row = renewal_day(2_000, 2_000)
        from chalicelib.credits import ledger

        audit = ledger.audit()
    print(f"store: {store}")
    print(f"{'wallets':>8}{'due':>6}{'renewed':>9}{'reads':>7}{'writes':>8}{'per due':>9}  requests by operation")
    for r in rows:
        per_due = (r["reads"] + r["writes"]) / r["due"]
        print(f"{r['total']:>8}{r['due']:>6}{r['renewed']:>9}{r['reads']:>7}{r['writes']:>8}{per_due:>9.2f}  {r['ops']}")
    a, b = rows
    same = (a["reads"], a["writes"]) == (b["reads"], b["writes"])
    print(f"10,000 wallets vs 100 wallets, 100 due each: {'the same' if same else 'DIFFERENT'} number of requests "
          f"({a['reads'] + a['writes']} vs {b['reads'] + b['writes']}); items written: {a['items']} vs {b['items']}")
    print(f"moto as it is, 100 of 100 due: {plain['reads']} reads, {plain['writes']} writes "
          f"({'the same' if (plain['reads'], plain['writes']) == (b['reads'], b['writes']) else 'DIFFERENT'})")
    print(f"(setting up 10,000 wallets with BatchWriteItem took {a['populate']:.1f} s, not counted)")
    print()
    print("Wallets renewed per second: serial, one process, in-process moto (not DynamoDB; no network):")
    for label, r in [("patched moto", rows[0]), ("patched moto", rows[1]), ("patched moto", rate_row),
                     ("moto as it is", plain)]:
        print(f"  {label:<14}{r['due']:>5} due of {r['total']:>6}: {r['renewed'] / r['seconds']:8.0f} wallets/s "
              f"({r['seconds'] * 1000:.0f} ms for the run)")
    print(f"  last run: {rate_row['summary']}")
    print(f"  audit after it: {audit.wallets} wallets, {audit.entries} entries, "
          f"{'clean' if audit.clean else f'{len(audit.problems)} wallet(s) differ'}")


if __name__ == "__main__":
    main()
