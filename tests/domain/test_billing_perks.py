"""Fees, proration, plan-change rules and perk requests, from tables with hand-computed values."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from bot.config import load_catalog
from bot.domain.billing import (
    ChangeKind,
    Quote,
    Refused,
    format_money,
    incremental_fee,
    monthly_fee,
    parse_money,
    quote_change,
    split_incremental,
    tiered_amount,
    unused_base,
)
from bot.domain.calendar import calendar_for
from bot.domain.model import Account, Lang, Term, Tier
from bot.domain.perks import PerkBalance, check_request, earliest_start

CAT = load_catalog(None)
CN = calendar_for("CN")
B, E = CAT.plan(Tier.BUSINESS).fees, CAT.plan(Tier.ENTERPRISE).fees
USD = 100  # cents


@pytest.mark.parametrize(("fees", "consumption", "tiered", "fee", "incremental"), [
    # business: 10 % of 0-9,000 + 7 % of 9,000-72,000 + 5 % of 72,000-225,000 + 3 % above
    (B, 0, 0, 9000, 0),
    (B, 500 * USD, 5000, 9000, 0),  # 10 % of 500 = 50 < base 90
    (B, 900 * USD, 9000, 9000, 0),  # exactly the base fee
    (B, 9_000 * USD, 90_000, 90_000, 81_000),  # first bracket boundary
    (B, 9_001 * USD, 90_007, 90_007, 81_007),  # 1 dollar into 7 %
    (B, 100_000 * USD, 671_000, 671_000, 662_000),  # 900 + 4,410 + 1,400 dollars
    (B, 225_000 * USD, 1_296_000, 1_296_000, 1_287_000),
    (B, 300_000 * USD, 1_521_000, 1_521_000, 1_512_000),  # + 3 % of 75,000
    (B, 1, 0, 9000, 0),  # 0.1 cent rounds to 0
    (B, 5, 1, 9000, 0),  # 0.5 cent rounds half up
    # enterprise: 10 % of 0-135,000 + 7 % to 450,000 + 5 % to 900,000 + 3 % above
    (E, 135_000 * USD, 1_350_000, 1_350_000, 0),
    (E, 200_000 * USD, 1_805_000, 1_805_000, 455_000),
    (E, 1_000_000 * USD, 6_105_000, 6_105_000, 4_755_000),  # 13,500+22,050+22,500+3,000
])
def test_fee_table(fees: object, consumption: int, tiered: int, fee: int,
                   incremental: int) -> None:
    assert tiered_amount(fees, consumption) == tiered  # type: ignore[arg-type]
    assert monthly_fee(fees, consumption) == fee  # type: ignore[arg-type]
    assert incremental_fee(fees, consumption) == incremental  # type: ignore[arg-type]


def test_flat_tiers_have_no_incremental_fee() -> None:
    dev = CAT.plan(Tier.DEVELOPER).fees
    assert monthly_fee(dev, 10_000_000 * USD) == 2600
    assert incremental_fee(dev, 10_000_000 * USD) == 0
    with pytest.raises(ValueError):
        tiered_amount(B, -1)


def acct(tier: Tier = Tier.BUSINESS, term: Term = Term.ANNUAL, **kw: object) -> Account:
    a = Account(key="acme", name="Acme", tier=tier, term=term, start=date(2026, 1, 1),
                end=date(2027, 1, 1) if term is Term.ANNUAL else date(2026, 2, 1),
                region="cn-north-4", timezone="Asia/Shanghai", lang=Lang.EN)
    return replace(a, **kw)  # type: ignore[arg-type]


def test_unused_base_fee_by_days() -> None:
    # 183 of 365 days left of an annual business plan (12 x 90 USD prepaid)
    assert unused_base(B, acct(), date(2026, 7, 2)) == 54_148  # 108,000 x 183/365 = 54,147.9
    assert unused_base(B, acct(), date(2026, 1, 1)) == 108_000
    assert unused_base(B, acct(), date(2026, 12, 31)) == 296  # 108,000 / 365 = 295.9
    # monthly plan, January: 31 days, 21 left on the 11th
    assert unused_base(B, acct(term=Term.MONTHLY), date(2026, 1, 11)) == 6_097  # 9000x21/31


def test_upgrade_quote_by_hand() -> None:
    q = quote_change(CAT, acct(), ChangeKind.UPGRADE, Tier.ENTERPRISE, date(2026, 7, 2),
                     200_000 * USD, {}, 0)
    assert isinstance(q, Quote)
    assert q.unused_old == 54_148
    assert q.new_base == 8_122_192  # 16,200,000 x 183/365 = 8,122,191.8
    assert q.due_now == 8_068_044
    assert q.incremental is not None
    # July: 1 day on business (incremental 1,162,000 x 1/31), 30 on enterprise (455,000 x 30/31)
    assert (q.incremental.days_old, q.incremental.days_new) == (1, 30)
    assert (q.incremental.old_amount, q.incremental.new_amount) == (37_484, 440_323)


def test_downgrade_refund_and_split() -> None:
    q = quote_change(CAT, acct(Tier.ENTERPRISE, Term.MONTHLY), ChangeKind.DOWNGRADE,
                     Tier.BUSINESS, date(2026, 1, 11), 100_000 * USD, {"escort": 3}, 0)
    assert isinstance(q, Quote)
    # 21 of 31 days left: enterprise 1,350,000 x 21/31 = 914,516.1; business 9000 x 21/31
    assert (q.unused_old, q.new_base, q.due_now) == (914_516, 6_097, 6_097 - 914_516)
    # monthly plans may always downgrade, perks or not
    split = split_incremental(CAT, Tier.ENTERPRISE, Tier.BUSINESS, date(2026, 1, 11),
                              100_000 * USD)
    assert (split.days_old, split.days_new, split.old_amount) == (10, 21, 0)
    assert split.new_amount == 448_452  # 662,000 x 21/31 = 448,451.6


@pytest.mark.parametrize(("used", "tier", "expected"), [
    ({"escort": 2}, Tier.BUSINESS, ("plan.downgrade_perk", "escort")),
    ({"escort": 1}, Tier.BUSINESS, None),
    ({"availability_check": 1}, Tier.BUSINESS, ("plan.downgrade_perk", "availability_check")),
    ({"resource_monitoring": 1}, Tier.DEVELOPER,
     ("plan.downgrade_perk", "resource_monitoring")),
    ({}, Tier.BASIC, None),
])
def test_annual_downgrade_checks_every_perk(used: dict[str, int], tier: Tier,
                                            expected: tuple[str, str] | None) -> None:
    q = quote_change(CAT, acct(Tier.ENTERPRISE), ChangeKind.DOWNGRADE, tier, date(2026, 6, 1),
                     None, used, 0)
    if expected is None:
        assert isinstance(q, Quote) and q.due_now < 0
    else:
        assert isinstance(q, Refused)
        assert (q.msg_id, q.params["perk"]) == expected


@pytest.mark.parametrize(("kind", "tier", "used", "changes", "msg"), [
    (ChangeKind.UNSUBSCRIBE, None, {"escort": 1}, 0, "plan.unsubscribe_after_perk"),
    (ChangeKind.UPGRADE, Tier.BUSINESS, {}, 0, "plan.same_tier"),
    (ChangeKind.UPGRADE, Tier.DEVELOPER, {}, 0, "plan.not_an_upgrade"),
    (ChangeKind.DOWNGRADE, Tier.ENTERPRISE, {}, 0, "plan.not_a_downgrade"),
    (ChangeKind.UPGRADE, Tier.ENTERPRISE, {}, 2, "plan.too_many_changes"),
])
def test_plan_change_refusals(kind: str, tier: Tier | None, used: dict[str, int], changes: int,
                              msg: str) -> None:
    q = quote_change(CAT, acct(), kind, tier, date(2026, 6, 1), None, used, changes)
    assert isinstance(q, Refused) and q.msg_id == msg


def test_unsubscribe_refunds_unused_days_and_keeps_incremental() -> None:
    q = quote_change(CAT, acct(), ChangeKind.UNSUBSCRIBE, None, date(2026, 7, 2),
                     100_000 * USD, {}, 0)
    assert isinstance(q, Quote)
    assert q.due_now == -54_148 and q.new_base == 0
    assert q.incremental is not None and q.incremental.old_amount == 662_000
    assert q.incremental.new_amount == 0


def test_change_outside_the_term_is_refused() -> None:
    q = quote_change(CAT, acct(), ChangeKind.UPGRADE, Tier.ENTERPRISE, date(2027, 1, 1),
                     None, {}, 0)
    assert isinstance(q, Refused) and q.msg_id == "plan.outside_term"


@pytest.mark.parametrize(("text", "minor"), [
    ("125000", 12_500_000), ("1,234.5", 123_450), ("0.07", 7), (".5", 50), ("12.", 1200),
    ("-5", None), ("1.234", None), ("abc", None), ("", None), ("1e5", None), ("１２", None),
    ("1.2.3", None), ("99999999999999", None),
])
def test_parse_money(text: str, minor: int | None) -> None:
    assert parse_money(text) == minor


def test_format_money() -> None:
    assert format_money(123_456_78, "USD") == "USD 123,456.78"
    assert format_money(-5, "USD") == "-USD 0.05"


# --- perk requests: quota, whole days, lead times on the CN calendar ------------------

def bal(perk: str = "escort", quota: int = 3, held: int = 0, used: int = 0) -> PerkBalance:
    return PerkBalance(perk, quota, held, used)


def test_escort_lead_time_across_national_day() -> None:
    # from Thu 2026-09-24: 09-25 Mid-Autumn, 09-28..30 (1-3), Oct 1-7 off (10-07 is the day
    # off swapped for Sat 10-10), 10-08..09 (4-5), Sat 10-10 working (6), 10-12..15 (7-10)
    assert earliest_start(CAT, "escort", date(2026, 9, 24), CN) == date(2026, 10, 15)
    # reviews need 3: from Wed 09-30 -> 10-08, 10-09, Sat 10-10
    assert earliest_start(CAT, "availability_check", date(2026, 9, 30), CN) == date(2026, 10, 10)
    # across Spring Festival 2026 with the working Saturday 02-14
    assert earliest_start(CAT, "resource_monitoring", date(2026, 2, 12), CN) \
        == date(2026, 2, 24)


@pytest.mark.parametrize(("tier", "term", "perk", "start", "amount", "balance", "refusal"), [
    (Tier.BUSINESS, Term.ANNUAL, "availability_check", date(2026, 12, 1), 1, bal(quota=0),
     "perk.not_in_tier"),
    (Tier.ENTERPRISE, Term.MONTHLY, "escort", date(2026, 12, 1), 1, bal(quota=0),
     "perk.annual_only"),
    (Tier.ENTERPRISE, Term.ANNUAL, "escort", date(2026, 12, 1), 1, bal(quota=0),
     "perk.not_full_year"),
    (Tier.ENTERPRISE, Term.ANNUAL, "escort", date(2026, 12, 1), 0, bal(), "perk.whole_days"),
    (Tier.BUSINESS, Term.ANNUAL, "escort", date(2026, 12, 1), 2, bal(quota=1),
     "perk.days_per_request"),
    (Tier.ENTERPRISE, Term.ANNUAL, "escort", date(2026, 12, 1), 2, bal(used=2),
     "perk.quota_exhausted"),
    (Tier.ENTERPRISE, Term.ANNUAL, "escort", date(2026, 12, 1), 2, bal(held=1, used=1),
     "perk.quota_exhausted"),
    (Tier.ENTERPRISE, Term.ANNUAL, "escort", date(2026, 12, 30), 3, bal(),
     "perk.outside_plan_year"),
    (Tier.ENTERPRISE, Term.ANNUAL, "escort", date(2026, 9, 24), 1, bal(),
     "perk.date_not_future"),
    (Tier.ENTERPRISE, Term.ANNUAL, "availability_check", date(2026, 10, 8), 1,
     bal("availability_check", 1), "perk.too_soon"),
    (Tier.ENTERPRISE, Term.ANNUAL, "availability_check", date(2026, 10, 9), 1,
     bal("availability_check", 1), "perk.too_soon"),
    (Tier.ENTERPRISE, Term.ANNUAL, "availability_check", date(2026, 10, 10), 2,
     bal("availability_check", 1), "perk.one_occurrence"),
    (Tier.ENTERPRISE, Term.ANNUAL, "availability_check", date(2026, 10, 10), 1,
     bal("availability_check", 1), None),
    (Tier.ENTERPRISE, Term.ANNUAL, "escort", date(2026, 12, 29), 3, bal(), None),
    (Tier.BUSINESS, Term.ANNUAL, "escort", date(2026, 12, 1), 1, bal(quota=1), None),
])
def test_request_rules(tier: Tier, term: Term, perk: str, start: date, amount: int,
                       balance: PerkBalance, refusal: str | None) -> None:
    d = check_request(CAT, acct(tier, term), perk, start, amount, date(2026, 9, 30), CN,
                      balance)
    assert (d.refusal[0] if d.refusal else None) == refusal


def test_too_soon_names_the_earliest_date_and_escort_only_warns() -> None:
    d = check_request(CAT, acct(Tier.ENTERPRISE), "resource_monitoring", date(2026, 10, 7), 1,
                      date(2026, 9, 30), CN, bal("resource_monitoring", 1))
    assert d.refusal == ("perk.too_soon", {"perk": "resource_monitoring", "n": 3,
                                           "earliest": "2026-10-10"})
    d = check_request(CAT, acct(Tier.ENTERPRISE), "escort", date(2026, 10, 9), 2,
                      date(2026, 9, 30), CN, bal())
    assert d.allowed
    assert d.warnings == [("perk.short_notice", {"n": 10, "earliest": "2026-10-20"})]
