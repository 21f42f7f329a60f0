"""The rules that decide numbers, as pure functions (chalicelib/credits/rules.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from ulid import ULID

from chalicelib.credits import rules
from chalicelib.credits.rules import Balance


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


T0 = utc(2027, 1, 31, 9, 0)


# --- split_spend: plan first, then top-up ----------------------------------------------------

@pytest.mark.parametrize(
    "plan, topup, cost, expected",
    [
        (50, 0, 10, (10, 0)),  # plan covers it
        (50, 100, 10, (10, 0)),  # plan first even when top-up is plenty
        (10, 100, 10, (10, 0)),  # plan covers it exactly
        (10, 100, 11, (10, 1)),  # one over the plan: the rest from top-up
        (5, 100, 40, (5, 35)),
        (0, 100, 40, (0, 40)),  # empty plan: all from top-up
        (0, 40, 40, (0, 40)),  # top-up covers it exactly
        (10, 5, 15, (10, 5)),  # both buckets emptied exactly
        (0, 0, 0, (0, 0)),  # a free action at balance 0
        (50, 0, 0, (0, 0)),
    ],
)
def test_split_spend_takes_plan_first(plan, topup, cost, expected):
    assert rules.split_spend(plan, topup, cost) == expected


@pytest.mark.parametrize("plan, topup, cost", [(10, 5, 16), (0, 0, 1), (49, 0, 50), (0, 39, 40), (20, 20, 41)])
def test_split_spend_none_when_short(plan, topup, cost):
    assert rules.split_spend(plan, topup, cost) is None


def test_split_spend_refuses_negative_cost():
    with pytest.raises(ValueError):
        rules.split_spend(50, 0, -1)


def test_split_spend_never_takes_more_than_a_bucket_holds():
    for plan in range(0, 12):
        for topup in range(0, 12):
            for cost in range(0, 25):
                split = rules.split_spend(plan, topup, cost)
                if plan + topup < cost:
                    assert split is None
                    continue
                p, t = split
                assert p + t == cost
                assert 0 <= p <= plan and 0 <= t <= topup
                assert t == 0 or p == plan  # top-up only once the plan bucket is empty


# --- settle_hold: capture consumes plan first, returns top-up first ---------------------------

def test_settle_partial_capture_within_plan_part():
    s = rules.settle_hold(30, 20, 10)
    assert (s.captured_plan, s.captured_topup, s.returned_plan, s.returned_topup) == (10, 0, 20, 20)
    assert (s.captured, s.returned) == (10, 40)


def test_settle_capture_past_plan_part_returns_only_topup():
    s = rules.settle_hold(30, 20, 40)
    assert (s.captured_plan, s.captured_topup, s.returned_plan, s.returned_topup) == (30, 10, 0, 10)
    assert (s.captured, s.returned) == (40, 10)


def test_settle_capture_exactly_the_plan_part():
    s = rules.settle_hold(30, 20, 30)
    assert (s.captured_plan, s.captured_topup, s.returned_plan, s.returned_topup) == (30, 0, 0, 20)


def test_settle_capture_zero_returns_everything():
    s = rules.settle_hold(30, 20, 0)
    assert (s.captured_plan, s.captured_topup, s.returned_plan, s.returned_topup) == (0, 0, 30, 20)


def test_settle_capture_all_returns_nothing():
    s = rules.settle_hold(30, 20, 50)
    assert (s.captured_plan, s.captured_topup, s.returned_plan, s.returned_topup) == (30, 20, 0, 0)
    assert s.returned == 0


def test_settle_topup_only_hold():
    s = rules.settle_hold(0, 40, 25)
    assert (s.captured_plan, s.captured_topup, s.returned_plan, s.returned_topup) == (0, 25, 0, 15)


@pytest.mark.parametrize("captured", [-1, 51, 10**30])
def test_settle_refuses_outside_zero_to_reserved(captured):
    with pytest.raises(ValueError):
        rules.settle_hold(30, 20, captured)


def test_settle_conserves_every_credit():
    for p in range(0, 8):
        for t in range(0, 8):
            for c in range(0, p + t + 1):
                s = rules.settle_hold(p, t, c)
                assert s.captured_plan + s.returned_plan == p
                assert s.captured_topup + s.returned_topup == t
                assert s.captured == c and s.returned == p + t - c
                assert min(s.captured_plan, s.captured_topup, s.returned_plan, s.returned_topup) >= 0
                # Plan is consumed first: top-up is captured only once the plan part is used up.
                assert s.captured_topup == 0 or s.captured_plan == p


# --- idempotency ------------------------------------------------------------------------------

def test_fingerprint_is_stable_and_ignores_key_order():
    a = {"op": "charge", "service": "image", "options": {"quality": "hd", "count": 2}, "user": "alice"}
    b = {"user": "alice", "options": {"count": 2, "quality": "hd"}, "service": "image", "op": "charge"}
    assert rules.fingerprint(a) == rules.fingerprint(dict(a)) == rules.fingerprint(b)


@pytest.mark.parametrize(
    "change",
    [
        {"op": "hold"},
        {"service": "video"},
        {"options": {"quality": "hd", "count": 3}},
        {"options": {"quality": "ultra", "count": 2}},
        {"user": "bob"},
        {"ttl": 900},
    ],
)
def test_fingerprint_differs_when_the_request_differs(change):
    base = {"op": "charge", "service": "image", "options": {"quality": "hd", "count": 2}, "user": "alice"}
    assert rules.fingerprint(base) != rules.fingerprint({**base, **change})


def test_fingerprint_distinguishes_int_from_string():
    a = {"op": "charge", "service": "image", "options": {"count": 2}}
    b = {"op": "charge", "service": "image", "options": {"count": "2"}}
    assert rules.fingerprint(a) != rules.fingerprint(b)


def test_replay_outcome():
    fp = rules.fingerprint({"op": "charge", "service": "image"})
    other = rules.fingerprint({"op": "charge", "service": "video"})
    assert rules.replay_outcome(fp, fp) == "replay"
    assert rules.replay_outcome(fp, other) == "conflict"
    assert rules.replay_outcome(None, fp) == "conflict"


@pytest.mark.parametrize("key", ["k", "a" * 128, "order-42:image.v1_A"])
def test_valid_idempotency_keys(key):
    assert rules.valid_idempotency_key(key)


@pytest.mark.parametrize("key", ["", "a" * 129, "has space", "slash/", "ünï", "k\n", None, 42])
def test_invalid_idempotency_keys(key):
    assert not rules.valid_idempotency_key(key)


# --- next_seq: strictly increasing, whatever the clock ---------------------------------------

def test_next_seq_is_a_ulid_at_now():
    seq = rules.next_seq(T0)
    assert str(ULID.from_str(seq)) == seq
    assert rules.seq_time(seq) == T0


def test_next_seq_strictly_increasing_at_the_same_instant():
    seqs = [rules.next_seq(T0)]
    for _ in range(500):
        seqs.append(rules.next_seq(T0, seqs[-1]))
    assert all(a < b for a, b in zip(seqs, seqs[1:]))


def test_next_seq_above_after_when_the_clock_is_behind():
    ahead = rules.next_seq(T0 + timedelta(hours=1))
    seq = rules.next_seq(T0, ahead)
    assert seq > ahead
    assert int(ULID.from_str(seq)) == int(ULID.from_str(ahead)) + 1
    chain = [seq]
    for i in range(50):
        chain.append(rules.next_seq(T0 - timedelta(days=i), chain[-1]))
    assert all(a < b for a, b in zip(chain, chain[1:]))


def test_next_seq_above_the_largest_ulid_of_a_millisecond():
    top = str(ULID.from_int((int(ULID.from_datetime(T0)) | ((1 << 80) - 1))))
    seq = rules.next_seq(T0, top)
    assert seq > top
    assert rules.seq_time(seq) == T0 + timedelta(milliseconds=1)


def test_next_seq_follows_the_clock_when_it_is_ahead():
    earlier = rules.next_seq(T0)
    later = rules.next_seq(T0 + timedelta(seconds=5), earlier)
    assert later > earlier
    assert rules.seq_time(later) == T0 + timedelta(seconds=5)


# --- hold ids ---------------------------------------------------------------------------------

@pytest.mark.parametrize("p, t", [(0, 0), (40, 0), (0, 40), (10, 30), (999_999_999_999, 1)])
def test_hold_id_round_trip(p, t):
    seq = rules.next_seq(T0)
    hid = rules.hold_id(seq, p, t, "auth0|user-1")
    assert hid.startswith("hold_")
    assert rules.parse_hold_id(hid) == (seq, p, t, "auth0|user-1")


def _seq() -> str:
    return rules.next_seq(T0)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "hold_",
        "hold_abc_1_2",
        "chg_{seq}",
        "hold_{seq}",
        "hold_{seq}_1",
        "hold_{seq}_1_2_3",
        "hold_{seq}_-1_2_mfwgsy3f",
        "hold_{seq}_1_-2_mfwgsy3f",
        "hold_{seq}_1.5_2_mfwgsy3f",
        "hold_{seq}_x_2_mfwgsy3f",
        "hold_{seq}_1234567890123_0_mfwgsy3f",  # more digits than any balance
        "HOLD_{seq}_1_2_mfwgsy3f",
        " hold_{seq}_1_2_mfwgsy3f",
        "hold_{seq}_1_2_mfwgsy3f ",
        "hold_{seq}_1_2_mfwgsy3f\n",
        "hold_{lower}_1_2_mfwgsy3f",
        "hold_{short}_1_2_mfwgsy3f",
        "hold_{seq}U_1_2_mfwgsy3f",
        "hold_{bad_letter}_1_2_mfwgsy3f",  # I, L, O, U are not Crockford base32
        "../hold_{seq}_1_2_mfwgsy3f",
        "hold_{seq}_1_2_MFWGSY3F",  # the creator is lower-case base32
        "hold_{seq}_1_2_mfwgsy3f_x",
        "hold_{seq}_1_2_1",  # not base32 of anything
    ],
)
def test_parse_hold_id_rejects_malformed(value):
    seq = _seq()
    if isinstance(value, str):
        value = value.format(seq=seq, lower=seq.lower(), short=seq[:-1], bad_letter=seq[:-1] + "U")
    assert rules.parse_hold_id(value) is None


# --- cycles -----------------------------------------------------------------------------------

def test_cycle_at_clamps_to_month_end_and_returns_to_the_31st():
    anchor = utc(2027, 1, 31, 9, 0)
    assert rules.cycle_at(anchor, anchor) == (anchor, utc(2027, 2, 28, 9, 0))
    assert rules.cycle_at(anchor, utc(2027, 2, 28, 8, 59, 59)) == (anchor, utc(2027, 2, 28, 9, 0))
    assert rules.cycle_at(anchor, utc(2027, 2, 28, 9, 0)) == (utc(2027, 2, 28, 9, 0), utc(2027, 3, 31, 9, 0))
    assert rules.cycle_at(anchor, utc(2027, 3, 31, 9, 0)) == (utc(2027, 3, 31, 9, 0), utc(2027, 4, 30, 9, 0))
    assert rules.cycle_at(anchor, utc(2027, 5, 1)) == (utc(2027, 4, 30, 9, 0), utc(2027, 5, 31, 9, 0))


def test_cycle_at_leap_year_february_29():
    anchor = utc(2028, 1, 31, 0, 0)
    assert rules.cycle_at(anchor, utc(2028, 2, 10)) == (anchor, utc(2028, 2, 29))
    assert rules.cycle_at(anchor, utc(2028, 2, 29)) == (utc(2028, 2, 29), utc(2028, 3, 31))
    leap_day = utc(2028, 2, 29, 12, 0)
    assert rules.cycle_at(leap_day, utc(2029, 2, 28, 12, 0)) == (utc(2029, 2, 28, 12, 0), utc(2029, 3, 29, 12, 0))


def test_cycle_at_a_year_of_cycles_is_twelve_contiguous_months():
    anchor = utc(2027, 1, 31, 9, 0)
    at, seen = anchor, []
    while at < utc(2028, 1, 31, 9, 0):
        start, end = rules.cycle_at(anchor, at)
        assert start <= at < end
        if seen:
            assert start == seen[-1][1]  # no gap, no overlap
        seen.append((start, end))
        at = end
    assert len(seen) == 12
    assert [e.day for _, e in seen] == [28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31]
    assert seen[-1][1] == utc(2028, 1, 31, 9, 0)


def test_cycle_at_far_from_the_anchor():
    anchor = utc(2027, 1, 31, 9, 0)
    assert rules.cycle_at(anchor, utc(2030, 2, 15)) == (utc(2030, 1, 31, 9, 0), utc(2030, 2, 28, 9, 0))


def test_cycle_at_refuses_a_moment_before_the_anchor():
    with pytest.raises(ValueError):
        rules.cycle_at(T0, T0 - timedelta(seconds=1))


def test_cycles_between_lists_ended_cycles_in_order():
    anchor = utc(2027, 1, 31, 9, 0)
    got = list(rules.cycles_between(anchor, anchor, utc(2027, 4, 30, 9, 0)))
    assert got == [
        (utc(2027, 1, 31, 9, 0), utc(2027, 2, 28, 9, 0)),
        (utc(2027, 2, 28, 9, 0), utc(2027, 3, 31, 9, 0)),
        (utc(2027, 3, 31, 9, 0), utc(2027, 4, 30, 9, 0)),
    ]


def test_iso_is_utc_with_z():
    from datetime import timedelta as td

    cet = timezone(td(hours=1))
    assert rules.iso(datetime(2027, 1, 31, 10, 0, tzinfo=cet)) == "2027-01-31T09:00:00Z"


# --- balances after each entry ----------------------------------------------------------------

def test_balances_newest_first():
    current = Balance(plan=20, topup=70, held=0)
    entries = [  # newest first
        {"plan_delta": 10, "topup_delta": 30, "held_delta": -40},  # release of a 10+30 hold
        {"plan_delta": -10, "topup_delta": -30, "held_delta": 40},  # that hold
        {"plan_delta": -30, "topup_delta": 0, "held_delta": 0},  # a charge
        {"plan_delta": 0, "topup_delta": 70, "held_delta": 0},  # a top-up
        {"plan_delta": 50, "topup_delta": 0, "held_delta": 0},  # the first grant
    ]
    got = rules.balances_newest_first(current, entries)
    assert got == [
        Balance(20, 70, 0),
        Balance(10, 40, 40),
        Balance(20, 70, 0),
        Balance(50, 70, 0),
        Balance(50, 0, 0),
    ]
    # Before the first grant the wallet was empty.
    oldest = got[-1].minus(entries[-1]["plan_delta"], entries[-1]["topup_delta"], entries[-1]["held_delta"])
    assert oldest == Balance(0, 0, 0)


def test_balances_newest_first_empty():
    assert rules.balances_newest_first(Balance(5, 5, 0), []) == []


def test_balance_as_dict():
    assert Balance(20, 70, 40).as_dict() == {"available": 90, "plan": 20, "topup": 70, "held": 40}


# --- scheduled_change: a subscription schedule's next phase ------------------------------------

JAN, FEB, MAR = 1_800_000_000, 1_802_419_200, 1_804_838_400  # three phase boundaries


def test_the_next_phase_with_another_price_is_the_change():
    phases = [(JAN, FEB, "price_pro_month"), (FEB, None, "price_creator_month")]
    assert rules.scheduled_change(phases, JAN, JAN + 5) == ("price_creator_month", FEB)
    # Without the schedule's current_phase, the phase running now is the current one.
    assert rules.scheduled_change(list(reversed(phases)), None, JAN + 5) == ("price_creator_month", FEB)


def test_no_change_when_the_next_phase_keeps_the_price_or_there_is_none():
    assert rules.scheduled_change([(JAN, FEB, "p"), (FEB, MAR, "p")], JAN, JAN) is None
    assert rules.scheduled_change([(JAN, FEB, "p")], JAN, JAN) is None
    assert rules.scheduled_change([(JAN, None, "p")], JAN, JAN) is None  # an open last phase
    assert rules.scheduled_change([(FEB, MAR, "p"), (MAR, None, "q")], None, JAN) is None  # not started


def test_the_phase_after_the_current_one_counts_not_the_last():
    phases = [(JAN, FEB, "a"), (FEB, MAR, "b"), (MAR, None, "c")]
    assert rules.scheduled_change(phases, FEB, FEB + 1) == ("c", MAR)
    assert rules.scheduled_change(phases, JAN, FEB - 1) == ("b", FEB)
