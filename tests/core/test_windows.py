"""Window math: parsing, open/closed, merging, week wrap, DST, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.errors import ConfigError
from core.schedule.windows import Schedule, Window, parse_windows

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# 2025-06-02 is a Monday; 2025-06-01 a Sunday.
WEEKNIGHTS = parse_windows("mon-fri 22:00-06:00; sat,sun 00:00-24:00")


# --------------------------------------------------------------------------- parsing


def test_parse_canonical_form_and_fields() -> None:
    sched = parse_windows("Mon-Fri 22:00-06:00;\n SATURDAY , sun 0:00-24:00", "Europe/Berlin")
    assert sched.tz == BERLIN
    assert sched.windows == (
        Window(frozenset(range(5)), 22 * 60, 6 * 60),
        Window(frozenset({5, 6}), 0, 1440),
    )
    assert sched.windows[0].crosses_midnight
    assert not sched.windows[1].crosses_midnight
    assert str(sched) == "mon-fri 22:00-06:00; sat,sun 00:00-24:00"
    assert parse_windows(str(sched), BERLIN).windows == sched.windows


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("fri-mon 01:00-02:00", "fri-mon 01:00-02:00"),
        ("daily 22:00-00:00", "daily 22:00-24:00"),
        ("* 22:00-06:00", "daily 22:00-06:00"),
        ("sun,wed,sat 09:30 - 10:00", "wed,sat,sun 09:30-10:00"),
        # the design page's form: ',' after a time range ends the entry
        ("mon-fri 22:00-06:00, sat-sun 00:00-24:00", "mon-fri 22:00-06:00; sat,sun 00:00-24:00"),
        ("mon 1:00-2:00;;\n\n tue 3:00-4:00;", "mon 01:00-02:00; tue 03:00-04:00"),
    ],
)
def test_parse_accepted_forms(spec: str, canonical: str) -> None:
    assert str(parse_windows(spec)) == canonical


@pytest.mark.parametrize("spec", ["", "   ", " ;\n ; "])
def test_empty_spec_is_never_open(spec: str) -> None:
    sched = parse_windows(spec)
    now = utc(2025, 6, 2, 12)
    assert sched.windows == ()
    assert not sched.is_open(now)
    assert sched.current_interval(now) is None
    assert sched.closes_at(now) is None
    assert sched.next_open(now) is None
    assert sched.intervals(now, now + timedelta(days=30)) == []


@pytest.mark.parametrize(
    ("spec", "where", "expected", "got"),
    [
        ("mon-fro 22:00-06:00", "column 5", "a day name like 'mon'", "'fro'"),
        ("fro 22:00-06:00", "column 1", "a day name like 'mon'", "'fro'"),
        ("mon,,tue 01:00-02:00", "column 5", "a day name", "','"),
        ("mon22:00-06:00", "column 4", "a space and then a time range", "'22:00'"),
        ("mon", "column 4", "a space and then a time range", "the end of the spec"),
        ("mon 25:00-06:00", "column 5", "a start time HH:MM", "'25:00'"),
        ("mon 24:00-06:00", "column 5", "a start time HH:MM", "'24:00'"),
        ("mon 22:60-06:00", "column 5", "a start time HH:MM", "'22:60'"),
        ("mon 22:00-24:01", "column 11", "an end time HH:MM", "'24:01'"),
        ("mon 22:00-6", "column 11", "an end time HH:MM", "'6'"),
        ("mon 22:00", "column 10", "'-' between the start and end times", "the end of the spec"),
        ("mon 06:00-06:00", "column 11", "an end time other than the start", "'06:00'"),
        ("mon 00:00-00:00", "column 11", "an end time other than the start", "'00:00'"),
        ("mon 01:00-02:00 tue 03:00-04:00", "column 17", "';', ',' or a new line", "'tue'"),
        ("mon 01:00-02:00\ntue 03:00-4", "line 2, column 11", "an end time", "'4'"),
    ],
)
def test_malformed_spec_names_column(spec: str, where: str, expected: str, got: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_windows(spec)
    message = str(info.value)
    assert message.startswith(f"offpeak_windows: at {where}: expected ")
    assert expected in message
    assert message.endswith(f"got {got}")


def test_bad_timezone_names_the_key() -> None:
    for name in ("Mars/Olympus_Mons", "", "../etc/passwd"):
        with pytest.raises(ConfigError, match=r"^timezone: unknown time zone"):
            parse_windows("daily 22:00-06:00", name)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        WEEKNIGHTS.is_open(datetime(2025, 6, 2, 23))


# --------------------------------------------------------------------------- open / closed


def test_crossing_midnight() -> None:
    sched = parse_windows("mon-fri 22:00-06:00")
    assert sched.is_open(utc(2025, 6, 2, 23))  # mon 23:00
    assert sched.is_open(utc(2025, 6, 3, 5, 59, 59))  # tue 05:59:59
    assert not sched.is_open(utc(2025, 6, 3, 6))  # tue 06:00
    assert not sched.is_open(utc(2025, 6, 2, 21, 59, 59))  # mon 21:59:59
    assert sched.is_open(utc(2025, 6, 2, 22))  # start is inclusive
    assert sched.closes_at(utc(2025, 6, 2, 23)) == utc(2025, 6, 3, 6)
    # the day names the start: fri night runs into sat, mon morning is closed
    assert sched.is_open(utc(2025, 6, 7, 3))
    assert not sched.is_open(utc(2025, 6, 2, 3))


def test_week_wrap() -> None:
    sched = parse_windows("sun 22:00-06:00")
    assert sched.is_open(utc(2025, 6, 2, 3))  # mon 03:00
    assert sched.current_interval(utc(2025, 6, 2, 3)) == (utc(2025, 6, 1, 22), utc(2025, 6, 2, 6))
    assert sched.next_open(utc(2025, 6, 2, 3)) == utc(2025, 6, 8, 22)
    wrapped = parse_windows("fri-mon 12:00-13:00")
    assert [wrapped.is_open(utc(2025, 6, d, 12, 30)) for d in range(2, 9)] == [
        True, False, False, False, True, True, True,
    ]


def test_full_days_and_adjacent_windows_merge() -> None:
    sat_noon = utc(2025, 6, 7, 12)
    assert WEEKNIGHTS.current_interval(sat_noon) == (utc(2025, 6, 6, 22), utc(2025, 6, 9, 0))
    assert WEEKNIGHTS.closes_at(sat_noon) == utc(2025, 6, 9, 0)
    assert not WEEKNIGHTS.is_open(utc(2025, 6, 9, 0))  # mon 00:00, until mon 22:00
    assert WEEKNIGHTS.next_open(sat_noon) == utc(2025, 6, 9, 22)
    # overlapping windows merge too
    overlap = parse_windows("mon 08:00-12:00; mon 11:00-14:00; mon 14:00-15:00")
    assert overlap.closes_at(utc(2025, 6, 2, 9)) == utc(2025, 6, 2, 15)


def test_next_open_across_the_week() -> None:
    sched = parse_windows("wed 10:00-11:00")
    assert sched.next_open(utc(2025, 6, 4, 9)) == utc(2025, 6, 4, 10)  # closed, same day
    assert sched.next_open(utc(2025, 6, 4, 10, 30)) == utc(2025, 6, 11, 10)  # open: next one
    assert sched.next_open(utc(2025, 6, 4, 11)) == utc(2025, 6, 11, 10)  # end is exclusive
    assert sched.next_open(utc(2025, 6, 8, 23)) == utc(2025, 6, 11, 10)  # over the weekend


def test_intervals_in_range() -> None:
    got = WEEKNIGHTS.intervals(utc(2025, 6, 5, 12), utc(2025, 6, 10, 0))
    assert got == [
        (utc(2025, 6, 5, 22), utc(2025, 6, 6, 6)),
        (utc(2025, 6, 6, 22), utc(2025, 6, 9, 0)),
        (utc(2025, 6, 9, 22), utc(2025, 6, 10, 6)),  # overlaps, not clipped
    ]
    assert WEEKNIGHTS.intervals(utc(2025, 6, 10, 0), utc(2025, 6, 10, 0)) == []


def test_results_are_in_schedule_timezone() -> None:
    sched = parse_windows("daily 22:00-06:00", "Europe/Berlin")
    now = datetime(2025, 6, 2, 21, 30, tzinfo=UTC)  # 23:30 in Berlin
    start, end = sched.current_interval(now)
    assert start.tzinfo == BERLIN and end.tzinfo == BERLIN
    assert (start.hour, end.hour) == (22, 6)


def test_always_open() -> None:
    sched = parse_windows("mon-fri 00:00-24:00; sat 00:00-12:00; sat 12:00-06:00; sun 06:00-00:00")
    now = utc(2025, 6, 2, 12)
    assert sched.always_open and sched.is_open(now)
    assert sched.closes_at(now) == now + timedelta(days=7)
    assert sched.next_open(now) is None
    assert sched.intervals(now, now + timedelta(hours=1)) == [(now, now + timedelta(hours=1))]
    assert not WEEKNIGHTS.always_open


# --------------------------------------------------------------------------- DST


def real(interval: tuple[datetime, datetime] | None) -> tuple[datetime, datetime]:
    """The interval in UTC: Python subtracts and compares same-zone datetimes by wall
    time (and ambiguous times never equal another zone's), so real durations need UTC."""
    assert interval is not None
    return interval[0].astimezone(UTC), interval[1].astimezone(UTC)


def duration(sched: Schedule, now: datetime) -> timedelta:
    start, end = real(sched.current_interval(now))
    return end - start


@pytest.mark.parametrize(
    ("tz", "spring_sat", "fall_sat"),
    [(BERLIN, (2025, 3, 29), (2025, 10, 25)), (NEW_YORK, (2025, 3, 8), (2025, 11, 1))],
)
def test_night_window_across_dst(tz: ZoneInfo, spring_sat: tuple, fall_sat: tuple) -> None:
    sched = parse_windows("sat 22:00-06:00", tz)
    spring = at(tz, *spring_sat, 23)
    fall = at(tz, *fall_sat, 23)
    assert duration(sched, spring) == timedelta(hours=7)
    assert duration(sched, fall) == timedelta(hours=9)
    # wall-clock bounds are kept
    for now in (spring, fall):
        start, end = sched.current_interval(now)
        assert (start.hour, start.minute, end.hour, end.minute) == (22, 0, 6, 0)
        assert end.date() - start.date() == timedelta(days=1)


def test_start_in_spring_gap_opens_after_the_gap() -> None:
    sched = parse_windows("sun 02:30-04:00", BERLIN)  # 2025-03-30 02:00 -> 03:00
    start, end = real(sched.current_interval(at(BERLIN, 2025, 3, 30, 3, 30)))
    assert start == at(BERLIN, 2025, 3, 30, 3, 0) == utc(2025, 3, 30, 1, 0)
    assert end - start == timedelta(hours=1)
    assert sched.next_open(at(BERLIN, 2025, 3, 30, 1)) == start


def test_window_inside_spring_gap_skips_that_day() -> None:
    sched = parse_windows("sun 02:10-02:50", BERLIN)
    assert sched.intervals(at(BERLIN, 2025, 3, 30), at(BERLIN, 2025, 3, 31)) == []
    assert sched.next_open(at(BERLIN, 2025, 3, 29, 12)) == at(BERLIN, 2025, 4, 6, 2, 10)


def test_ambiguous_bounds_never_shorten_the_window() -> None:
    # 2025-10-26 in Berlin: 03:00 CEST -> 02:00 CET, so 02:00-02:59 happens twice
    starts = parse_windows("sun 02:30-04:00", BERLIN)
    start, end = real(starts.current_interval(utc(2025, 10, 26, 1)))
    assert start == utc(2025, 10, 26, 0, 30)  # first 02:30 (CEST)
    assert end - start == timedelta(hours=2, minutes=30)
    ends = parse_windows("sun 00:00-02:30", BERLIN)
    start, end = real(ends.current_interval(utc(2025, 10, 26, 0)))
    assert end == utc(2025, 10, 26, 1, 30)  # second 02:30 (CET)
    assert end - start == timedelta(hours=3, minutes=30)
    assert ends.is_open(at(BERLIN, 2025, 10, 26, 2, 45, fold=0))
    assert not ends.is_open(at(BERLIN, 2025, 10, 26, 2, 45, fold=1))


# --------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
@example("mon-fri 22:00-06:00")
@example("mon 1:00-2:00\n,")
def test_parser_returns_or_raises_config_error(spec: str) -> None:
    try:
        sched = parse_windows(spec)
    except ConfigError as exc:
        assert "column" in str(exc)
    else:
        assert parse_windows(str(sched)).windows == sched.windows


def _window_specs() -> st.SearchStrategy[str]:
    window = st.builds(
        lambda days, bounds: str(Window(frozenset(days), *bounds)),
        st.sets(st.integers(0, 6), min_size=1),
        st.tuples(st.integers(0, 1439), st.integers(1, 1440)).filter(lambda b: b[0] != b[1]),
    )
    return st.lists(window, max_size=4).map("; ".join)


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
# 15-minute steps hit window bounds and DST transitions often
NOWS = st.integers(0, 40 * 365 * 96).map(
    lambda q: datetime(2000, 1, 1, tzinfo=UTC) + timedelta(minutes=15 * q)
)


@settings(max_examples=400, deadline=None, database=None)
@given(_window_specs(), st.sampled_from(ZONES), NOWS | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)))
def test_open_close_properties(spec: str, zone: str, now: datetime) -> None:
    sched = parse_windows(spec, zone)
    if sched.is_open(now):
        closes = sched.closes_at(now).astimezone(UTC)
        start, end = real(sched.current_interval(now))
        assert start <= now < end == closes
        if not sched.always_open:
            assert not sched.is_open(closes)
            assert sched.is_open(end - timedelta(microseconds=1))
            assert not sched.is_open(start - timedelta(microseconds=1))
    else:
        assert sched.closes_at(now) is None
        opens = sched.next_open(now)
        if sched.windows:
            opens = opens.astimezone(UTC)
            assert opens > now
            assert sched.is_open(opens)
            assert sched.intervals(now, opens) == []
        else:
            assert opens is None
