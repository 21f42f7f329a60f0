"""Cycles and renewal (PRODUCT.md, "Cycles and renewal"; issue 4), in-process with an injected
clock: grants and expiries exactly once per cycle, paid plans only while paid for, the daily job
(run twice, racing a lazy renewal, fanning out through SQS), catch-up of missed cycles, the
rollover cap, top-up credits untouched, holds across a renewal, the subscription view, and the
job's DynamoDB requests growing with the due wallets only."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from dateutil.relativedelta import relativedelta

from bench.counting import attach_to_models
from chalicelib import catalog as catalog_module
from chalicelib import clock, config
from chalicelib.credits import models, plans, renewal, rules, wallets
from chalicelib.credits.models import Entry
from chalicelib.credits.store import get_wallet, query_newest, scan_all
from tests.conftest import T0
from tests.functional.test_charges import assert_audit_clean, bal, balance, give_topup
from tests.functional.test_holds import hold, release

UTC = timezone.utc
MONTH = relativedelta(months=1)
YEAR = relativedelta(years=1)


# --- helpers ------------------------------------------------------------------------------------

def ledger(ws: str) -> list[Entry]:
    """Every ledger entry of a wallet, oldest first (read straight from the store)."""
    out, start = [], None
    while True:
        page, start = query_newest(ws, start_key=start)
        out += [e for e in page if isinstance(e, Entry)]
        if not start:
            break
    return sorted(out, key=lambda e: e.seq)


def moves(ws: str) -> list[tuple[str, int, int]]:
    return [(e.kind, int(e.plan_delta), int(e.topup_delta)) for e in ledger(ws)]


def ref(e: Entry) -> dict:
    return models.plain(e.ref)


def cycle_ref(start: datetime, end: datetime, plan: str = "free") -> dict:
    return {"type": "cycle", "plan": plan, "start": rules.iso(start), "end": rules.iso(end)}


def of_kind(ws: str, kind: str) -> list[Entry]:
    return [e for e in ledger(ws) if e.kind == kind]


def assert_sums_match(ws: str) -> None:
    w = get_wallet(ws)
    es = ledger(ws)
    assert sum(int(e.plan_delta) for e in es) == int(w.plan)
    assert sum(int(e.topup_delta) for e in es) == int(w.topup)
    assert sum(int(e.held_delta) for e in es) == int(w.held)
    assert es[-1].seq == w.last
    assert all(a.seq < b.seq for a, b in zip(es, es[1:]))


def snapshot() -> list[dict]:
    """Every item of the table, raw, in a stable order."""
    return sorted(scan_all(), key=lambda r: (r["pk"]["S"], r["sk"]["S"]))


def open_wallets(n: int, at: datetime, prefix: str = "ws_t") -> list[str]:
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    for i, ws in enumerate(ids):
        assert wallets.open_workspace(ws, f"W{i}", "personal", f"{prefix}-user{i}", at)
    return ids


def view(ws: str, now: datetime) -> dict:
    return wallets.view(wallets.load(ws, now))


# --- a free wallet over two years ----------------------------------------------------------------

def test_free_wallet_over_two_years(api):
    ws = api.workspace("alice")  # opened at T0: anchor 2027-01-31T09:00Z
    images = [(i * 5) % 6 for i in range(24)]  # 0, 5, 4, 3, 2, 1, 0, ... standard images a month
    expected_expiries = []
    for i, count in enumerate(images):
        lo, hi = T0 + relativedelta(months=i), T0 + relativedelta(months=i + 1)
        clock.set_now(lo + timedelta(hours=3))
        if count:
            r = api.charge(ws, "alice", "image", {"count": count}, key=f"month-{i}")
            assert r.status_code == 201, (i, r.body)
            assert r.json["balance"] == bal(50 - 10 * count, 50 - 10 * count)
        left = 50 - 10 * count
        if left:
            expected_expiries.append((cycle_ref(lo, hi), -left))
        clock.set_now(hi)  # the cycle's end itself: the next read renews
        assert balance(api, ws, "alice") == bal(50, 50), i
        newest = ledger(ws)[-2:] if left else ledger(ws)[-1:]
        if left:
            assert (newest[0].kind, int(newest[0].plan_delta), ref(newest[0])) == ("expire", -left, cycle_ref(lo, hi))
        nxt = T0 + relativedelta(months=i + 2)
        assert (newest[-1].kind, int(newest[-1].plan_delta), ref(newest[-1])) == ("grant", 50, cycle_ref(hi, nxt))

    grants = of_kind(ws, "grant")
    assert len(grants) == 25  # the first, then exactly 24
    assert [int(g.plan_delta) for g in grants] == [50] * 25
    assert [ref(g) for g in grants] == [
        cycle_ref(T0 + relativedelta(months=k), T0 + relativedelta(months=k + 1)) for k in range(25)]
    expiries = of_kind(ws, "expire")
    assert [(ref(e), int(e.plan_delta)) for e in expiries] == expected_expiries
    assert len(expiries) == sum(1 for c in images if c != 5)
    assert len(of_kind(ws, "charge")) == sum(1 for c in images if c)
    # Every credit granted is spent or expired, except the current cycle's 50.
    spent = 10 * sum(images)
    assert 25 * 50 - spent + sum(d for _, d in expected_expiries) == 50
    assert_sums_match(ws)
    w = get_wallet(ws)
    assert (int(w.cycle_start), int(w.cycle_end)) == (
        int((T0 + relativedelta(years=2)).timestamp()), int((T0 + relativedelta(years=2, months=1)).timestamp()))
    assert_audit_clean()


# --- paid plans ---------------------------------------------------------------------------------

def test_annual_plan_grants_twelve_monthly_cycles_in_its_year(api):
    ws = api.workspace("alice")
    start = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)  # cycles clamp: Feb 28, Mar 31, Apr 30, ...
    clock.set_now(start)
    assert plans.start_plan(ws, "creator", "year", start, start)
    assert wallets.load(ws, start).plan == 0  # the free credits left expired; nothing yet
    assert plans.mark_paid(ws, start + YEAR, start) == 500
    assert balance(api, ws, "alice") == bal(500, 500)
    for k in range(1, 12):
        moment = start + relativedelta(months=k)
        clock.set_now(moment)
        report = renewal.run(moment)
        assert (report.due, report.renewed, report.cycles, report.granted, report.expired) == (1, 1, 1, 500, 500), k
        v = view(ws, moment)
        assert (v["status"], v["balance"]["plan"]) == ("active", 500), k
    grants = [g for g in of_kind(ws, "grant") if ref(g)["plan"] == "creator"]
    assert len(grants) == 12
    assert [ref(g) for g in grants] == [
        cycle_ref(start + relativedelta(months=k), start + relativedelta(months=k + 1), "creator") for k in range(12)]
    assert all(int(g.plan_delta) == 500 for g in grants)

    # The paid year ends: the 12th cycle's credits expire, no 13th grant until the next year is paid.
    year_end = start + YEAR
    clock.set_now(year_end)
    report = renewal.run(year_end)
    assert (report.renewed, report.granted, report.expired) == (1, 0, 500)
    v = view(ws, year_end)
    assert (v["status"], v["balance"]) == ("past_due", bal(0, 0))
    later = year_end + timedelta(days=10)
    clock.set_now(later)
    assert renewal.run(later).renewed == 0
    assert balance(api, ws, "alice") == bal(0, 0)
    assert len([g for g in of_kind(ws, "grant") if ref(g)["plan"] == "creator"]) == 12

    assert plans.mark_paid(ws, start + relativedelta(years=2), later) == 500
    v = view(ws, later)
    assert (v["status"], v["balance"]) == ("active", bal(500, 500))
    grants = [g for g in of_kind(ws, "grant") if ref(g)["plan"] == "creator"]
    assert len(grants) == 13
    assert ref(grants[-1]) == cycle_ref(year_end, year_end + MONTH, "creator")
    assert plans.mark_paid(ws, start + relativedelta(years=2), later) == 0  # Stripe retries the webhook
    assert balance(api, ws, "alice") == bal(500, 500)
    assert_sums_match(ws)
    assert_audit_clean()


def test_annual_plan_caught_up_by_one_read_after_its_year(api):
    """No job ran for 14 months: one read grants the 11 remaining cycles of the paid year, and
    nothing for the two cycles after it."""
    ws = api.workspace("alice")
    start = T0 + timedelta(days=1)
    clock.set_now(start)
    plans.start_plan(ws, "creator", "year", start, start)
    assert plans.mark_paid(ws, start + YEAR, start) == 500
    late = start + relativedelta(months=14) + timedelta(hours=1)
    clock.set_now(late)
    v = api.get(f"/v1/workspaces/{ws}/subscription", "alice").json
    assert (v["status"], v["balance"]) == ("past_due", bal(0, 0))
    grants = [g for g in of_kind(ws, "grant") if ref(g)["plan"] == "creator"]
    assert [ref(g)["start"] for g in grants] == [rules.iso(start + relativedelta(months=k)) for k in range(12)]
    expiries = [e for e in of_kind(ws, "expire") if ref(e)["plan"] == "creator"]
    assert [(ref(e)["start"], int(e.plan_delta)) for e in expiries] == [
        (rules.iso(start + relativedelta(months=k)), -500) for k in range(12)]
    assert_sums_match(ws)
    assert_audit_clean()


def test_annual_plan_renewed_before_its_year_ends_keeps_granting(api):
    ws = api.workspace("alice")
    start = T0 + timedelta(days=1)
    clock.set_now(start)
    plans.start_plan(ws, "creator", "year", start, start)
    plans.mark_paid(ws, start + YEAR, start)
    early = start + YEAR - timedelta(minutes=10)
    clock.set_now(early)
    # Its read caught up cycles 2 to 12 first; the 12th was granted, so this only records the payment.
    assert plans.mark_paid(ws, start + 2 * YEAR, early) == 0
    assert len([g for g in of_kind(ws, "grant") if ref(g)["plan"] == "creator"]) == 12
    clock.set_now(start + YEAR)
    report = renewal.run(start + YEAR)
    assert (report.renewed, report.cycles, report.granted, report.expired) == (1, 1, 500, 500)
    v = view(ws, start + YEAR)
    assert (v["status"], v["balance"]) == ("active", bal(500, 500))
    grants = [g for g in of_kind(ws, "grant") if ref(g)["plan"] == "creator"]
    assert len(grants) == 13
    assert_audit_clean()


def test_monthly_plan_grants_each_cycle_once_it_is_paid(api):
    ws = api.workspace("alice")
    start = T0 + timedelta(days=3, hours=2)  # 2027-02-03T11:00Z
    clock.set_now(start)
    assert plans.start_plan(ws, "pro", "month", start, start)
    v = view(ws, start)
    assert (v["plan"]["id"], v["interval"], v["balance"]) == ("pro", "month", bal(0, 0))
    assert [g for g in of_kind(ws, "grant") if ref(g)["plan"] == "pro"] == []

    assert plans.mark_paid(ws, start + MONTH, start) == 2000
    assert plans.mark_paid(ws, start + MONTH, start) == 0  # the same invoice reported twice
    assert balance(api, ws, "alice") == bal(2000, 2000)
    pro_grants = [g for g in of_kind(ws, "grant") if ref(g)["plan"] == "pro"]
    assert [(int(g.plan_delta), ref(g)) for g in pro_grants] == [(2000, cycle_ref(start, start + MONTH, "pro"))]

    # The next cycle begins unpaid: the 2000 left expire, nothing is granted, past_due.
    renews = start + MONTH
    clock.set_now(renews)
    assert balance(api, ws, "alice") == bal(0, 0)
    v = view(ws, renews)
    assert v["status"] == "past_due"
    assert v["cycle"] == {"start": "2027-03-03", "end": "2027-04-03"}
    assert moves(ws)[-1] == ("expire", -2000, 0)
    assert len([g for g in of_kind(ws, "grant") if ref(g)["plan"] == "pro"]) == 1

    # Billing reports the period paid: granted now, active again.
    paid_at = renews + timedelta(hours=1)
    clock.set_now(paid_at)
    assert plans.mark_paid(ws, start + 2 * MONTH, paid_at) == 2000
    assert plans.mark_paid(ws, start + 2 * MONTH, paid_at) == 0
    v = view(ws, paid_at)
    assert (v["status"], v["balance"]) == ("active", bal(2000, 2000))
    pro_grants = [g for g in of_kind(ws, "grant") if ref(g)["plan"] == "pro"]
    assert [ref(g) for g in pro_grants] == [cycle_ref(start, start + MONTH, "pro"),
                                             cycle_ref(renews, renews + MONTH, "pro")]
    assert_sums_match(ws)
    assert_audit_clean()


def test_monthly_plan_paid_before_the_renewal_grants_at_the_renewal(api):
    """Stripe may report the next invoice paid a little before the period turns."""
    ws = api.workspace("alice")
    start = T0 + timedelta(days=3)
    clock.set_now(start)
    plans.start_plan(ws, "pro", "month", start, start)
    assert plans.mark_paid(ws, start + MONTH, start) == 2000
    early = start + MONTH - timedelta(minutes=5)
    clock.set_now(early)
    assert plans.mark_paid(ws, start + 2 * MONTH, early) == 0  # the current cycle is granted already
    clock.set_now(start + MONTH)
    report = renewal.run(start + MONTH)
    assert (report.renewed, report.granted, report.expired) == (1, 2000, 2000)
    v = view(ws, start + MONTH)
    assert (v["status"], v["balance"]) == ("active", bal(2000, 2000))
    assert len([g for g in of_kind(ws, "grant") if ref(g)["plan"] == "pro"]) == 2
    assert_audit_clean()


# --- the job: idempotent, racing a lazy renewal ---------------------------------------------------

def test_job_run_twice_for_the_same_moment_changes_nothing(ddb, now):
    due = open_wallets(5, T0)
    later = open_wallets(3, T0 + timedelta(days=10), prefix="ws_l")
    moment = T0 + MONTH
    clock.set_now(moment)
    first = renewal.run(moment)
    assert (first.due, first.renewed, first.cycles, first.granted, first.expired) == (5, 5, 5, 250, 250)
    assert sorted(first.renewed_ids) == due
    before = snapshot()
    second = renewal.run(moment)
    assert (second.due, second.renewed, second.cycles, second.granted, second.expired) == (0, 0, 0, 0, 0)
    assert "0 renewed" in second.summary()
    assert snapshot() == before
    for ws in later:
        assert len(ledger(ws)) == 1  # not due: untouched
    assert_audit_clean()


def test_job_and_lazy_renewal_race_on_one_wallet(ddb, now):
    (ws,) = open_wallets(1, T0)
    moment = T0 + MONTH
    clock.set_now(moment)
    as_job_read_it = get_wallet(ws)
    as_reader_read_it = get_wallet(ws)  # both read before either renewed
    results = [wallets.renew_due(as_job_read_it, moment), wallets.renew_due(as_reader_read_it, moment)]
    assert sum(r is not None for r in results) == 1
    assert [r for r in results if r is not None][0] == wallets.Renewed(cycles=1, granted=50, expired=50)
    # The loser reads again and finds nothing due; so do the job and a later read.
    assert wallets.load(ws, moment).plan == 50
    assert renewal.run(moment).renewed == 0
    grants = [g for g in of_kind(ws, "grant") if ref(g)["start"] == rules.iso(moment)]
    assert len(grants) == 1
    assert moves(ws) == [("grant", 50, 0), ("expire", -50, 0), ("grant", 50, 0)]
    assert_sums_match(ws)
    assert_audit_clean()


def test_job_with_a_stale_read_after_a_lazy_renewal(ddb, now):
    (ws,) = open_wallets(1, T0)
    moment = T0 + MONTH + timedelta(hours=5)
    clock.set_now(moment)
    stale = get_wallet(ws)
    assert wallets.load(ws, moment).plan == 50  # a balance read renews lazily first
    assert wallets.renew_due(stale, moment) is None  # the job's write, on what it read, is refused
    report = renewal.Report(moment)
    renewal.renew_one(ws, moment, report)
    assert report.renewed == 0
    assert moves(ws) == [("grant", 50, 0), ("expire", -50, 0), ("grant", 50, 0)]
    assert_audit_clean()


# --- catch-up -------------------------------------------------------------------------------------

def test_missed_cycles_catch_up_in_one_go_each_in_the_ledger(api):
    ws = api.workspace("alice")
    assert api.charge(ws, "alice", "image", {"count": 2}, key="k").status_code == 201  # 30 left
    late = T0 + relativedelta(months=5) + timedelta(days=2)
    clock.set_now(late)
    counter = attach_to_models()
    try:
        w = wallets.load(ws, late)  # a single read, as a balance read does
        writes = counter.writes
    finally:
        detach(counter)
    assert writes == 1  # every missed cycle in one transaction
    assert (int(w.plan), int(w.cycle_start)) == (50, int((T0 + relativedelta(months=5)).timestamp()))
    starts = [T0 + relativedelta(months=k) for k in range(7)]
    cycle_entries = [(e.kind, int(e.plan_delta), ref(e)) for e in ledger(ws) if e.kind in ("grant", "expire")]
    expected = [("grant", 50, cycle_ref(starts[0], starts[1]))]
    for k in range(5):
        expected.append(("expire", -(30 if k == 0 else 50), cycle_ref(starts[k], starts[k + 1])))
        expected.append(("grant", 50, cycle_ref(starts[k + 1], starts[k + 2])))
    assert cycle_entries == expected
    assert balance(api, ws, "alice") == bal(50, 50)
    assert len(ledger(ws)) == 12  # nothing more on the next read
    assert_sums_match(ws)
    assert_audit_clean()


def test_wallet_idle_for_five_years_catches_up(api):
    """60 missed cycles: 120 ledger entries, more than one DynamoDB transaction may hold (100).
    Caught up by a read, and by the job, each cycle once."""
    ws = api.workspace("alice")
    (by_job,) = open_wallets(1, T0)
    late = T0 + relativedelta(years=5) + timedelta(days=1)
    clock.set_now(late)
    assert balance(api, ws, "alice") == bal(50, 50)
    report = renewal.run(late)
    assert (report.due, report.renewed, report.cycles, report.granted, report.expired) == (1, 1, 60, 3000, 3000)
    for w in (ws, by_job):
        grants, expiries = of_kind(w, "grant"), of_kind(w, "expire")
        assert len(grants) == 61 and len(expiries) == 60
        assert [ref(g)["start"] for g in grants] == [rules.iso(T0 + relativedelta(months=k)) for k in range(61)]
        assert [ref(e)["start"] for e in expiries] == [rules.iso(T0 + relativedelta(months=k)) for k in range(60)]
        assert int(get_wallet(w).cycle_start) == int((T0 + relativedelta(years=5)).timestamp())
        assert_sums_match(w)
    assert renewal.run(late).renewed == 0
    assert_audit_clean()


# --- the rollover cap -----------------------------------------------------------------------------

@pytest.fixture
def free_rollover_20(tmp_path, monkeypatch):
    raw = json.loads(catalog_module.DEFAULT_PATH.read_text())
    for plan in raw["plans"]:
        if plan["id"] == "free":
            plan["rollover_cap"] = 20
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(raw))
    monkeypatch.setenv("CATALOG_PATH", str(path))
    catalog_module.catalog.cache_clear()
    assert catalog_module.catalog().plan("free").rollover_cap == 20
    yield
    monkeypatch.delenv("CATALOG_PATH")
    catalog_module.catalog.cache_clear()


def test_rollover_cap_carries_at_most_the_cap(api, free_rollover_20):
    ws = api.workspace("alice")
    give_topup(ws, 5)
    # 35 plan credits left: a 20-credit hold captured at 15.
    h = hold(api, ws, "alice", "image", {"quality": "hd"}, key="h").json
    r = api.post(f"/v1/workspaces/{ws}/holds/{h['hold_id']}/capture", "alice", {"credits": 15})
    assert r.status_code == 200, r.body
    assert balance(api, ws, "alice") == bal(40, 35, 5)

    clock.set_now(T0 + MONTH)
    assert balance(api, ws, "alice") == bal(75, 70, 5)  # 20 carried + 50 granted; top-up untouched
    assert moves(ws)[-2:] == [("expire", -15, 0), ("grant", 50, 0)]
    assert ref(ledger(ws)[-2]) == cycle_ref(T0, T0 + MONTH)
    # The next cycle: 70 left, 20 carried, 50 expire.
    clock.set_now(T0 + 2 * MONTH)
    assert balance(api, ws, "alice") == bal(75, 70, 5)
    assert moves(ws)[-2:] == [("expire", -50, 0), ("grant", 50, 0)]

    # Below the cap nothing expires: 10 left, all 10 carried.
    clock.set_now(T0)
    other = api.workspace("bob")
    assert api.charge(other, "bob", "image", {"quality": "ultra"}, key="k").status_code == 201  # 40
    clock.set_now(T0 + MONTH)
    assert renewal.run(T0 + MONTH).renewed == 1
    assert balance(api, other, "bob") == bal(60, 60)
    assert [m for m in moves(other) if m[0] == "expire"] == []
    assert_sums_match(ws)
    assert_sums_match(other)
    assert_audit_clean()


# --- top-up credits --------------------------------------------------------------------------------

def test_topup_credits_untouched_by_every_renewal(api):
    ws = api.workspace("alice")
    give_topup(ws, 1000)
    r = api.charge(ws, "alice", "image", {"count": 8}, key="k")  # 80: 50 plan + 30 top-up
    assert (r.json["from_plan"], r.json["from_topup"]) == (50, 30)
    assert balance(api, ws, "alice") == bal(970, 0, 970)
    # The job renews one cycle (nothing left to expire).
    clock.set_now(T0 + MONTH)
    assert renewal.run(T0 + MONTH).renewed == 1
    assert balance(api, ws, "alice") == bal(1020, 50, 970)
    # A lazy renewal by a charge.
    clock.set_now(T0 + 2 * MONTH + timedelta(hours=1))
    r = api.charge(ws, "alice", "image", {}, key="k2")
    assert r.status_code == 201 and r.json["balance"] == bal(1010, 40, 970)
    # Three missed cycles at once.
    clock.set_now(T0 + 5 * MONTH)
    assert balance(api, ws, "alice") == bal(1020, 50, 970)
    for e in ledger(ws):
        if e.kind in ("grant", "expire"):
            assert int(e.topup_delta) == 0 and int(e.held_delta) == 0
    assert int(get_wallet(ws).topup) == 970
    assert_sums_match(ws)
    assert_audit_clean()


# --- holds across a renewal ------------------------------------------------------------------------

def test_hold_across_the_job_renewal_plan_part_expires_topup_part_returns(api):
    ws = api.workspace("alice")
    give_topup(ws, 100)
    clock.set_now(T0 + MONTH - timedelta(hours=1))
    h = hold(api, ws, "alice", "video", {"resolution": "1080p", "seconds": 5}, ttl=7200).json  # 100
    assert h["balance"] == bal(50, 0, 50, 100)  # 50 plan + 50 top-up held
    moment = T0 + MONTH
    clock.set_now(moment)
    report = renewal.run(moment)  # the job, not a read, renews
    assert (report.renewed, report.granted, report.expired) == (1, 50, 0)
    clock.set_now(moment + timedelta(minutes=30))
    assert balance(api, ws, "alice") == bal(100, 50, 50, 100)  # the hold is still open
    r = release(api, ws, "alice", h["hold_id"])
    assert r.status_code == 200, r.body
    assert (r.json["returned"], r.json["expired"]) == (50, 50)
    assert r.json["balance"] == bal(150, 50, 100, 0)  # the new cycle's 50 only; the top-up back
    last = ledger(ws)[-1]
    assert (last.kind, int(last.plan_delta), int(last.topup_delta), int(last.held_delta)) == ("release", 0, 50, -100)
    assert_sums_match(ws)
    assert_audit_clean()


def test_plan_only_hold_across_a_renewal_returns_nothing_to_the_new_cycle(api):
    ws = api.workspace("alice")
    clock.set_now(T0 + MONTH - timedelta(minutes=10))
    h = hold(api, ws, "alice", "image", {"quality": "ultra"}, ttl=3600).json  # 40 of the plan's 50
    moment = T0 + MONTH
    clock.set_now(moment)
    report = renewal.run(moment)
    assert (report.renewed, report.granted, report.expired) == (1, 50, 10)  # the 10 not held
    clock.set_now(moment + timedelta(minutes=5))
    r = release(api, ws, "alice", h["hold_id"])
    assert r.status_code == 200, r.body
    assert (r.json["returned"], r.json["expired"]) == (0, 40)
    assert balance(api, ws, "alice") == bal(50, 50)
    assert_audit_clean()


# --- the daily job's fan-out through SQS -----------------------------------------------------------

@pytest.fixture
def queue(ddb):
    import botocore.session

    sqs = botocore.session.get_session().create_client("sqs", region_name=config.settings().region)
    name = config.settings().renewal_queue
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)
    yield sqs, url, name
    sqs.delete_queue(QueueUrl=url)


def receive_all(sqs, url: str) -> list[str]:
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return bodies
        for m in got:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_daily_job_fans_out_through_sqs(queue, now, monkeypatch):
    sqs, url, name = queue
    monkeypatch.setattr(renewal, "FANOUT_ABOVE", 2)
    due = open_wallets(60, T0)
    not_due = open_wallets(4, T0 + timedelta(days=5), prefix="ws_n")
    moment = T0 + MONTH
    clock.set_now(moment)
    report = renewal.run(moment, send=renewal.sqs_sender(name))
    assert (report.due, report.queued, report.messages, report.renewed) == (60, 60, 3, 0)
    assert all(len(ledger(ws)) == 1 for ws in due)  # queued, not renewed yet
    bodies = receive_all(sqs, url)
    assert len(bodies) == 3
    batches = [json.loads(b) for b in bodies]
    ids = [ws for b in batches for ws in b["workspace_ids"]]
    assert sorted(ids) == due and len(set(ids)) == 60
    assert sorted(len(b["workspace_ids"]) for b in batches) == [10, renewal.BATCH, renewal.BATCH]
    assert {b["moment"] for b in batches} == {int(moment.timestamp())}
    renewed = 0
    for body in bodies:
        first = renewal.run_batch(body)
        again = renewal.run_batch(body)  # SQS delivers at least once
        assert first.renewed == len(json.loads(body)["workspace_ids"])
        assert (again.renewed, again.granted, again.expired) == (0, 0, 0)
        renewed += first.renewed
    assert renewed == 60
    for ws in due:
        assert moves(ws) == [("grant", 50, 0), ("expire", -50, 0), ("grant", 50, 0)]
    for ws in not_due:
        assert moves(ws) == [("grant", 50, 0)]
    assert renewal.run(moment, send=renewal.sqs_sender(name)).due == 0
    assert receive_all(sqs, url) == []
    assert_audit_clean()


def test_scheduled_and_sqs_handlers(queue, now, monkeypatch):
    from chalice.test import Client

    from app import app

    sqs, url, name = queue
    monkeypatch.setattr(renewal, "FANOUT_ABOVE", 2)
    few = open_wallets(2, T0, prefix="ws_f")
    many = open_wallets(5, T0 + timedelta(days=2), prefix="ws_m")
    with Client(app) as client:
        # A quiet day (2 due, not above 2): the scheduled invocation renews them itself.
        clock.set_now(T0 + MONTH)
        client.lambda_.invoke("daily_renewal", client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
        assert receive_all(sqs, url) == []
        for ws in few:
            assert len(of_kind(ws, "grant")) == 2
        # A busy day (5 due): it queues them; each message renews its batch, twice is harmless.
        busy = T0 + timedelta(days=2) + MONTH
        clock.set_now(busy)
        client.lambda_.invoke("daily_renewal", client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
        bodies = receive_all(sqs, url)
        assert len(bodies) == 1
        assert sorted(json.loads(bodies[0])["workspace_ids"]) == many
        assert all(len(of_kind(ws, "grant")) == 1 for ws in many)
        event = client.events.generate_sqs_event(message_bodies=bodies, queue_name=name)
        client.lambda_.invoke("renewal_batch", event)
        before = snapshot()
        client.lambda_.invoke("renewal_batch", event)
        assert snapshot() == before
    for ws in many:
        assert moves(ws) == [("grant", 50, 0), ("expire", -50, 0), ("grant", 50, 0)]
    for ws in few:
        assert len(of_kind(ws, "grant")) == 2  # not renewed twice
    assert_audit_clean()


# --- the subscription view ---------------------------------------------------------------------------

def test_view_cycle_and_renews_on_for_free_monthly_and_annual(api):
    free = api.workspace("alice")
    v = api.get(f"/v1/workspaces/{free}/subscription", "alice").json
    assert (v["cycle"], v["renews_on"]) == ({"start": "2027-01-31", "end": "2027-02-28"}, "2027-02-28")
    clock.set_now(datetime(2027, 2, 28, 9, 0, tzinfo=UTC))
    v = api.get(f"/v1/workspaces/{free}/subscription", "alice").json
    assert (v["cycle"], v["renews_on"]) == ({"start": "2027-02-28", "end": "2027-03-31"}, "2027-03-31")
    clock.set_now(T0)

    monthly = api.workspace("bob")
    start = datetime(2027, 2, 10, 15, 30, tzinfo=UTC)
    clock.set_now(start)
    plans.start_plan(monthly, "pro", "month", start, start)
    plans.mark_paid(monthly, start + MONTH, start)
    v = api.get(f"/v1/workspaces/{monthly}/subscription", "bob").json
    assert (v["plan"]["id"], v["interval"], v["status"]) == ("pro", "month", "active")
    assert (v["cycle"], v["renews_on"]) == ({"start": "2027-02-10", "end": "2027-03-10"}, "2027-03-10")

    annual = api.workspace("carol")
    ystart = datetime(2027, 3, 31, 23, 0, tzinfo=UTC)
    clock.set_now(ystart)
    plans.start_plan(annual, "creator", "year", ystart, ystart)
    plans.mark_paid(annual, ystart + YEAR, ystart)
    v = api.get(f"/v1/workspaces/{annual}/subscription", "carol").json
    assert (v["plan"]["id"], v["interval"], v["status"]) == ("creator", "year", "active")
    # The monthly cycle of the year, not the year.
    assert (v["cycle"], v["renews_on"]) == ({"start": "2027-03-31", "end": "2027-04-30"}, "2027-04-30")
    clock.set_now(datetime(2027, 5, 2, tzinfo=UTC))
    v = api.get(f"/v1/workspaces/{annual}/subscription", "carol").json
    assert (v["cycle"], v["renews_on"]) == ({"start": "2027-04-30", "end": "2027-05-31"}, "2027-05-31")
    assert v["balance"] == bal(500, 500)
    v = api.get(f"/v1/workspaces/{monthly}/subscription", "bob").json
    assert (v["cycle"], v["renews_on"], v["status"]) == (
        {"start": "2027-04-10", "end": "2027-05-10"}, "2027-05-10", "past_due")
    assert_audit_clean()


# --- requests grow with due wallets, not with all wallets ---------------------------------------------

def detach(counter) -> None:
    for model in models.MODELS:
        model._get_connection().connection.client.meta.events.unregister(
            "before-parameter-build.dynamodb", counter._count)


def count_job(total: int, due: int) -> tuple[int, int]:
    if models.Wallet.exists():
        models.Wallet.delete_table()
    models.create_table()
    open_wallets(due, T0, prefix="ws_d")
    open_wallets(total - due, T0 + timedelta(days=10), prefix="ws_x")
    moment = T0 + MONTH
    counter = attach_to_models()
    try:
        report = renewal.run(moment)
    finally:
        detach(counter)
    assert (report.due, report.renewed) == (due, due)
    return counter.reads, counter.writes


def test_job_requests_grow_with_due_wallets_not_all_wallets(ddb, now):
    many = count_job(30, 3)
    few = count_job(3, 3)
    assert many == few
    reads, writes = many
    assert writes == 3
    assert reads <= wallets.RENEW_SHARDS + 3  # one query per shard, one read per due wallet
