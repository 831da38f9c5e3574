"""Weekly off-peak windows: parse the ``offpeak_windows`` spec and answer "open now?".

Spec: entries separated by ``;`` or new lines (a ``,`` right after a time range also
ends an entry), each ``DAYS START-END``, e.g. ``mon-fri 22:00-06:00; sat,sun 00:00-24:00``.
DAYS is a comma list of day names (``mon`` or ``monday``), ranges (``mon-fri``, wrapping
``fri-mon``), ``daily`` or ``*``; the days name the day a window *starts* on. Times are
``HH:MM``; ``24:00`` only as an end. END <= START means the window ends the next day.
An empty spec means never open.

Every function takes ``now`` (timezone-aware) and returns aware datetimes in the
schedule's time zone. Windows that touch or overlap merge into one open interval.
Python subtracts and compares two datetimes of the *same* zone by wall time, so take
durations across a DST change in UTC: ``end.astimezone(UTC) - start.astimezone(UTC)``.

DST rule: a window keeps the wall-clock bounds the operator wrote. A bound that does
not exist (spring-forward gap) becomes the first instant after the gap (02:30 -> 03:00
in Europe/Berlin). An ambiguous start (fall-back, the time happens twice) is its
*first* occurrence and an ambiguous end its *last*, so a window is never shortened.
Hence ``22:00-06:00`` lasts 7 real hours on the spring-forward night and 9 on the
fall-back night. A window that falls entirely inside a gap does not open that day.

A schedule open around the clock (``always_open``) has no closing time: its
``current_interval`` is clipped to ``HORIZON`` either side of ``now``, ``closes_at``
is ``now + HORIZON`` (ask again then) and ``next_open`` is None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ConfigError

KEY = "offpeak_windows"
HORIZON = timedelta(days=7)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_INDEX = {name: i for names in (DAYS, FULL_DAYS) for i, name in enumerate(names)}
_ALL_DAYS = frozenset(range(7))
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(?![0-9])")
_SPACE = " \t\r"
_TOKEN_END = _SPACE + "\n;,-"
# A merged interval of a schedule that is not always open spans under 8 days, and the
# next window starts within 7 days, so this many days of padding see all of it.
_PAD = 9

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Window:
    """One weekly window: starts on each of ``days`` (0=Mon) at ``start`` minutes."""

    days: frozenset[int]
    start: int  # minutes after local midnight, 0..1439
    end: int  # minutes, 1..1440; <= start means the next day

    def __post_init__(self) -> None:
        if not self.days or not self.days <= _ALL_DAYS:
            raise ValueError(f"days must be a non-empty subset of 0..6, got {set(self.days)}")
        if not (0 <= self.start < 1440 and 0 < self.end <= 1440) or self.start == self.end:
            raise ValueError(f"bad window bounds {self.start}-{self.end}")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def __str__(self) -> str:
        return f"{_format_days(self.days)} {_format_time(self.start)}-{_format_time(self.end)}"


@dataclass(frozen=True)
class Schedule:
    """The parsed windows in a time zone; ``spec`` is the text they came from."""

    windows: tuple[Window, ...]
    tz: ZoneInfo
    spec: str

    def __str__(self) -> str:
        return "; ".join(str(w) for w in self.windows)

    @cached_property
    def always_open(self) -> bool:
        """True when the windows cover every minute of the week's wall clock."""
        week = bytearray(7 * 1440)
        for w in self.windows:
            length = (w.end - w.start) % 1440 or 1440
            for day in w.days:
                first = day * 1440 + w.start
                for minute in range(first, first + length):
                    week[minute % len(week)] = 1
        return all(week)

    def is_open(self, now: datetime) -> bool:
        return self.current_interval(now) is not None

    def current_interval(self, now: datetime) -> Interval | None:
        """The merged open interval ``[start, end)`` containing ``now``, or None if closed."""
        instant = _utc(now)
        if self.always_open:
            return self._local((instant - HORIZON, instant + HORIZON))
        for start, end in self._merged(instant, instant, after=_PAD):
            if start <= instant < end:
                return self._local((start, end))
        return None

    def closes_at(self, now: datetime) -> datetime | None:
        """End of the open interval containing ``now``; None if closed."""
        interval = self.current_interval(now)
        return None if interval is None else interval[1]

    def next_open(self, now: datetime) -> datetime | None:
        """Start of the first interval beginning after ``now`` (after the current one if
        open); None if there are no windows or the schedule never closes."""
        instant = _utc(now)
        if not self.windows or self.always_open:
            return None
        for start, _end in self._merged(instant, instant, after=2 * _PAD):
            if start > instant:
                return start.astimezone(self.tz)
        raise AssertionError(f"no window opens within {2 * _PAD} days of {now}")

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """Merged open intervals overlapping ``[start, end)``, unclipped (clipped to
        ``[start, end)`` for an always-open schedule), in order."""
        lo, hi = _utc(start), _utc(end)
        if hi <= lo or not self.windows:
            return []
        if self.always_open:
            return [self._local((lo, hi))]
        return [self._local((s, e)) for s, e in self._merged(lo, hi, after=_PAD)
                if e > lo and s < hi]

    def _local(self, interval: Interval) -> Interval:
        return interval[0].astimezone(self.tz), interval[1].astimezone(self.tz)

    def _merged(self, lo: datetime, hi: datetime, *, after: int) -> list[Interval]:
        """Merged UTC intervals of windows starting from ``_PAD`` days before ``lo`` to
        ``after`` days after ``hi`` (local dates)."""
        first = lo.astimezone(self.tz).date() - timedelta(days=_PAD)
        last = hi.astimezone(self.tz).date() + timedelta(days=after)
        merged: list[list[datetime]] = []
        for start, end in sorted(self._occurrences(first, last)):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return [(s, e) for s, e in merged]

    def _occurrences(self, first: date, last: date) -> list[Interval]:
        found = []
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            midnight = datetime(day.year, day.month, day.day)
            for w in self.windows:
                if day.weekday() not in w.days:
                    continue
                end_minutes = w.end + (1440 if w.crosses_midnight else 0)
                start = _instant(midnight + timedelta(minutes=w.start), self.tz, last=False)
                end = _instant(midnight + timedelta(minutes=end_minutes), self.tz, last=True)
                if start < end:  # empty when the whole window sits in a DST gap
                    found.append((start, end))
        return found


def parse_windows(spec: str, tz: str | ZoneInfo = "UTC") -> Schedule:
    """Parse an ``offpeak_windows`` spec; raise ConfigError naming the column if malformed."""
    if not isinstance(tz, ZoneInfo):
        try:
            tz = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ConfigError(f"timezone: unknown time zone {tz!r}; expected an IANA name "
                              "like 'Europe/Berlin' or 'UTC'", key="timezone") from exc
    return Schedule(windows=_Parser(spec).parse(), tz=tz, spec=spec)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment!r}")
    return moment.astimezone(UTC)


def _wall(moment_utc: datetime, tz: ZoneInfo) -> datetime:
    return moment_utc.astimezone(tz).replace(tzinfo=None)


def _instant(wall: datetime, tz: ZoneInfo, *, last: bool) -> datetime:
    """The UTC instant of a local wall time under the module's DST rule."""
    early = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if early == late:
        return early
    lo, hi = sorted((early, late))
    if _wall(early, tz) == wall:  # happens twice (fall-back)
        return hi if last else lo
    # Does not exist: find the transition, the first whole second whose wall time is
    # past ``wall``. zoneinfo alone gives a time one gap-length off either way.
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _wall(datetime.fromtimestamp(mid, UTC), tz) > wall:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _format_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _format_days(days: frozenset[int]) -> str:
    if days == _ALL_DAYS:
        return "daily"
    # Walk the week from a day that is off, so a run like fri-mon stays one run.
    pivot = next(d for d in range(7) if d not in days)
    runs: list[list[int]] = []
    for d in ((pivot + i) % 7 for i in range(1, 7)):
        if d in days and runs and runs[-1][-1] == (d - 1) % 7:
            runs[-1].append(d)
        elif d in days:
            runs.append([d])
    parts = []
    for run in sorted(runs):
        if len(run) >= 3:
            parts.append(f"{DAYS[run[0]]}-{DAYS[run[-1]]}")
        else:
            parts.extend(DAYS[d] for d in run)
    return ",".join(parts)


class _Parser:
    """Recursive descent over the spec; every error names the column and what was expected."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> tuple[Window, ...]:
        windows = []
        self._skip(_SPACE + "\n;")
        while self.pos < len(self.text):
            windows.append(self._entry())
            self._skip(_SPACE)
            if self.pos < len(self.text):
                if self._peek() not in "\n;,":
                    self._fail("';', ',' or a new line before the next entry")
                self.pos += 1
                self._skip(_SPACE + "\n;")
        return tuple(windows)

    def _entry(self) -> Window:
        days = self._days()
        if self._peek() not in _SPACE or self._peek() == "":
            self._fail("a space and then a time range like '22:00-06:00'")
        self._skip(_SPACE)
        start = self._time(is_end=False)
        self._skip(_SPACE)
        if self._peek() != "-":
            self._fail("'-' between the start and end times")
        self.pos += 1
        self._skip(_SPACE)
        end_pos = self.pos
        end = self._time(is_end=True)
        if end == start:
            self.pos = end_pos
            self._fail("an end time other than the start time (00:00-24:00 is a whole day)")
        return Window(days=days, start=start, end=end or 1440)

    def _days(self) -> frozenset[int]:
        days: set[int] = set()
        while True:
            days |= self._day_item()
            mark = self.pos
            self._skip(_SPACE)
            if self._peek() != ",":
                self.pos = mark
                return frozenset(days)
            self.pos += 1
            self._skip(_SPACE)

    def _day_item(self) -> frozenset[int]:
        if self._peek() == "*":
            self.pos += 1
            return _ALL_DAYS
        if self._word().lower() == "daily":
            self.pos += len("daily")
            return _ALL_DAYS
        first = self._day_name()
        if self._peek() != "-":
            return frozenset({first})
        self.pos += 1
        last = self._day_name()
        return frozenset((first + i) % 7 for i in range((last - first) % 7 + 1))

    def _day_name(self) -> int:
        word = self._word()
        if word.lower() not in _DAY_INDEX:
            self._fail("a day name like 'mon' or a range 'mon-fri'")
        self.pos += len(word)
        return _DAY_INDEX[word.lower()]

    def _time(self, *, is_end: bool) -> int:
        match = _TIME.match(self.text, self.pos)
        what = "an end time HH:MM (00:00-24:00)" if is_end else "a start time HH:MM (00:00-23:59)"
        if match is None:
            self._fail(what)
        hours, minutes = int(match[1]), int(match[2])
        if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not is_end)):
            self._fail(what)
        self.pos = match.end()
        return hours * 60 + minutes

    def _word(self) -> str:
        end = self.pos
        while end < len(self.text) and self.text[end].isalpha():
            end += 1
        return self.text[self.pos:end]

    def _peek(self) -> str:
        return self.text[self.pos:self.pos + 1]

    def _skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def _fail(self, expected: str) -> NoReturn:
        end = self.pos
        while end < len(self.text) and self.text[end] not in _TOKEN_END:
            end += 1
        token = self.text[self.pos:max(end, self.pos + 1)][:20]
        got = repr(token) if token else "the end of the spec"
        line = self.text.count("\n", 0, self.pos) + 1
        column = self.pos - (self.text.rfind("\n", 0, self.pos) + 1) + 1
        where = f"line {line}, column {column}" if "\n" in self.text.strip() else f"column {column}"
        raise ConfigError(f"{KEY}: at {where}: expected {expected}, got {got}",
                          key=KEY, column=column, line=line)
