"""Business calendars per region: weekends, statutory holidays and adjusted working weekends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import holidays


@dataclass(frozen=True)
class BusinessCalendar:
    """A region's working days, from the `holidays` package (China: 调休 weekends are working)."""

    code: str
    _holidays: Any

    def is_business_day(self, day: date) -> bool:
        return bool(self._holidays.is_working_day(day))

    def holiday_name(self, day: date) -> str | None:
        name = self._holidays.get(day)
        return str(name) if name else None

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after `day`."""
        d = day + timedelta(days=1)
        while not self.is_business_day(d):
            d += timedelta(days=1)
        return d

    def add_business_days(self, day: date, n: int) -> date:
        """The n-th business day after `day` (n >= 1)."""
        d = day
        for _ in range(n):
            d = self.next_business_day(d)
        return d

    def business_days_between(self, start: date, end: date) -> int:
        """Business days in the half-open range (start, end]: how many lie ahead of `start`."""
        count = 0
        d = start
        while d < end:
            d += timedelta(days=1)
            if self.is_business_day(d):
                count += 1
        return count

    def holidays_in(self, start: date, end: date) -> int:
        """Statutory holidays (not mere weekends) in the closed range [start, end]."""
        n = 0
        d = start
        while d <= end:
            if d in self._holidays:
                n += 1
            d += timedelta(days=1)
        return n


@lru_cache(maxsize=32)
def calendar_for(code: str) -> BusinessCalendar:
    """Calendar for an ISO country/subdivision code such as `CN` or `HK`."""
    try:
        h = holidays.country_holidays(code)
    except NotImplementedError as exc:
        raise ValueError(f"no holiday calendar for {code!r}") from exc
    return BusinessCalendar(code=code, _holidays=h)
