"""SLA deadlines: response targets per tier and severity, business days, escort, clock state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import load_catalog
from bot.domain.calendar import calendar_for
from bot.domain.catalog import Catalog, Target
from bot.domain.model import Case, CaseStatus, Severity, Tier
from bot.domain.sla import ClockState, clock_state, deadline, in_window, sla_terms, time_left

SH = ZoneInfo("Asia/Shanghai")
CN = calendar_for("CN")
CATALOG = load_catalog(None)

# Tue 2026-11-24 10:00 in Shanghai: an ordinary Chinese working day (so is Wed 11-25).
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
# Basic: end of Wed 2026-11-25 local = Thu 2026-11-26 00:00 +08:00 = Wed 16:00 UTC.
BASIC_DUE = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)

S1, S2, S3, S4, S5 = Severity
BASIC, DEVELOPER, BUSINESS, ENTERPRISE = Tier


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(*args: int) -> datetime:
    """A Shanghai wall-clock time, as the aware UTC instant the domain receives."""
    return datetime(*args, tzinfo=SH).astimezone(UTC)  # type: ignore[misc]


def terms(tier: Tier, sev: Severity, opened: datetime, windows=(), catalog: Catalog = CATALOG):
    return sla_terms(catalog, tier, sev, opened, CN, SH, windows)


# --- every tier x severity -------------------------------------------------------------

M = timedelta(minutes=1)
H = timedelta(hours=1)

SLA_TABLE = [
    # tier, requested, filed, label, due_at
    (BASIC, S1, S1, "1bd", BASIC_DUE),
    (BASIC, S2, S2, "1bd", BASIC_DUE),
    (BASIC, S3, S3, "1bd", BASIC_DUE),
    (BASIC, S4, S4, "1bd", BASIC_DUE),
    (BASIC, S5, S5, "1bd", BASIC_DUE),
    (DEVELOPER, S1, S2, "30m", utc(2026, 11, 24, 2, 30)),
    (DEVELOPER, S2, S2, "30m", utc(2026, 11, 24, 2, 30)),
    (DEVELOPER, S3, S3, "3h", utc(2026, 11, 24, 5, 0)),
    (DEVELOPER, S4, S4, "8h", utc(2026, 11, 24, 10, 0)),
    (DEVELOPER, S5, S5, "16h", utc(2026, 11, 24, 18, 0)),
    (BUSINESS, S1, S1, "10m", utc(2026, 11, 24, 2, 10)),
    (BUSINESS, S2, S2, "30m", utc(2026, 11, 24, 2, 30)),
    (BUSINESS, S3, S3, "3h", utc(2026, 11, 24, 5, 0)),
    (BUSINESS, S4, S4, "8h", utc(2026, 11, 24, 10, 0)),
    (BUSINESS, S5, S5, "16h", utc(2026, 11, 24, 18, 0)),
    (ENTERPRISE, S1, S1, "10m", utc(2026, 11, 24, 2, 10)),
    (ENTERPRISE, S2, S2, "30m", utc(2026, 11, 24, 2, 30)),
    (ENTERPRISE, S3, S3, "3h", utc(2026, 11, 24, 5, 0)),
    (ENTERPRISE, S4, S4, "8h", utc(2026, 11, 24, 10, 0)),
    (ENTERPRISE, S5, S5, "16h", utc(2026, 11, 24, 18, 0)),
]


def test_table_covers_every_tier_and_severity() -> None:
    assert {(row[0], row[1]) for row in SLA_TABLE} == {(t, s) for t in Tier for s in Severity}
    assert len(SLA_TABLE) == 20


@pytest.mark.parametrize(("tier", "requested", "filed", "label", "due"), SLA_TABLE,
                         ids=[f"{r[0].value}-{r[1].value}" for r in SLA_TABLE])
def test_sla_terms_every_tier_and_severity(tier: Tier, requested: Severity, filed: Severity,
                                           label: str, due: datetime) -> None:
    t = terms(tier, requested, T0)
    assert t.severity is filed
    assert t.requested is requested
    assert t.refiled is (filed is not requested)
    assert t.target.label == label
    assert t.due_at == due
    assert t.due_at.utcoffset() == timedelta(0)
    assert t.escort is False


def test_developer_s1_is_refiled_as_s2() -> None:
    t = terms(DEVELOPER, S1, T0)
    assert (t.severity, t.requested, t.refiled) == (S2, S1, True)
    assert t.target == Target(seconds=1800)


# --- basic tier: business days on the CN calendar ---------------------------------------

BASIC_CASES = [
    # (opened_at, expected due_at, why)
    (local(2026, 11, 27, 20, 0), utc(2026, 11, 30, 16, 0),
     "Fri evening -> Mon is the next business day"),
    (local(2026, 11, 28, 11, 0), utc(2026, 11, 30, 16, 0),
     "ordinary Saturday -> Mon"),
    (local(2026, 10, 2, 10, 0), utc(2026, 10, 8, 16, 0),
     "on National Day (holiday) -> Thu 10-08, first working day after the break"),
    (local(2026, 9, 30, 15, 0), utc(2026, 10, 8, 16, 0),
     "eve of National Day -> Thu 10-08"),
    (local(2026, 10, 9, 21, 0), utc(2026, 10, 10, 16, 0),
     "evening before adjusted working Sat 10-10 -> that Saturday"),
    (local(2026, 10, 10, 9, 0), utc(2026, 10, 12, 16, 0),
     "on working Sat 10-10 -> Mon 10-12 (Sun 10-11 is off)"),
    (local(2026, 9, 19, 10, 0), utc(2026, 9, 20, 16, 0),
     "Sat 09-19 -> adjusted working Sun 09-20"),
    (local(2026, 9, 24, 18, 0), utc(2026, 9, 28, 16, 0),
     "before Mid-Autumn Fri 09-25 -> Mon 09-28"),
    (local(2026, 2, 13, 18, 0), utc(2026, 2, 14, 16, 0),
     "Fri 02-13 -> adjusted working Sat 02-14"),
    (local(2026, 2, 14, 10, 0), utc(2026, 2, 24, 16, 0),
     "working Sat 02-14 -> Tue 02-24, after the Spring Festival break"),
    (local(2026, 2, 17, 10, 0), utc(2026, 2, 24, 16, 0),
     "during Spring Festival -> Tue 02-24"),
    (local(2026, 2, 27, 19, 0), utc(2026, 2, 28, 16, 0),
     "Fri 02-27 -> adjusted working Sat 02-28"),
    # 2026-10-08 01:30 in Shanghai is still 2026-10-07 (a holiday) in UTC: the local date
    # (a working Thursday) counts, so the next business day is Fri 10-09, not Thu 10-08.
    (utc(2026, 10, 7, 17, 30), utc(2026, 10, 9, 16, 0),
     "local date ahead of the UTC date"),
    # 23:59 local on Wed 11-25 is still Wed locally (15:59 UTC): due end of Thu 11-26.
    (local(2026, 11, 25, 23, 59), utc(2026, 11, 26, 16, 0),
     "one minute before local midnight"),
    # 00:00 local on Thu 11-26 is Wed 16:00 UTC: due end of Fri 11-27.
    (local(2026, 11, 26, 0, 0), utc(2026, 11, 27, 16, 0),
     "exactly local midnight belongs to the new local day"),
]


@pytest.mark.parametrize(("opened", "due", "why"), BASIC_CASES,
                         ids=[c[2] for c in BASIC_CASES])
def test_basic_tier_business_day_deadline(opened: datetime, due: datetime, why: str) -> None:
    for sev in Severity:
        t = terms(BASIC, sev, opened)
        assert t.target == Target(business_days=1)
        assert t.due_at == due, why
    # the due time is local midnight after the business day
    local_due = due.astimezone(SH)
    assert local_due.time() == time(0)
    assert CN.is_business_day(local_due.date() - timedelta(days=1))


def test_local_day_not_utc_day_decides_basic_deadline() -> None:
    opened = utc(2026, 10, 7, 17, 30)
    assert opened.date() == date(2026, 10, 7)
    assert opened.astimezone(SH).date() == date(2026, 10, 8)
    assert not CN.is_business_day(date(2026, 10, 7))
    assert terms(BASIC, S3, opened).due_at == utc(2026, 10, 9, 16, 0)


def test_deadline_with_two_business_days_and_other_zone() -> None:
    # Tue 2026-09-29 -> 2 business days on CN: Wed 09-30, then Thu 10-08
    assert deadline(local(2026, 9, 29, 10, 0), Target(business_days=2), CN, SH) \
        == utc(2026, 10, 8, 16, 0)
    # the same instant whatever zone the opening time is written in; results are UTC
    ny = ZoneInfo("America/New_York")
    opened_ny = local(2026, 11, 27, 20, 0).astimezone(ny)
    due = deadline(opened_ny, Target(business_days=1), CN, SH)
    assert due == utc(2026, 11, 30, 16, 0)
    assert due.tzinfo is UTC


def test_deadline_clock_target_ignores_calendar() -> None:
    opened = local(2026, 10, 1, 9, 0)  # National Day
    assert deadline(opened, Target(seconds=1800), CN, SH) == opened + timedelta(minutes=30)
    assert deadline(opened, Target(seconds=45), CN, SH) == opened + timedelta(seconds=45)


def test_deadline_rejects_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline(datetime(2026, 11, 24, 10, 0), Target(seconds=600), CN, SH)
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline(datetime(2026, 11, 24, 10, 0), Target(business_days=1), CN, SH)


def test_sla_terms_rejects_naive_datetime() -> None:
    with pytest.raises(ValueError):
        terms(ENTERPRISE, S2, datetime(2026, 11, 24, 10, 0))


# --- re-grade: same opening time, new severity ----------------------------------------

@pytest.mark.parametrize(("tier", "before", "after", "filed", "due_before", "due_after"), [
    (ENTERPRISE, S4, S2, S2, T0 + 8 * H, T0 + 30 * M),
    (ENTERPRISE, S5, S1, S1, T0 + 16 * H, T0 + 10 * M),
    (BUSINESS, S1, S4, S4, T0 + 10 * M, T0 + 8 * H),
    (BUSINESS, S3, S5, S5, T0 + 3 * H, T0 + 16 * H),
    (DEVELOPER, S3, S1, S2, T0 + 3 * H, T0 + 30 * M),
    (BASIC, S5, S1, S1, BASIC_DUE, BASIC_DUE),
])
def test_regrade_recomputes_from_original_opening(tier: Tier, before: Severity,
                                                  after: Severity, filed: Severity,
                                                  due_before: datetime,
                                                  due_after: datetime) -> None:
    first = terms(tier, before, T0)
    assert first.due_at == due_before
    # the re-grade happens hours later, but the target still runs from the opening time
    regraded = terms(tier, after, T0)
    assert regraded.severity is filed
    assert regraded.due_at == due_after


def test_regrade_to_s2_inside_escort_window_gets_escort_target() -> None:
    window = [(T0 - H, T0 + H)]
    assert terms(BUSINESS, S3, T0, window).due_at == T0 + 3 * H
    regraded = terms(BUSINESS, S2, T0, window)
    assert regraded.escort is True
    assert regraded.due_at == T0 + 10 * M


# --- escort windows -------------------------------------------------------------------

# Shanghai's whole day Tue 2026-11-24, as UTC: [11-23 16:00, 11-24 16:00)
W_START = utc(2026, 11, 23, 16, 0)
W_END = utc(2026, 11, 24, 16, 0)
WINDOW = [(W_START, W_END)]


@pytest.mark.parametrize(("tier", "sev", "opened", "escort", "label", "due"), [
    (BUSINESS, S2, T0, True, "10m", T0 + 10 * M),
    (ENTERPRISE, S2, T0, True, "10m", T0 + 10 * M),
    (DEVELOPER, S1, T0, True, "10m", T0 + 10 * M),  # filed as S2, then escorted
    (DEVELOPER, S2, T0, True, "10m", T0 + 10 * M),
    (BASIC, S2, T0, True, "10m", T0 + 10 * M),  # instead of 1 business day
    (BASIC, S1, T0, True, "10m", T0 + 10 * M),
    (ENTERPRISE, S1, T0, True, "10m", T0 + 10 * M),  # already 10 min: unchanged
    (BUSINESS, S3, T0, False, "3h", T0 + 3 * H),  # S3 is not escorted
    (BASIC, S3, T0, False, "1bd", BASIC_DUE),
    (ENTERPRISE, S5, T0, False, "16h", T0 + 16 * H),
    (BUSINESS, S2, W_START, True, "10m", W_START + 10 * M),  # start is inside
    (BUSINESS, S2, W_END - timedelta(microseconds=1), True, "10m",
     W_END - timedelta(microseconds=1) + 10 * M),
    (BUSINESS, S2, W_END, False, "30m", W_END + 30 * M),  # end is outside
    # 11-24 16:00 UTC = Thu 11-25 00:00 local -> due end of Thu 11-26 local
    (BASIC, S2, W_END, False, "1bd", utc(2026, 11, 26, 16, 0)),
    (BUSINESS, S2, W_START - timedelta(seconds=1), False, "30m",
     W_START - timedelta(seconds=1) + 30 * M),
])
def test_escort_window(tier: Tier, sev: Severity, opened: datetime, escort: bool, label: str,
                       due: datetime) -> None:
    t = terms(tier, sev, opened, WINDOW)
    assert t.escort is escort
    assert t.target.label == label
    assert t.due_at == due


def test_escort_any_of_several_windows() -> None:
    windows = [(utc(2026, 1, 1), utc(2026, 1, 2)), (W_START, W_END)]
    assert terms(BUSINESS, S2, T0, windows).due_at == T0 + 10 * M
    assert terms(BUSINESS, S2, T0, windows[:1]).due_at == T0 + 30 * M
    assert terms(BUSINESS, S2, T0, []).escort is False


def test_escort_never_lengthens_a_shorter_target() -> None:
    # escort target 15 min: S1's 10 min stays 10 min, S2's 30 min shortens to 15 min
    slower = replace(CATALOG, escort_target_seconds=900)
    s1 = terms(ENTERPRISE, S1, T0, WINDOW, slower)
    assert s1.escort is True
    assert (s1.target.label, s1.due_at) == ("10m", T0 + 10 * M)
    s2 = terms(ENTERPRISE, S2, T0, WINDOW, slower)
    assert (s2.target.label, s2.due_at) == ("15m", T0 + 15 * M)
    # a target given in seconds below the escort target is kept
    fast = replace(CATALOG, tiers={**CATALOG.tiers, ENTERPRISE: replace(
        CATALOG.plan(ENTERPRISE),
        response={**CATALOG.plan(ENTERPRISE).response, S2: Target(seconds=120)})})
    s2_fast = terms(ENTERPRISE, S2, T0, WINDOW, fast)
    assert (s2_fast.target.label, s2_fast.due_at) == ("2m", T0 + 2 * M)


def test_in_window_is_half_open() -> None:
    assert in_window(W_START, WINDOW)
    assert not in_window(W_END, WINDOW)
    assert not in_window(W_START - timedelta(microseconds=1), WINDOW)
    assert not in_window(T0, [])


# --- near breach ----------------------------------------------------------------------

@pytest.mark.parametrize(("tier", "sev", "warn"), [
    (ENTERPRISE, S1, T0 + 8 * M),
    (BUSINESS, S2, T0 + 24 * M),
    (DEVELOPER, S3, T0 + 2 * H + 24 * M),
    (ENTERPRISE, S4, T0 + 6 * H + 24 * M),
    (BUSINESS, S5, T0 + 12 * H + 48 * M),
    # 38 h from Tue 10:00 local to Thu 00:00 local: 80 % = 30 h 24 min
    (BASIC, S3, T0 + 30 * H + 24 * M),
])
def test_warn_at_is_80_percent_of_the_target(tier: Tier, sev: Severity, warn: datetime) -> None:
    t = terms(tier, sev, T0)
    assert t.warn_at == warn
    assert t.warn_at == t.due_at - (t.due_at - T0) * 0.2


def test_warn_at_with_escort_target() -> None:
    t = terms(BASIC, S2, T0, WINDOW)
    assert t.warn_at == T0 + 8 * M


def test_warn_at_follows_catalog_ratio() -> None:
    half = replace(CATALOG, near_breach_ratio=0.5)
    assert terms(BUSINESS, S2, T0, catalog=half).warn_at == T0 + 15 * M


def test_time_left() -> None:
    assert time_left(T0 + 30 * M, T0) == 30 * M
    assert time_left(T0, T0 + 5 * M) == -5 * M


# --- clock state ----------------------------------------------------------------------

DUE = T0 + 30 * M


def make_case(status: CaseStatus = CaseStatus.OPEN, first_response_at: datetime | None = None,
              breached: bool = False, due_at: datetime = DUE) -> Case:
    return Case(
        id=42, ref="CS-1042", account_key="acme", team_id="T1", channel_id="C1",
        opener_user_id="U1", severity=S2, requested_severity=S2, summary="db down",
        description="", region="cn-north-4", software=None, status=status, opened_at=T0,
        due_at=due_at, target_label="30m", sla_generation=1,
        first_response_at=first_response_at, breached=breached,
    )


@pytest.mark.parametrize(("case", "now", "state"), [
    (make_case(), T0, ClockState.RUNNING),
    (make_case(), T0 + 23 * M, ClockState.RUNNING),
    (make_case(), T0 + 24 * M - timedelta(seconds=1), ClockState.RUNNING),
    (make_case(), T0 + 24 * M, ClockState.NEAR),  # 80 % of 30 min
    (make_case(), DUE - timedelta(seconds=1), ClockState.NEAR),
    (make_case(), DUE, ClockState.BREACHED),
    (make_case(), DUE + 3 * H, ClockState.BREACHED),
    (make_case(breached=True), T0 + M, ClockState.BREACHED),
    (make_case(status=CaseStatus.ACKNOWLEDGED, first_response_at=T0 + M), DUE + H,
     ClockState.STOPPED),
    (make_case(first_response_at=T0 + M), T0 + 25 * M, ClockState.STOPPED),
    (make_case(status=CaseStatus.RESOLVED), DUE + H, ClockState.STOPPED),
    (make_case(status=CaseStatus.CLOSED), T0, ClockState.STOPPED),
    (make_case(status=CaseStatus.RESOLVED, breached=True), DUE + H, ClockState.STOPPED),
    (make_case(due_at=T0), T0, ClockState.BREACHED),
], ids=["start", "23m", "just-before-80%", "at-80%", "1s-before-due", "at-due", "overdue",
        "breached-flag", "acknowledged", "first-response", "resolved", "closed",
        "resolved-after-breach", "zero-span"])
def test_clock_state(case: Case, now: datetime, state: ClockState) -> None:
    assert clock_state(case, now, 0.8) is state


def test_clock_state_uses_given_ratio() -> None:
    assert clock_state(make_case(), T0 + 15 * M, 0.5) is ClockState.NEAR
    assert clock_state(make_case(), T0 + 15 * M, 0.8) is ClockState.RUNNING


# --- properties -----------------------------------------------------------------------

ZONES = [UTC, SH, ZoneInfo("America/New_York"), ZoneInfo("Europe/Paris"),
         timezone(timedelta(hours=-11)), timezone(timedelta(hours=14))]

opening_times = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31),
                             timezones=st.sampled_from(ZONES), allow_imaginary=False)
utc_opening_times = st.datetimes(min_value=datetime(2024, 1, 1),
                                 max_value=datetime(2027, 12, 31), timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(opened=opening_times, tier=st.sampled_from(list(Tier)),
       sev=st.sampled_from(list(Severity)))
def test_due_is_after_opening(opened: datetime, tier: Tier, sev: Severity) -> None:
    t = terms(tier, sev, opened)
    assert t.due_at > opened
    assert opened < t.warn_at < t.due_at


@settings(max_examples=200, deadline=None)
@given(opened=utc_opening_times, tier=st.sampled_from([DEVELOPER, BUSINESS, ENTERPRISE]),
       sev=st.sampled_from(list(Severity)))
def test_clock_targets_are_exact_durations(opened: datetime, tier: Tier, sev: Severity) -> None:
    t = terms(tier, sev, opened)
    assert t.target.seconds is not None
    assert t.due_at - opened == timedelta(seconds=t.target.seconds)


@settings(max_examples=200, deadline=None)
@given(opened=opening_times, sev=st.sampled_from(list(Severity)))
def test_basic_due_is_local_midnight_after_next_business_day(opened: datetime,
                                                             sev: Severity) -> None:
    due_local = terms(BASIC, sev, opened).due_at.astimezone(SH)
    assert due_local.time() == time(0)
    last = due_local.date() - timedelta(days=1)
    opened_day = opened.astimezone(SH).date()
    assert last > opened_day
    assert CN.is_business_day(last)
    d = opened_day + timedelta(days=1)
    while d < last:
        assert not CN.is_business_day(d), d
        d += timedelta(days=1)


def test_clock_targets_are_elapsed_time_across_a_dst_change() -> None:
    from zoneinfo import ZoneInfo

    from bot.config import load_catalog
    from bot.domain.calendar import calendar_for
    from bot.domain.model import Severity, Tier
    from bot.domain.sla import sla_terms

    opened = datetime(2026, 11, 1, 1, 45, tzinfo=ZoneInfo("America/New_York"))
    terms = sla_terms(load_catalog(None), Tier.ENTERPRISE, Severity.S2, opened,
                      calendar_for("CN"), ZoneInfo("Asia/Shanghai"))
    assert terms.due_at - opened == timedelta(minutes=30)
    assert terms.due_at == datetime(2026, 11, 1, 6, 15, tzinfo=UTC)
