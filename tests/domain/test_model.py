"""Core vocabulary (parsing, case references), perk balances and business calendars."""

from __future__ import annotations

from datetime import date

import pytest

from bot.config import load_catalog
from bot.domain.calendar import calendar_for
from bot.domain.catalog import PERKS
from bot.domain.model import (
    SEVERITY_CHOICES,
    Account,
    CaseStatus,
    Lang,
    Role,
    Severity,
    Term,
    Tier,
    case_ref,
    parse_case_ref,
)
from bot.domain.perks import PerkBalance, balances, granted

CATALOG = load_catalog(None)
CN = calendar_for("CN")

S1, S2, S3, S4, S5 = Severity


# --- parsing ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "sev"), [
    ("S1", S1), ("s1", S1), (" S2 ", S2), ("s3", S3), ("S4", S4), ("s5", S5),
    ("core-down", S1), ("prod-down", S2), ("prod-impaired", S3), ("impaired", S4),
    ("guidance", S5), ("Core-Down", S1), ("PROD-DOWN", S2), (" guidance\n", S5),
])
def test_severity_parse(text: str, sev: Severity) -> None:
    assert Severity.parse(text) is sev


@pytest.mark.parametrize("text", ["", "  ", "S0", "S6", "1", "sev1", "core", "prod down",
                                  "core-down!", "S 1", "P1", "urgent"])
def test_severity_parse_junk(text: str) -> None:
    assert Severity.parse(text) is None


def test_severity_aliases_and_choices() -> None:
    assert [s.alias for s in Severity] == ["core-down", "prod-down", "prod-impaired",
                                           "impaired", "guidance"]
    assert SEVERITY_CHOICES == ("S1/core-down, S2/prod-down, S3/prod-impaired, S4/impaired, "
                                "S5/guidance")


@pytest.mark.parametrize(("text", "tier"), [
    ("basic", Tier.BASIC), ("Developer", Tier.DEVELOPER), (" BUSINESS ", Tier.BUSINESS),
    ("enterprise", Tier.ENTERPRISE), ("gold", None), ("", None), ("enterprise-plus", None),
])
def test_tier_parse(text: str, tier: Tier | None) -> None:
    assert Tier.parse(text) is tier


def test_tier_rank_is_lowest_to_highest() -> None:
    assert [t.rank for t in (Tier.BASIC, Tier.DEVELOPER, Tier.BUSINESS, Tier.ENTERPRISE)] \
        == [0, 1, 2, 3]
    assert Tier.ENTERPRISE.rank > Tier.BUSINESS.rank


@pytest.mark.parametrize(("text", "term"), [
    ("monthly", Term.MONTHLY), ("ANNUAL", Term.ANNUAL), (" Annual ", Term.ANNUAL),
    ("yearly", None), ("", None),
])
def test_term_parse(text: str, term: Term | None) -> None:
    assert Term.parse(text) is term


@pytest.mark.parametrize(("text", "role"), [
    ("admin", Role.ADMIN), ("TAM", Role.TAM), (" engineer ", Role.ENGINEER),
    ("customer", None), ("", None),
])
def test_role_parse(text: str, role: Role | None) -> None:
    assert Role.parse(text) is role


@pytest.mark.parametrize(("text", "lang"), [
    ("en", Lang.EN), ("ZH", Lang.ZH), (" zh ", Lang.ZH), ("fr", None), ("zh-CN", None),
])
def test_lang_parse(text: str, lang: Lang | None) -> None:
    assert Lang.parse(text) is lang


def test_case_status_activity() -> None:
    assert {s for s in CaseStatus if s.is_active} == {CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED}


# --- case references --------------------------------------------------------------------

def test_case_ref() -> None:
    assert case_ref(42) == "CS-1042"
    assert case_ref(1) == "CS-1001"
    assert case_ref(123456) == "CS-124456"


@pytest.mark.parametrize(("text", "case_id"), [
    ("CS-1042", 42), ("cs-1042", 42), ("#CS-1042", 42), ("1042", 42), (" CS-1042 ", 42),
    ("Cs-1001", 1), ("#1042", 42), ("CS-124456", 123456),
])
def test_parse_case_ref(text: str, case_id: int) -> None:
    assert parse_case_ref(text) == case_id


@pytest.mark.parametrize("text", [
    "", "hello", "CS-", "CS-999", "CS-1000", "CS-0", "999", "CS-abc", "CS-12.5", "CS--1042",
    "CS-1042x", "CS 1042", "CS-+1042", "CS- 1042", "9" * 13, "CS-" + "9" * 13,
    "CS-" + "1" * 40, "-1042",
])
def test_parse_case_ref_junk(text: str) -> None:
    assert parse_case_ref(text) is None


@pytest.mark.parametrize("case_id", [1, 42, 999, 1000, 123456, 10**11])
def test_case_ref_round_trip(case_id: int) -> None:
    ref = case_ref(case_id)
    assert parse_case_ref(ref) == case_id
    assert parse_case_ref(ref.lower()) == case_id
    assert parse_case_ref("#" + ref) == case_id


def test_parse_case_ref_superscript_digit_is_junk() -> None:
    assert parse_case_ref("CS-²") is None
    assert parse_case_ref("CS-１０４２") is None  # full-width digits are not a reference


# --- perks ----------------------------------------------------------------------------

def account(tier: Tier = Tier.ENTERPRISE, term: Term = Term.ANNUAL,
            bought: Tier | None = None) -> Account:
    """`bought`: the tier the plan year was bought at, before a mid-term upgrade."""
    return Account(key="acme", name="Acme", tier=tier, term=term, start=date(2026, 1, 1),
                   end=date(2026, 12, 31), region="cn-north-4", timezone="Asia/Shanghai",
                   lang=Lang.EN, perk_tier=bought)


ZEROS = {"escort": 0, "availability_check": 0, "resource_monitoring": 0}


@pytest.mark.parametrize(("tier", "term", "bought", "expected"), [
    (Tier.ENTERPRISE, Term.ANNUAL, None,
     {"escort": 3, "availability_check": 1, "resource_monitoring": 1}),
    (Tier.BUSINESS, Term.ANNUAL, None,
     {"escort": 1, "availability_check": 0, "resource_monitoring": 0}),
    (Tier.DEVELOPER, Term.ANNUAL, None, ZEROS),
    (Tier.BASIC, Term.ANNUAL, None, ZEROS),
    (Tier.ENTERPRISE, Term.MONTHLY, None, ZEROS),
    (Tier.BUSINESS, Term.MONTHLY, None, ZEROS),
    # reached by a mid-term upgrade: quotas stay those of the plan bought (§6 example, §7)
    (Tier.ENTERPRISE, Term.ANNUAL, Tier.DEVELOPER, ZEROS),
    (Tier.ENTERPRISE, Term.ANNUAL, Tier.BUSINESS,
     {"escort": 1, "availability_check": 0, "resource_monitoring": 0}),
    # after a downgrade the lower tier's quotas apply even if perk_tier is stale
    (Tier.BUSINESS, Term.ANNUAL, Tier.ENTERPRISE,
     {"escort": 1, "availability_check": 0, "resource_monitoring": 0}),
])
def test_granted(tier: Tier, term: Term, bought: Tier | None,
                 expected: dict[str, int]) -> None:
    assert granted(CATALOG, account(tier, term, bought)) == expected


def test_granted_returns_a_copy() -> None:
    plan = CATALOG.plan(Tier.ENTERPRISE)
    g = granted(CATALOG, account())
    g["escort"] = 99
    assert plan.perks["escort"] == 3


def test_balances_annual_enterprise() -> None:
    got = balances(CATALOG, account(),
                   held={"escort": 1}, used={"escort": 1, "availability_check": 1})
    assert got == [
        PerkBalance("escort", 3, 1, 1),
        PerkBalance("availability_check", 1, 0, 1),
        PerkBalance("resource_monitoring", 1, 0, 0),
    ]
    assert [b.left for b in got] == [1, 0, 1]
    assert [b.perk for b in got] == list(PERKS)


def test_balances_monthly_has_nothing_left() -> None:
    got = balances(CATALOG, account(term=Term.MONTHLY), {}, {})
    assert [(b.quota, b.left) for b in got] == [(0, 0), (0, 0), (0, 0)]


def test_balances_upgraded_midterm_from_developer_has_nothing_left() -> None:
    got = balances(CATALOG, account(bought=Tier.DEVELOPER), {}, {})
    assert [(b.quota, b.left) for b in got] == [(0, 0), (0, 0), (0, 0)]


@pytest.mark.parametrize(("quota", "held", "used", "left"), [
    (3, 0, 0, 3), (3, 1, 1, 1), (3, 0, 3, 0), (3, 2, 2, 0), (1, 0, 5, 0), (0, 1, 0, 0),
    (0, 0, 0, 0),
])
def test_perk_balance_left_never_negative(quota: int, held: int, used: int, left: int) -> None:
    assert PerkBalance("escort", quota, held, used).left == left


def test_balances_overused_after_downgrade_is_zero_not_negative() -> None:
    # quota 1 (business) with 3 days already used on the old enterprise plan
    got = balances(CATALOG, account(Tier.BUSINESS), {}, {"escort": 3})
    assert got[0] == PerkBalance("escort", 1, 0, 3)
    assert got[0].left == 0


# --- business calendar (CN; dates checked against the `holidays` package) ---------------

@pytest.mark.parametrize(("day", "working"), [
    (date(2026, 11, 24), True),  # ordinary Tuesday
    (date(2026, 11, 28), False),  # ordinary Saturday
    (date(2026, 10, 1), False),  # National Day
    (date(2026, 10, 4), False),  # Sunday inside the National Day break
    (date(2026, 10, 7), False),  # day off substituted from 10-10
    (date(2026, 10, 8), True),
    (date(2026, 10, 10), True),  # adjusted working Saturday
    (date(2026, 10, 11), False),
    (date(2026, 9, 20), True),  # adjusted working Sunday
    (date(2026, 9, 25), False),  # Mid-Autumn Festival
    (date(2026, 2, 14), True),  # adjusted working Saturday
    (date(2026, 2, 17), False),  # Spring Festival
    (date(2026, 2, 20), False),  # day off substituted from 02-14
    (date(2026, 2, 23), False),  # day off substituted from 02-28
    (date(2026, 2, 24), True),
    (date(2026, 2, 28), True),  # adjusted working Saturday
])
def test_is_business_day(day: date, working: bool) -> None:
    assert CN.is_business_day(day) is working


@pytest.mark.parametrize(("start", "n", "expected"), [
    (date(2026, 11, 24), 1, date(2026, 11, 25)),
    (date(2026, 11, 27), 1, date(2026, 11, 30)),  # Friday -> Monday
    (date(2026, 9, 30), 1, date(2026, 10, 8)),  # over National Day
    (date(2026, 9, 30), 2, date(2026, 10, 9)),
    (date(2026, 9, 30), 3, date(2026, 10, 10)),  # working Saturday counts
    (date(2026, 9, 30), 4, date(2026, 10, 12)),
    (date(2026, 9, 18), 1, date(2026, 9, 20)),  # working Sunday counts
    (date(2026, 2, 13), 1, date(2026, 2, 14)),
    (date(2026, 2, 13), 2, date(2026, 2, 24)),  # over Spring Festival
    (date(2026, 2, 15), 1, date(2026, 2, 24)),  # from inside the break
    (date(2026, 11, 24), 10, date(2026, 12, 8)),
])
def test_add_business_days(start: date, n: int, expected: date) -> None:
    assert CN.add_business_days(start, n) == expected


def test_next_business_day() -> None:
    assert CN.next_business_day(date(2026, 10, 9)) == date(2026, 10, 10)
    assert CN.next_business_day(date(2026, 10, 1)) == date(2026, 10, 8)


@pytest.mark.parametrize(("start", "end", "expected"), [
    (date(2026, 11, 24), date(2026, 11, 24), 0),
    (date(2026, 11, 24), date(2026, 11, 25), 1),  # (start, end]: end counts, start not
    (date(2026, 11, 23), date(2026, 11, 30), 5),  # Tue..Fri + Mon
    (date(2026, 9, 30), date(2026, 10, 12), 4),  # 10-08, 10-09, 10-10, 10-12
    (date(2026, 2, 13), date(2026, 2, 28), 6),  # 02-14, 02-24..02-28
    (date(2026, 10, 1), date(2026, 10, 7), 0),  # the whole break
    (date(2026, 11, 30), date(2026, 11, 24), 0),  # end before start
])
def test_business_days_between(start: date, end: date, expected: int) -> None:
    assert CN.business_days_between(start, end) == expected


@pytest.mark.parametrize(("start", "end", "expected"), [
    # 10-01, 10-02, 10-03, 10-05 (observed), 10-06, 10-07 (substituted); Sunday 10-04 is
    # a weekend inside the break, not a named holiday
    (date(2026, 10, 1), date(2026, 10, 10), 6),
    (date(2026, 2, 1), date(2026, 2, 28), 6),  # 02-16..02-20 and 02-23
    (date(2026, 5, 1), date(2026, 5, 10), 4),  # 05-01, 05-02, 05-04, 05-05
    (date(2026, 1, 1), date(2026, 1, 10), 2),  # 01-01 and 01-02 (substituted)
    (date(2026, 11, 1), date(2026, 11, 30), 0),
    (date(2026, 10, 1), date(2026, 10, 1), 1),  # closed range
    (date(2026, 10, 8), date(2026, 10, 10), 0),  # working days, working Saturday
])
def test_holidays_in(start: date, end: date, expected: int) -> None:
    assert CN.holidays_in(start, end) == expected


def test_holiday_name() -> None:
    assert CN.holiday_name(date(2026, 10, 1)) == "National Day"
    assert CN.holiday_name(date(2026, 10, 10)) is None
    assert CN.holiday_name(date(2026, 11, 28)) is None


def test_calendar_for_is_cached_and_rejects_unknown_codes() -> None:
    assert calendar_for("CN") is CN
    # Sun 2026-09-20 is an adjusted working day in mainland China only
    assert calendar_for("HK").is_business_day(date(2026, 9, 20)) is False
    with pytest.raises(ValueError, match="no holiday calendar for 'XX'"):
        calendar_for("XX")
