"""SLA deadlines: when the first response to a case is due, and when to warn before that."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.domain.calendar import BusinessCalendar
from bot.domain.catalog import Catalog, Target
from bot.domain.model import Case, Severity, Tier


@dataclass(frozen=True, slots=True)
class SlaTerms:
    """The response terms a case gets when it is opened (or re-graded)."""

    severity: Severity
    requested: Severity
    target: Target
    due_at: datetime
    warn_at: datetime
    escort: bool

    @property
    def refiled(self) -> bool:
        return self.severity is not self.requested


def deadline(opened_at: datetime, target: Target, calendar: BusinessCalendar,
             tz: ZoneInfo) -> datetime:
    """Due time for `target` from `opened_at` (aware UTC).

    Clock targets run on the 7x24 clock. Business-day targets mean "accepted within N
    business days": the end of the N-th business day after the opening day, in the account's
    time zone and on its region calendar.
    """
    if opened_at.tzinfo is None:
        raise ValueError("opened_at must be timezone-aware")
    # clock targets are elapsed time: add them in UTC, never across a DST wall-clock jump
    opened_at = opened_at.astimezone(UTC)
    if target.seconds is not None:
        return opened_at + timedelta(seconds=target.seconds)
    assert target.business_days is not None
    local_day = opened_at.astimezone(tz).date()
    last = calendar.add_business_days(local_day, target.business_days)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
    return end.astimezone(UTC)


def in_window(at: datetime, windows: Iterable[tuple[datetime, datetime]]) -> bool:
    """True when `at` falls inside one of the half-open [start, end) windows."""
    return any(start <= at < end for start, end in windows)


def sla_terms(catalog: Catalog, tier: Tier, requested: Severity, opened_at: datetime,
              calendar: BusinessCalendar, tz: ZoneInfo,
              escort_windows: Iterable[tuple[datetime, datetime]] = ()) -> SlaTerms:
    """Terms for a case of `requested` severity opened at `opened_at` on `tier`."""
    if opened_at.tzinfo is None:
        raise ValueError("opened_at must be timezone-aware")
    opened_at = opened_at.astimezone(UTC)
    severity, target = catalog.plan(tier).target_for(requested)
    escort = severity in catalog.escort_severities and in_window(opened_at, escort_windows)
    # the escort rule only ever shortens a target
    if escort and (target.seconds is None or target.seconds > catalog.escort_target_seconds):
        target = Target(seconds=catalog.escort_target_seconds)
    due = deadline(opened_at, target, calendar, tz)
    warn = opened_at + (due - opened_at) * catalog.near_breach_ratio
    return SlaTerms(severity=severity, requested=requested, target=target, due_at=due,
                    warn_at=warn, escort=escort)


def time_left(due_at: datetime, now: datetime) -> timedelta:
    """Positive while time remains, negative once overdue."""
    return due_at - now


class ClockState(enum.StrEnum):
    RUNNING = "running"
    NEAR = "near"  # the near-breach share of the target has elapsed
    BREACHED = "breached"
    STOPPED = "stopped"  # answered, resolved or closed


def clock_state(case: Case, now: datetime, near_ratio: float) -> ClockState:
    """Where a case's response clock stands at `now`."""
    if not case.awaiting_first_response:
        return ClockState.STOPPED
    if case.breached or now >= case.due_at:
        return ClockState.BREACHED
    span = (case.due_at - case.opened_at).total_seconds()
    if span > 0 and (now - case.opened_at).total_seconds() >= span * near_ratio:
        return ClockState.NEAR
    return ClockState.RUNNING
