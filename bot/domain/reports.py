"""Monthly service report (spec §6): due date, month bounds and case statistics. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.calendar import BusinessCalendar
from bot.domain.model import Severity

# why a report may be skipped (seed 5.8): data cannot be collected for an account in a
# proof-of-concept stage (its architecture still changes) or on dedicated cloud
SKIP_REASONS = ("poc", "dedicated")

_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def parse_address(text: str) -> str | None:
    """An email address as typed (`Ops@Acme.com`, `<ops@acme.com>`, `mailto:ops@acme.com`)
    in the one form the bot keeps (lower case), or None when it is not one: a local part
    and a dotted domain whose last label is not a number, nothing else (no name, no comma,
    no space)."""
    t = text.strip()
    if t.startswith("<") and t.endswith(">"):
        t = t[1:-1]
    if t.lower().startswith("mailto:"):
        t = t[7:]
    t = t.lower()
    if len(t) > 254 or t.count("@") != 1:
        return None
    local, domain = t.split("@")
    labels = domain.split(".")
    if not 0 < len(local) <= 64 or not _LOCAL.fullmatch(local) or len(labels) < 2 or \
            not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        return None
    return t


def report_deadline(year: int, month: int, cal: BusinessCalendar) -> date:
    """Due date of the report sent in `month` (for the previous month): the 10th, pushed later
    by one day per statutory holiday falling on days 1–10 of that month."""
    shift = cal.holidays_in(date(year, month, 1), date(year, month, 10))
    return date(year, month, 10) + timedelta(days=shift)


def previous_month(year: int, month: int) -> tuple[int, int]:
    """The (year, month) before the given one."""
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def month_bounds(year: int, month: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Aware UTC instants of local midnight on the 1st of the month and of the next month."""
    ny, nm = _next_month(year, month)
    start = datetime(year, month, 1, tzinfo=tz).astimezone(UTC)
    end = datetime(ny, nm, 1, tzinfo=tz).astimezone(UTC)
    return start, end


def plan_year_of(term_start: date, day: date) -> date:
    """Start of the plan year holding `day`, counting whole years back from `term_start`
    (the current plan year's start); a 29 February start falls back to the 28th."""
    start, years = term_start, 0
    while start > day:
        years += 1
        try:
            start = term_start.replace(year=term_start.year - years)
        except ValueError:
            start = term_start.replace(year=term_start.year - years, day=28)
    return start


def units_in_month(start: date, amount: int, first: date, end: date) -> int:
    """How many of a perk's days `start` … `start + amount - 1` fall in [first, end): an
    escort counts on the days it covers, a one-off review on its date."""
    lo = max(start, first)
    hi = min(start + timedelta(days=amount), end)
    return max(0, (hi - lo).days)


@dataclass(frozen=True)
class PerkMonth:
    """One perk in a month's report: the units used on dates in that month (not when they
    were approved), and what was left of the plan year's quota when the month ended."""

    perk: str
    quota: int
    used: int
    left: int


@dataclass(frozen=True)
class CaseFact:
    """What the report needs to know about one case opened in the month."""

    severity: Severity
    opened_at: datetime
    due_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    breached: bool


@dataclass(frozen=True)
class SeverityRow:
    severity: Severity
    opened: int
    responded: int
    within_target: int
    breached: int


@dataclass(frozen=True)
class CaseStats:
    rows: tuple[SeverityRow, ...]
    total_opened: int
    responded: int
    within_target: int
    attainment_pct: float | None
    first_response_p50_min: float | None
    first_response_p90_min: float | None
    resolved: int
    resolution_p50_h: float | None
    resolution_p90_h: float | None
    breaches: int
    unanswered_overdue: int = 0  # no response yet and past due: counted as missed


def _nearest_rank(sorted_values: Sequence[float], p: int) -> float | None:
    """Nearest-rank percentile: the value at 1-based rank ceil(p/100 × n); None if empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, -(-p * n // 100))  # integer ceil(p * n / 100)
    return sorted_values[rank - 1]


def _pct(values: list[float], p: int) -> float | None:
    v = _nearest_rank(sorted(values), p)
    return None if v is None else round(v, 1)


def _within_target(f: CaseFact) -> bool:
    return f.first_response_at is not None and f.first_response_at <= f.due_at


def case_stats(facts: Iterable[CaseFact], as_of: datetime | None = None) -> CaseStats:
    """Per-severity and overall figures for the month's cases; percentiles use the nearest-rank
    method (value at 1-based rank ceil(p/100 × n) of the sorted list), first response in
    minutes and resolution in hours, both rounded to 1 decimal.

    SLA attainment = answered on time / (answered + still unanswered past due at `as_of`):
    a case nobody answered is a miss, not a case left out.
    """
    items = list(facts)
    rows = tuple(
        SeverityRow(
            severity=sev,
            opened=sum(1 for f in items if f.severity is sev),
            responded=sum(
                1 for f in items if f.severity is sev and f.first_response_at is not None
            ),
            within_target=sum(1 for f in items if f.severity is sev and _within_target(f)),
            breached=sum(1 for f in items if f.severity is sev and f.breached),
        )
        for sev in Severity
    )
    response_min = [
        (f.first_response_at - f.opened_at).total_seconds() / 60
        for f in items
        if f.first_response_at is not None
    ]
    resolution_h = [
        (f.resolved_at - f.opened_at).total_seconds() / 3600
        for f in items
        if f.resolved_at is not None
    ]
    responded = len(response_min)
    within = sum(1 for f in items if _within_target(f))
    overdue = 0 if as_of is None else sum(
        1 for f in items if f.first_response_at is None and f.due_at <= as_of)
    measured = responded + overdue
    attainment = round(within / measured * 100, 1) if measured else None
    return CaseStats(
        rows=rows,
        total_opened=len(items),
        responded=responded,
        within_target=within,
        attainment_pct=attainment,
        first_response_p50_min=_pct(response_min, 50),
        first_response_p90_min=_pct(response_min, 90),
        resolved=len(resolution_h),
        resolution_p50_h=_pct(resolution_h, 50),
        resolution_p90_h=_pct(resolution_h, 90),
        breaches=sum(1 for f in items if f.breached),
        unanswered_overdue=overdue,
    )


@dataclass(frozen=True)
class ReportRecord:
    """A monthly report as posted to an account's group, with the figures it showed."""

    account_key: str
    month: str  # YYYY-MM
    trigger: str  # scheduled | on_demand
    deadline: date
    created_at: datetime
    channel_id: str | None
    ts: str | None
    figures: dict[str, Any] | None
