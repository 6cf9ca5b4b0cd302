"""The plan catalog: the built-in YAML matches the rulebook; malformed catalogs are explained."""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import ConfigError, load_catalog
from bot.domain.catalog import (
    CHANNELS,
    PERKS,
    Bracket,
    CatalogError,
    PerkRule,
    Region,
    Target,
    parse_catalog,
)
from bot.domain.model import Severity, Tier

BUILTIN_TEXT = (resources.files("bot.domain") / "catalog.yaml").read_text("utf-8")
BUILTIN: dict[str, Any] = yaml.safe_load(BUILTIN_TEXT)
CATALOG = load_catalog(None)

S1, S2, S3, S4, S5 = Severity
BASIC, DEVELOPER, BUSINESS, ENTERPRISE = Tier


# --- the built-in catalog -------------------------------------------------------------

def test_builtin_catalog_parses_from_text_and_loader_alike() -> None:
    assert parse_catalog(BUILTIN_TEXT, "x.yaml") == CATALOG
    assert set(CATALOG.tiers) == set(Tier)


def test_builtin_sla_settings() -> None:
    assert CATALOG.currency == "USD"
    assert CATALOG.near_breach_ratio == 0.8
    assert CATALOG.escort_target_seconds == 600
    assert CATALOG.escort_severities == frozenset({S1, S2})


@pytest.mark.parametrize(("tier", "im_group", "tam", "third_party", "handler", "channels"), [
    (BASIC, False, False, False, "technical_engineer", ("hotline", "tickets")),
    (DEVELOPER, False, False, True, "technical_engineer", ("hotline", "tickets")),
    (BUSINESS, True, False, True, "technical_expert",
     ("hotline", "tickets", "enterprise_phone", "im_group")),
    (ENTERPRISE, True, True, True, "senior_technical_expert",
     ("hotline", "tickets", "enterprise_phone", "im_group", "tam")),
])
def test_builtin_channels(tier: Tier, im_group: bool, tam: bool, third_party: bool,
                          handler: str, channels: tuple[str, ...]) -> None:
    plan = CATALOG.plan(tier)
    assert plan.tier is tier
    assert plan.im_group is im_group
    assert plan.tam is tam
    assert plan.third_party_support is third_party
    assert plan.handler == handler
    assert plan.channels == channels
    assert ("im_group" in plan.channels) is im_group
    assert ("tam" in plan.channels) is tam


@pytest.mark.parametrize(("tier", "escort", "availability", "monitoring", "max_days", "base"), [
    (BASIC, 0, 0, 0, 0, 0),
    (DEVELOPER, 0, 0, 0, 0, 2600),
    (BUSINESS, 1, 0, 0, 1, 9000),
    (ENTERPRISE, 3, 1, 1, 3, 1350000),
])
def test_builtin_perks_and_fees(tier: Tier, escort: int, availability: int, monitoring: int,
                                max_days: int, base: int) -> None:
    plan = CATALOG.plan(tier)
    assert plan.perks == {"escort": escort, "availability_check": availability,
                          "resource_monitoring": monitoring}
    assert plan.escort_max_days_per_request == max_days
    assert plan.fees.base == base


def test_builtin_fee_brackets() -> None:
    assert CATALOG.plan(BASIC).fees.brackets == ()
    assert CATALOG.plan(DEVELOPER).fees.brackets == ()
    assert CATALOG.plan(BUSINESS).fees.brackets == (
        Bracket(900000, 1000), Bracket(7200000, 700), Bracket(22500000, 500), Bracket(None, 300))
    assert CATALOG.plan(ENTERPRISE).fees.brackets == (
        Bracket(13500000, 1000), Bracket(45000000, 700), Bracket(90000000, 500),
        Bracket(None, 300))


def test_builtin_response_targets() -> None:
    one_bd = Target(business_days=1)
    assert CATALOG.plan(BASIC).response == dict.fromkeys(Severity, one_bd)
    assert CATALOG.plan(BASIC).file_as == {}
    clock = {S2: Target.minutes(30), S3: Target.minutes(180), S4: Target.minutes(480),
             S5: Target.minutes(960)}
    assert CATALOG.plan(DEVELOPER).response == {S1: None, **clock}
    assert CATALOG.plan(DEVELOPER).file_as == {S1: S2}
    for tier in (BUSINESS, ENTERPRISE):
        assert CATALOG.plan(tier).response == {S1: Target.minutes(10), **clock}
        assert CATALOG.plan(tier).file_as == {}


def test_builtin_items() -> None:
    ent = CATALOG.plan(ENTERPRISE).items
    for item in ("proactive_care", "monthly_report", "availability_check",
                 "resource_monitoring", "escort"):
        assert item in ent
    assert "escort" in CATALOG.plan(BUSINESS).items
    assert "proactive_care" not in CATALOG.plan(BUSINESS).items
    assert "third_party_support" not in CATALOG.plan(BASIC).items
    assert "third_party_support" in CATALOG.plan(DEVELOPER).items


def test_builtin_perk_rules() -> None:
    assert CATALOG.perk_rules == {
        "escort": PerkRule("days", 10, "warn"),
        "availability_check": PerkRule("occurrences", 3, "refuse"),
        "resource_monitoring": PerkRule("occurrences", 3, "refuse"),
    }
    assert set(CATALOG.perk_rules) == set(PERKS)


def test_builtin_regions() -> None:
    assert CATALOG.default_region == "cn-north-4"
    assert CATALOG.regions["cn-north-4"] == Region("CN", "Asia/Shanghai")
    assert CATALOG.regions["ap-southeast-1"] == Region("HK", "Asia/Hong_Kong")
    assert CATALOG.service_exclusions == frozenset({"eu-paris", "na-atlanta"})
    assert CATALOG.service_exclusions <= set(CATALOG.regions)
    assert CATALOG.region("nowhere-9") == Region("CN", "Asia/Shanghai")
    assert CATALOG.region("eu-paris") == Region("FR", "Europe/Paris")
    assert CATALOG.max_tier_changes_per_year == 2


# --- malformed catalogs ----------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _drop_enterprise(c: dict[str, Any]) -> None:
    del c["tiers"]["enterprise"]


def _set(*path: str | int, value: Any) -> Mutation:
    def mutate(c: dict[str, Any]) -> None:
        node: Any = c
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return mutate


def _del(*path: str) -> Mutation:
    def mutate(c: dict[str, Any]) -> None:
        node: Any = c
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]
    return mutate


def _add_platinum(c: dict[str, Any]) -> None:
    c["tiers"]["platinum"] = copy.deepcopy(c["tiers"]["enterprise"])


MUTATIONS: list[tuple[str, Mutation, str, str]] = [
    # id, mutation, key, fragment of "expected ..."
    ("missing-enterprise", _drop_enterprise, "tiers.enterprise", "a value (missing)"),
    ("negative-perk", _set("tiers", "enterprise", "perks", "escort", value=-1),
     "tiers.enterprise.perks.escort", "a whole number >= 0"),
    ("hours-target", _set("tiers", "business", "response", "S3", value={"hours": 1}),
     "tiers.business.response.S3", "{minutes: N}, {seconds: N}, {business_days: N} or null"),
    ("zero-minutes", _set("tiers", "business", "response", "S3", value={"minutes": 0}),
     "tiers.business.response.S3.minutes", "a whole number >= 1"),
    ("ratio-1.5", _set("sla", "near_breach_ratio", value=1.5),
     "sla.near_breach_ratio", "a number between 0 and 1 (exclusive)"),
    ("ratio-bool", _set("sla", "near_breach_ratio", value=True),
     "sla.near_breach_ratio", "a number between 0 and 1"),
    ("unknown-tier", _add_platinum, "tiers.platinum",
     "one of basic, developer, business, enterprise"),
    ("default-region", _set("default_region", value="mars-1"), "default_region",
     "one of the regions ("),
    ("bracket-not-increasing",
     _set("tiers", "business", "fees", "brackets", 1, "upto", value=900000),
     "tiers.business.fees.brackets[1].upto", "a whole number above 900000"),
    ("open-bracket-not-last",
     _set("tiers", "business", "fees", "brackets", 0, "upto", value=None),
     "tiers.business.fees.brackets[0].upto", "only the last bracket may be open"),
    ("null-target-no-file-as", _set("tiers", "business", "response", "S1", value=None),
     "tiers.business.file_as.S1", "the severity to file S1 as"),
    ("developer-without-file-as", _del("tiers", "developer", "file_as"),
     "tiers.developer.file_as.S1", "the severity to file S1 as"),
    ("file-as-unoffered", _set("tiers", "developer", "file_as", value={"S1": "S1"}),
     "tiers.developer.file_as.S1", "a severity offered by this tier"),
    ("lead-rule-maybe", _set("perks", "escort", "lead_rule", value="maybe"),
     "perks.escort.lead_rule", "warn or refuse"),
    ("unknown-channel", _set("tiers", "basic", "channels", value=["hotline", "pigeon"]),
     "tiers.basic.channels", "channels among hotline"),
    ("im-group-string", _set("tiers", "business", "im_group", value="yes"),
     "tiers.business.im_group", "true or false"),
    ("escort-severity", _set("sla", "escort_severities", value=["S1", "S9"]),
     "sla.escort_severities", "severities S1..S5"),
    ("missing-sla", _del("sla"), "sla", "a value (missing)"),
    ("missing-perk-quota", _del("tiers", "business", "perks", "resource_monitoring"),
     "tiers.business.perks.resource_monitoring", "a value (missing)"),
    ("region-without-timezone", _del("regions", "cn-east-3", "timezone"),
     "regions.cn-east-3.timezone", "a value (missing)"),
]


@pytest.mark.parametrize(("mutate", "key", "expected"), [m[1:] for m in MUTATIONS],
                         ids=[m[0] for m in MUTATIONS])
def test_malformed_catalog_names_file_key_and_expectation(mutate: Mutation, key: str,
                                                          expected: str) -> None:
    data = copy.deepcopy(BUILTIN)
    mutate(data)
    with pytest.raises(CatalogError) as info:
        parse_catalog(yaml.safe_dump(data), "x.yaml")
    exc = info.value
    assert exc.source == "x.yaml"
    assert exc.key == key
    assert expected in exc.expected
    assert str(exc) == f"x.yaml: {key}: expected {exc.expected}"
    assert str(exc).startswith("x.yaml: ")


def test_unmutated_dump_still_parses() -> None:
    # guards the mutation table: a round trip through safe_dump alone is valid
    assert parse_catalog(yaml.safe_dump(BUILTIN), "x.yaml") == CATALOG


@pytest.mark.parametrize(("text", "key", "expected"), [
    ("tiers: [unclosed", "(file)", "valid YAML ("),
    ("sla: {near_breach_ratio: 0.8\n  oops: : :", "(file)", "valid YAML ("),
    ("- just\n- a list\n", "(root)", "a mapping"),
    ("", "(root)", "a mapping"),
])
def test_unparseable_catalog_text(text: str, key: str, expected: str) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(text, "x.yaml")
    assert info.value.key == key
    assert expected in info.value.expected
    assert str(info.value).startswith(f"x.yaml: {key}: expected ")


def test_catalog_error_is_a_value_error() -> None:
    assert issubclass(CatalogError, ValueError)
    exc = CatalogError("a.yaml", "tiers.basic", "a mapping")
    assert str(exc) == "a.yaml: tiers.basic: expected a mapping"


# --- load_catalog ---------------------------------------------------------------------

def test_load_catalog_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_catalog(str(missing))
    msg = str(info.value)
    assert msg.startswith("SUPPORTBOT_CATALOG: ")
    assert str(missing) in msg


def test_load_catalog_malformed_file(tmp_path: Path) -> None:
    data = copy.deepcopy(BUILTIN)
    data["sla"]["near_breach_ratio"] = 1.5
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    with pytest.raises(ConfigError) as info:
        load_catalog(str(path))
    msg = str(info.value)
    assert msg.startswith(f"SUPPORTBOT_CATALOG: {path}: sla.near_breach_ratio: expected ")
    assert isinstance(info.value.__cause__, CatalogError)
    assert info.value.__cause__.key == "sla.near_breach_ratio"


def test_load_catalog_from_valid_file(tmp_path: Path) -> None:
    data = copy.deepcopy(BUILTIN)
    data["tiers"]["business"]["response"]["S2"] = {"seconds": 90}
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    cat = load_catalog(str(path))
    assert cat.plan(BUSINESS).response[S2] == Target(seconds=90)
    assert cat.plan(ENTERPRISE) == CATALOG.plan(ENTERPRISE)


def test_config_error_is_not_a_catalog_error() -> None:
    assert not issubclass(ConfigError, CatalogError)
    assert set(CHANNELS) >= set(CATALOG.plan(ENTERPRISE).channels)


# --- target labels ---------------------------------------------------------------------

@pytest.mark.parametrize(("target", "label"), [
    (Target(seconds=600), "10m"),
    (Target(seconds=3 * 3600), "3h"),
    (Target(seconds=45), "45s"),
    (Target(business_days=1), "1bd"),
    (Target(business_days=12), "12bd"),
    (Target(seconds=90), "90s"),
    (Target(seconds=5400), "90m"),
    (Target(seconds=16 * 3600), "16h"),
    (Target.minutes(60), "1h"),
])
def test_target_label_round_trip(target: Target, label: str) -> None:
    assert target.label == label
    assert Target.parse_label(label) == target


def test_target_minutes() -> None:
    assert Target.minutes(30) == Target(seconds=1800)
    assert Target.minutes(30).business_days is None
