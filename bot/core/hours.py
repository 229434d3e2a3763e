"""When coordinators answer (pure): the clinic's staff hours, from the config.

A patient handed to staff outside these hours is told when a person will
answer; inside them, how soon to expect one. Times are the clinic's local
time (the adapter passes an aware datetime in the clinic's time zone).
"""

from __future__ import annotations

import datetime as dtm
from dataclasses import dataclass

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class HoursError(ValueError):
    """A staff.hours entry that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class StaffHours:
    """Opening spans per weekday (Monday = 0), in minutes after midnight, and the usual wait."""

    spans: tuple[tuple[tuple[int, int], ...], ...]  # seven days of (open, close) spans
    reply_within_minutes: int = 30

    @classmethod
    def parse(cls, entries: dict[str, str], reply_within_minutes: int = 30) -> StaffHours:
        """From the config's form: ``{"mon-fri": "09:00-18:00", "sat": "10:00-14:00"}``."""
        days: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
        for day_spec, time_spec in entries.items():
            for day in _days(str(day_spec)):
                for span in str(time_spec).split(","):
                    days[day].append(_span(span.strip(), str(day_spec)))
        return cls(tuple(tuple(sorted(spans)) for spans in days), reply_within_minutes)

    def next_opening(self, now: dtm.datetime) -> dtm.datetime | None:
        """None while staff are in; else when they are next in (within the coming week)."""
        minute = now.hour * 60 + now.minute
        if any(start <= minute < end for start, end in self.spans[now.weekday()]):
            return None
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        for ahead in range(8):
            day = midnight + dtm.timedelta(days=ahead)
            for start, _ in self.spans[day.weekday()]:
                opening = day + dtm.timedelta(minutes=start)
                if opening > now:
                    return opening
        return None  # no hours at all: nothing to promise

    @property
    def any(self) -> bool:
        return any(self.spans)


def _days(spec: str) -> list[int]:
    spec = spec.strip().lower()
    if spec in ("daily", "every day"):
        return list(range(7))
    first, _, last = spec.partition("-")
    if first not in WEEKDAYS or (last and last not in WEEKDAYS):
        raise HoursError(f"{spec!r} is not a day or a range of days such as mon-fri (days: {', '.join(WEEKDAYS)})")
    start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
    return [(start + n) % 7 for n in range((end - start) % 7 + 1)]


def _span(spec: str, day_spec: str) -> tuple[int, int]:
    try:
        opens, closes = (_minutes(part) for part in spec.split("-"))
    except ValueError:
        raise HoursError(f"{day_spec}: {spec!r} is not a span of time such as 09:00-18:00") from None
    if closes <= opens:
        raise HoursError(f"{day_spec}: {spec!r} closes before it opens")
    return opens, closes


def _minutes(text: str) -> int:
    hours, minutes = text.strip().split(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= int(minutes) < 60 or not 0 <= value <= 24 * 60:
        raise ValueError(text)
    return value
