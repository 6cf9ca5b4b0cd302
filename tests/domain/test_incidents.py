"""Which accounts a platform incident affects (region, region tags, product tags, tier, plan
in force), which new cases it takes, and incident references."""

from __future__ import annotations

from datetime import date

import pytest

from bot.config import load_catalog
from bot.domain.advisories import AccountProfile
from bot.domain.incidents import (
    Scope,
    affects,
    incident_ref,
    links_new_case,
    parse_incident_ref,
)
from bot.domain.model import Account, Lang, Term, Tier

CATALOG = load_catalog(None)
TODAY = date(2026, 11, 24)


def profile(tier: Tier = Tier.ENTERPRISE, region: str = "cn-north-4",
            regions: tuple[str, ...] = (), products: tuple[str, ...] = (),
            cancelled_on: date | None = None) -> AccountProfile:
    account = Account("acme", "Acme", tier, Term.ANNUAL, date(2026, 1, 1), date(2027, 1, 1),
                      region, "Asia/Shanghai", Lang.EN, cancelled_on=cancelled_on)
    return AccountProfile(account, {"region": frozenset(regions),
                                    "product": frozenset(products)})


@pytest.mark.parametrize(("p", "scope", "hit"), [
    (profile(), Scope("cn-north-4"), True),  # the account's own region, every product
    (profile(), Scope("cn-east-3"), False),
    (profile(regions=("cn-east-3",)), Scope("cn-east-3"), True),  # a region tag counts
    (profile(products=("ecs", "rds")), Scope("cn-north-4", frozenset({"rds"})), True),
    (profile(products=("ecs",)), Scope("cn-north-4", frozenset({"rds", "obs"})), False),
    (profile(), Scope("cn-north-4", frozenset({"ecs"})), False),  # untagged: not reached
    (profile(products=("ecs",)), Scope("cn-east-3", frozenset({"ecs"})), False),
    (profile(tier=Tier.BUSINESS), Scope("cn-north-4"), True),
    (profile(tier=Tier.DEVELOPER), Scope("cn-north-4"), False),  # no IM group in the tier
    (profile(tier=Tier.BASIC), Scope("cn-north-4"), False),
    (profile(cancelled_on=TODAY), Scope("cn-north-4"), False),  # no longer in force
    (profile(cancelled_on=date(2026, 11, 25)), Scope("cn-north-4"), True),
])
def test_affects(p: AccountProfile, scope: Scope, hit: bool) -> None:
    assert affects(CATALOG, p, scope, TODAY) is hit


def test_a_case_naming_another_region_is_not_linked() -> None:
    scope = Scope("cn-north-4", frozenset({"ecs"}))
    assert links_new_case(scope, None)
    assert links_new_case(scope, "cn-north-4")
    assert not links_new_case(scope, "cn-east-3")


@pytest.mark.parametrize(("text", "expected"), [
    ("INC-1001", 1), ("inc-1042", 42), ("#INC-1001", 1), ("1001", 1), (" INC-1002 ", 2),
    ("INC-1000", None), ("INC-1", None), ("CS-1001", None), ("INC-", None), ("INC-1e3", None),
    ("INC-" + "9" * 13, None), ("", None),
])
def test_incident_references(text: str, expected: int | None) -> None:
    assert parse_incident_ref(text) == expected
    if expected is not None:
        assert parse_incident_ref(incident_ref(expected)) == expected
