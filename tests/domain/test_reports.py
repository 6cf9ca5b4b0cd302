"""Monthly service report (§6): deadline, month bounds, case statistics and the PNG chart."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.charts import report_chart
from bot.domain.calendar import calendar_for
from bot.domain.model import Severity
from bot.domain.reports import (
    CaseFact,
    CaseStats,
    SeverityRow,
    case_stats,
    month_bounds,
    plan_year_of,
    previous_month,
    report_deadline,
    units_in_month,
)

S1, S2, S3, S4, S5 = Severity
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


# --- deadline -------------------------------------------------------------------------------
# Counts are the `holidays` package's entries for days 1–10 (weekend days inside a break that
# are not themselves holiday entries do not count), checked by hand against the 2026 schedules.
@pytest.mark.parametrize(
    ("code", "year", "month", "holidays", "expected"),
    [
        # CN Oct: 1 Thu, 2 Fri, 3 Sat National Day; 4 Sun is a plain weekend (no entry);
        # 5 Mon observed; 6 Tue, 7 Wed days off in lieu of Sun 09-20 and Sat 10-10 → 6.
        ("CN", 2026, 10, 6, date(2026, 10, 16)),
        # CN Jan: 1 Thu New Year, 2 Fri day off in lieu of Sun 01-04 → 2.
        ("CN", 2026, 1, 2, date(2026, 1, 12)),
        # CN Feb: Spring Festival starts 02-17, nothing on 1–10 → the 10th.
        ("CN", 2026, 2, 0, date(2026, 2, 10)),
        # CN May: 1 Fri, 2 Sat Labour Day; 3 Sun plain weekend; 4 Mon observed;
        # 5 Tue day off in lieu of Sat 05-09 → 4.
        ("CN", 2026, 5, 4, date(2026, 5, 14)),
        # CN Jun: Dragon Boat is 06-19 → the 10th.
        ("CN", 2026, 6, 0, date(2026, 6, 10)),
        # HK Apr (statutory holidays only): 5 Sun Ching Ming, 6 Mon Easter Monday,
        # 7 Tue Ching Ming observed → 3. (Good Friday 04-03 is a general, not statutory, holiday.)
        ("HK", 2026, 4, 3, date(2026, 4, 13)),
    ],
)
def test_report_deadline(code: str, year: int, month: int, holidays: int, expected: date) -> None:
    cal = calendar_for(code)
    assert cal.holidays_in(date(year, month, 1), date(year, month, 10)) == holidays
    assert report_deadline(year, month, cal) == expected
    assert report_deadline(year, month, cal) == date(year, month, 10) + timedelta(days=holidays)


# --- month helpers --------------------------------------------------------------------------
def test_previous_month() -> None:
    assert previous_month(2026, 1) == (2025, 12)
    assert previous_month(2026, 3) == (2026, 2)
    assert previous_month(2026, 12) == (2026, 11)


def test_month_bounds_shanghai() -> None:
    sh = ZoneInfo("Asia/Shanghai")
    start, end = month_bounds(2026, 11, sh)
    assert start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert start.utcoffset() == timedelta(0) and end.utcoffset() == timedelta(0)
    # December wraps into the next year.
    assert month_bounds(2026, 12, sh) == (
        datetime(2026, 11, 30, 16, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 16, 0, tzinfo=UTC),
    )


def test_month_bounds_across_dst() -> None:
    # London: 03-01 00:00 GMT = 00:00Z; 04-01 00:00 BST = 03-31 23:00Z.
    assert month_bounds(2026, 3, ZoneInfo("Europe/London")) == (
        datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 31, 23, 0, tzinfo=UTC),
    )


# --- case_stats -----------------------------------------------------------------------------
def fact(
    sev: Severity,
    response: timedelta | None,
    target: timedelta,
    resolved: timedelta | None,
    breached: bool = False,
) -> CaseFact:
    return CaseFact(
        severity=sev,
        opened_at=T0,
        due_at=T0 + target,
        first_response_at=None if response is None else T0 + response,
        resolved_at=None if resolved is None else T0 + resolved,
        breached=breached,
    )


M = timedelta(minutes=1)
H = timedelta(hours=1)

FACTS = [
    fact(S1, 10 * M, 15 * M, 2 * H),  # within
    fact(S1, 20 * M, 15 * M, 5 * H, breached=True),  # late
    fact(S2, 25 * M, 30 * M, 8 * H + 20 * M),  # within; resolved 8.333 h
    fact(S2, 30 * M, 30 * M, None),  # exactly on due → within
    fact(S2, None, 30 * M, None, breached=True),  # never answered
    fact(S3, 45 * M, 60 * M, 24 * H),  # within
    fact(S3, 90 * M, 60 * M, 30 * H + 30 * M, breached=True),  # late
    fact(S4, 100 * M + timedelta(seconds=20), 240 * M, 48 * H),  # within; 100.333 min
    fact(S4, 5 * M, 240 * M, 75 * M),  # within; resolved 1.25 h
    fact(S4, 7 * M + timedelta(seconds=30), 240 * M, None),  # within; 7.5 min
]


def test_case_stats_hand_computed() -> None:
    stats = case_stats(FACTS)
    assert stats.rows == (
        # S1: 2 opened, both answered, 10 ≤ 15 yes, 20 ≤ 15 no; 1 breached.
        SeverityRow(S1, opened=2, responded=2, within_target=1, breached=1),
        # S2: 3 opened, 2 answered (25 ≤ 30, 30 ≤ 30), 1 breached.
        SeverityRow(S2, opened=3, responded=2, within_target=2, breached=1),
        # S3: 45 ≤ 60 yes, 90 ≤ 60 no; 1 breached.
        SeverityRow(S3, opened=2, responded=2, within_target=1, breached=1),
        SeverityRow(S4, opened=3, responded=3, within_target=3, breached=0),
        SeverityRow(S5, opened=0, responded=0, within_target=0, breached=0),
    )
    assert stats.total_opened == 10
    assert stats.responded == 9  # 2 + 2 + 2 + 3 + 0
    assert stats.within_target == 7  # 1 + 2 + 1 + 3 + 0
    assert stats.attainment_pct == 77.8  # 7 / 9 × 100 = 77.77… → 77.8
    # First response minutes, sorted (n = 9): 5, 7.5, 10, 20, 25, 30, 45, 90, 100.333
    # p50: rank ceil(0.5 × 9) = ceil(4.5) = 5 → 25;  p90: rank ceil(8.1) = 9 → 100.333 → 100.3
    assert stats.first_response_p50_min == 25.0
    assert stats.first_response_p90_min == 100.3
    # Resolution hours, sorted (n = 7): 1.25, 2, 5, 8.333, 24, 30.5, 48
    # p50: rank ceil(3.5) = 4 → 8.333 → 8.3;  p90: rank ceil(6.3) = 7 → 48
    assert stats.resolved == 7
    assert stats.resolution_p50_h == 8.3
    assert stats.resolution_p90_h == 48.0
    assert stats.breaches == 3


def test_case_stats_accepts_any_iterable() -> None:
    assert case_stats(iter(FACTS)) == case_stats(FACTS)


def test_case_stats_nearest_rank_exact_boundaries() -> None:
    # n = 10, minutes 1..10: p50 rank ceil(5.0) = 5 → 5; p90 rank ceil(9.0) = 9 → 9
    # (a float 0.9 × 10 = 9.000…02 would wrongly give rank 10).
    facts = [fact(S3, k * M, 60 * M, k * H) for k in range(10, 0, -1)]
    stats = case_stats(facts)
    assert stats.first_response_p50_min == 5.0
    assert stats.first_response_p90_min == 9.0
    assert stats.resolution_p50_h == 5.0
    assert stats.resolution_p90_h == 9.0
    assert stats.attainment_pct == 100.0


def test_case_stats_single_fact() -> None:
    stats = case_stats([fact(S1, 3 * M, 15 * M, None)])
    assert stats.first_response_p50_min == stats.first_response_p90_min == 3.0
    assert stats.resolved == 0
    assert stats.resolution_p50_h is None and stats.resolution_p90_h is None


def test_case_stats_unanswered_only() -> None:
    stats = case_stats([fact(S2, None, 30 * M, None, breached=True)])
    assert stats.total_opened == 1 and stats.responded == 0
    assert stats.attainment_pct is None
    assert stats.first_response_p50_min is None
    assert stats.breaches == 1


def test_case_stats_empty() -> None:
    assert case_stats([]) == CaseStats(
        rows=tuple(SeverityRow(s, 0, 0, 0, 0) for s in Severity),
        total_opened=0,
        responded=0,
        within_target=0,
        attainment_pct=None,
        first_response_p50_min=None,
        first_response_p90_min=None,
        resolved=0,
        resolution_p50_h=None,
        resolution_p90_h=None,
        breaches=0,
    )


# --- chart ----------------------------------------------------------------------------------
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EN = {"cases": "Cases opened", "attainment": "SLA attainment %", "severity": "Severity"}
ZH = {"cases": "新建工单数", "attainment": "SLA 达成率 %", "severity": "严重级别"}


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_MAGIC)
    assert png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


@pytest.mark.parametrize(
    ("facts", "title", "labels"),
    [
        (FACTS, "Service report 2026-11", EN),
        ([], "Service report 2026-11", EN),
        (FACTS, "2026年11月服务报告", ZH),
    ],
    ids=["en", "empty", "zh"],
)
def test_report_chart_png(facts: list[CaseFact], title: str, labels: dict[str, str]) -> None:
    png = report_chart(case_stats(facts), title, labels)
    assert isinstance(png, bytes)
    width, height = png_size(png)
    assert 600 <= width <= 1200
    assert 300 <= height <= 700



def test_unanswered_cases_past_due_count_as_misses() -> None:
    """One on time, one late, one never answered and past due: 1 / 3, not 1 / 2."""
    facts = [fact(S1, 5 * M, 10 * M, None), fact(S1, 20 * M, 10 * M, None),
             fact(S2, None, 30 * M, None, breached=True)]
    assert case_stats(facts).attainment_pct == 50.0  # without a reference time: answered only
    late = max(f.due_at for f in facts) + M
    stats = case_stats(facts, as_of=late)
    assert stats.unanswered_overdue == 1 and stats.attainment_pct == 33.3
    early = min(f.due_at for f in facts) - M  # nothing is past due yet
    assert case_stats(facts, as_of=early).attainment_pct == 50.0


@pytest.mark.parametrize(("start", "amount", "expected"), [
    (date(2026, 11, 30), 2, 1),   # 30 Nov counts in November, 1 Dec in December
    (date(2026, 10, 31), 3, 2),   # 1 and 2 Nov
    (date(2026, 11, 10), 3, 3),
    (date(2026, 12, 1), 1, 0),    # used in December, whenever it was approved
    (date(2026, 10, 25), 1, 0),
])
def test_perk_units_count_in_the_month_they_are_used(start: date, amount: int,
                                                    expected: int) -> None:
    assert units_in_month(start, amount, date(2026, 11, 1), date(2026, 12, 1)) == expected


def test_plan_year_of_a_month() -> None:
    assert plan_year_of(date(2026, 3, 1), date(2026, 10, 1)) == date(2026, 3, 1)
    assert plan_year_of(date(2026, 3, 1), date(2026, 2, 1)) == date(2025, 3, 1)
    assert plan_year_of(date(2028, 2, 29), date(2027, 6, 1)) == date(2027, 2, 28)
