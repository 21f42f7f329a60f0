"""Cycle dates (PRODUCT.md, "Cycles and renewal"): monthly anniversaries of the anchor in UTC,
clamped to the month's end (Jan 31 -> Feb 28/29 -> Mar 31), times of day kept, exactly 12 cycles
in a year. Property tests over anchors anywhere in 2000-2100, plus the worked examples."""
from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.credits import rules

UTC = timezone.utc
FAST = settings(max_examples=200, deadline=None)

anchors = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31, 23, 59, 59), timezones=st.just(UTC)
)
# Anchors on the days that clamp: the 28th to the 31st of any month.
late_anchors = st.builds(
    lambda y, m, d, h, mi, s: datetime(y, m, min(d, calendar.monthrange(y, m)[1]), h, mi, s, tzinfo=UTC),
    st.integers(2000, 2099), st.integers(1, 12), st.integers(28, 31),
    st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
)
any_anchor = st.one_of(anchors, late_anchors)
offsets = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=366 * 3))


def month_days(moment: datetime) -> int:
    return calendar.monthrange(moment.year, moment.month)[1]


def cycles(anchor: datetime, years: int = 2) -> list[tuple[datetime, datetime]]:
    return list(rules.cycles_between(anchor, anchor, anchor + relativedelta(years=years)))


# --- properties -------------------------------------------------------------------------------

@FAST
@given(any_anchor)
def test_consecutive_cycles_have_no_gaps_or_overlaps(anchor):
    cs = cycles(anchor)
    assert len(cs) == 24
    assert cs[0][0] == anchor
    for (lo, hi), (next_lo, _) in zip(cs, cs[1:]):
        assert lo < hi
        assert hi == next_lo
    for lo, hi in cs:
        # The cycle that contains a cycle's end is the next cycle, starting exactly there.
        assert rules.cycle_at(anchor, hi)[0] == hi
        assert rules.cycle_at(anchor, lo) == (lo, hi)
        assert rules.cycle_at(anchor, hi - timedelta(microseconds=1)) == (lo, hi)


@FAST
@given(any_anchor)
def test_every_cycle_starts_on_the_anchor_day_clamped_to_the_month(anchor):
    cs = cycles(anchor, years=3)
    for lo, hi in cs:
        assert lo.day == min(anchor.day, month_days(lo)), (anchor, lo)
        assert hi.day == min(anchor.day, month_days(hi)), (anchor, hi)
    # The anchor's day comes back after every short month.
    starts = [lo for lo, _ in cs]
    for lo in starts:
        if month_days(lo) >= anchor.day:
            assert lo.day == anchor.day
    # Months follow one another: one cycle start per calendar month.
    months = [(lo.year, lo.month) for lo in starts]
    assert len(set(months)) == len(months)
    for (y1, m1), (y2, m2) in zip(months, months[1:]):
        assert (y2 * 12 + m2) - (y1 * 12 + m1) == 1


@FAST
@given(any_anchor)
def test_exactly_twelve_cycles_in_a_year(anchor):
    year_end = anchor + relativedelta(years=1)
    cs = list(rules.cycles_between(anchor, anchor, year_end))
    assert len(cs) == 12
    assert cs[0][0] == anchor
    assert cs[-1][1] == year_end
    # The 13th cycle starts where the year ends.
    assert rules.cycle_at(anchor, year_end)[0] == year_end


@FAST
@given(any_anchor, offsets)
def test_cycle_at_contains_the_moment(anchor, offset):
    at = anchor + offset
    lo, hi = rules.cycle_at(anchor, at)
    assert lo <= at < hi
    # It is one of the anchor's cycles.
    n = (lo.year - anchor.year) * 12 + (lo.month - anchor.month)
    assert lo == anchor + relativedelta(months=n)
    assert hi == anchor + relativedelta(months=n + 1)


@FAST
@given(any_anchor)
def test_times_of_day_are_kept(anchor):
    for lo, hi in cycles(anchor):
        assert lo.timetz() == anchor.timetz()
        assert hi.timetz() == anchor.timetz()
        assert lo.tzinfo is not None and lo.utcoffset() == timedelta(0)


@FAST
@given(any_anchor, offsets, offsets)
def test_cycles_between_is_every_whole_cycle_in_the_window(anchor, a, b):
    start, until = anchor + min(a, b), anchor + max(a, b)
    got = list(rules.cycles_between(anchor, start, until))
    whole = [c for c in cycles(anchor, years=4) if c[0] >= start and c[1] <= until]
    assert got == whole


def test_cycle_at_refuses_a_moment_before_the_anchor():
    anchor = datetime(2027, 1, 31, 9, tzinfo=UTC)
    with pytest.raises(ValueError):
        rules.cycle_at(anchor, anchor - timedelta(seconds=1))


# --- worked examples ----------------------------------------------------------------------------

def test_jan_31_goes_to_feb_28_then_back_to_mar_31():
    anchor = datetime(2027, 1, 31, 9, 0, tzinfo=UTC)
    starts = [lo for lo, _ in cycles(anchor, years=1)]
    assert [s.date().isoformat() for s in starts[:4]] == ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]
    assert all(s.hour == 9 and s.minute == 0 for s in starts)


def test_leap_year_feb_29():
    anchor = datetime(2028, 1, 31, 23, 59, 59, tzinfo=UTC)
    starts = [lo.date().isoformat() for lo, _ in cycles(anchor, years=1)][:3]
    assert starts == ["2028-01-31", "2028-02-29", "2028-03-31"]
    # An anchor on Feb 29: the 29th every month, Feb 28 in common years.
    leap = datetime(2024, 2, 29, 12, tzinfo=UTC)
    cs = cycles(leap, years=1)
    assert [lo.day for lo, _ in cs] == [29] * 12
    assert cs[-1][1] == datetime(2025, 2, 28, 12, tzinfo=UTC)
    assert rules.cycle_at(leap, datetime(2025, 3, 1, tzinfo=UTC)) == (
        datetime(2025, 2, 28, 12, tzinfo=UTC), datetime(2025, 3, 29, 12, tzinfo=UTC))
