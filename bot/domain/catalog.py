"""The plan catalog: tiers, channels, response targets, perk quotas and fees, parsed from YAML.

Parsing is pure: callers read the file and pass its text and name, so a malformed catalog
can be reported with the file, the key and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.domain.model import Severity, Tier

# README quotes this text: keep the two alike
TARGET_FORMS = "{minutes: N}, {seconds: N}, {business_days: N} or null"


class CatalogError(ValueError):
    """A catalog file that does not match the expected format."""

    def __init__(self, source: str, key: str, expected: str) -> None:
        super().__init__(f"{source}: {key}: expected {expected}")
        self.source = source
        self.key = key
        self.expected = expected


PERKS = ("escort", "availability_check", "resource_monitoring")
CHANNELS = ("hotline", "tickets", "enterprise_phone", "im_group", "tam")


@dataclass(frozen=True, slots=True)
class Target:
    """A response target: seconds on the 7x24 clock, or business days on a region calendar.

    The catalog writes clock targets in minutes (seconds are accepted too, for test catalogs).
    """

    seconds: int | None = None
    business_days: int | None = None

    @classmethod
    def minutes(cls, n: int) -> Target:
        return cls(seconds=n * 60)

    @property
    def label(self) -> str:
        """Compact form stored with a case: `10m`, `3h`, `45s`, `1bd`."""
        if self.business_days is not None:
            return f"{self.business_days}bd"
        assert self.seconds is not None
        if self.seconds % 3600 == 0:
            return f"{self.seconds // 3600}h"
        if self.seconds % 60 == 0:
            return f"{self.seconds // 60}m"
        return f"{self.seconds}s"

    @classmethod
    def parse_label(cls, label: str) -> Target:
        number, unit = label[:-2] if label.endswith("bd") else label[:-1], label[-1]
        if label.endswith("bd"):
            return cls(business_days=int(number))
        return cls(seconds=int(number) * {"h": 3600, "m": 60, "s": 1}[unit])


@dataclass(frozen=True, slots=True)
class Bracket:
    upto: int | None  # upper bound of consumption in minor units; None = no bound
    rate_bp: int  # rate in basis points (1/100 of a percent)


@dataclass(frozen=True, slots=True)
class Fees:
    base: int  # minor units per month
    brackets: tuple[Bracket, ...]


@dataclass(frozen=True, slots=True)
class TierPlan:
    tier: Tier
    handler: str
    channels: tuple[str, ...]
    im_group: bool
    tam: bool
    third_party_support: bool
    response: dict[Severity, Target | None]
    file_as: dict[Severity, Severity]
    items: tuple[str, ...]
    perks: dict[str, int]
    escort_max_days_per_request: int
    fees: Fees

    def target_for(self, severity: Severity) -> tuple[Severity, Target]:
        """The severity a case is filed at on this tier and its target (e.g. developer S1 -> S2)."""
        filed = self.file_as.get(severity, severity)
        target = self.response.get(filed)
        if target is None:  # validated at load time; kept for type narrowing
            raise KeyError(f"{self.tier}: no target for {filed}")
        return filed, target


@dataclass(frozen=True, slots=True)
class Region:
    calendar: str
    timezone: str


@dataclass(frozen=True, slots=True)
class PerkRule:
    unit: str
    lead_business_days: int
    lead_rule: str  # "warn" or "refuse"


@dataclass(frozen=True, slots=True)
class Software:
    """One row of the third-party software support table."""

    name: str
    aliases: tuple[str, ...]
    category: str
    versions: dict[str, str]  # language -> text
    help: dict[str, str]

    def matches(self, text: str) -> bool:
        key = " ".join(text.lower().split())
        return key == self.name.lower() or key in self.aliases


@dataclass(frozen=True, slots=True)
class Catalog:
    currency: str
    near_breach_ratio: float
    escort_target_seconds: int
    escort_severities: frozenset[Severity]
    service_exclusions: frozenset[str]
    default_region: str
    regions: dict[str, Region]
    max_tier_changes_per_year: int
    perk_rules: dict[str, PerkRule]
    tiers: dict[Tier, TierPlan] = field(default_factory=dict)
    third_party: tuple[Software, ...] = ()

    def software(self, text: str) -> Software | None:
        return next((sw for sw in self.third_party if sw.matches(text)), None)

    def plan(self, tier: Tier) -> TierPlan:
        return self.tiers[tier]

    def region(self, name: str) -> Region:
        return self.regions.get(name) or self.regions[self.default_region]


class _Reader:
    """Walks the parsed YAML and raises CatalogError naming the dotted key on a mismatch."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str) -> CatalogError:
        return CatalogError(self.source, key, expected)

    def mapping(self, obj: Any, key: str) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise self.fail(key, "a mapping")
        return obj

    def get(self, obj: dict[str, Any], name: str, key: str) -> Any:
        if name not in obj:
            raise self.fail(f"{key}.{name}" if key else name, "a value (missing)")
        return obj[name]

    def int_(self, obj: dict[str, Any], name: str, key: str, minimum: int = 0) -> int:
        v = self.get(obj, name, key)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(f"{key}.{name}", f"a whole number >= {minimum}")
        return v

    def bool_(self, obj: dict[str, Any], name: str, key: str) -> bool:
        v = self.get(obj, name, key)
        if not isinstance(v, bool):
            raise self.fail(f"{key}.{name}", "true or false")
        return v

    def str_(self, obj: dict[str, Any], name: str, key: str) -> str:
        v = self.get(obj, name, key)
        if not isinstance(v, str) or not v:
            raise self.fail(f"{key}.{name}", "a non-empty string")
        return v

    def texts(self, obj: dict[str, Any], name: str, key: str) -> dict[str, str]:
        """A customer-facing text in both shipped languages: {en: ..., zh: ...}."""
        v = self.mapping(self.get(obj, name, key), f"{key}.{name}")
        for lang in ("en", "zh"):
            if not isinstance(v.get(lang), str) or not v[lang]:
                raise self.fail(f"{key}.{name}.{lang}", "a non-empty text (en and zh are both "
                                "required)")
        return {str(k): str(t) for k, t in v.items()}

    def str_list(self, obj: dict[str, Any], name: str, key: str) -> tuple[str, ...]:
        v = self.get(obj, name, key)
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.fail(f"{key}.{name}", "a list of strings")
        return tuple(v)


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    """Parse and validate catalog YAML text; raise CatalogError on the first problem."""
    r = _Reader(source)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(source, "(file)", f"valid YAML ({exc})") from exc
    root = r.mapping(raw, "(root)")

    sla = r.mapping(r.get(root, "sla", ""), "sla")
    ratio = r.get(sla, "near_breach_ratio", "sla")
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 1:
        raise r.fail("sla.near_breach_ratio", "a number between 0 and 1 (exclusive)")
    escort_sevs = []
    for s in r.str_list(sla, "escort_severities", "sla"):
        sev = Severity.parse(s)
        if sev is None:
            raise r.fail("sla.escort_severities", "severities S1..S5")
        escort_sevs.append(sev)

    regions_raw = r.mapping(r.get(root, "regions", ""), "regions")
    regions: dict[str, Region] = {}
    for name, reg in regions_raw.items():
        reg_map = r.mapping(reg, f"regions.{name}")
        regions[str(name)] = Region(
            calendar=r.str_(reg_map, "calendar", f"regions.{name}"),
            timezone=r.str_(reg_map, "timezone", f"regions.{name}"),
        )
    default_region = r.str_(root, "default_region", "")
    if default_region not in regions:
        raise r.fail("default_region", f"one of the regions ({', '.join(regions)})")

    changes = r.mapping(r.get(root, "plan_changes", ""), "plan_changes")
    perks_raw = r.mapping(r.get(root, "perks", ""), "perks")
    perk_rules: dict[str, PerkRule] = {}
    for perk in PERKS:
        pr = r.mapping(r.get(perks_raw, perk, "perks"), f"perks.{perk}")
        rule = r.str_(pr, "lead_rule", f"perks.{perk}")
        if rule not in ("warn", "refuse"):
            raise r.fail(f"perks.{perk}.lead_rule", "warn or refuse")
        perk_rules[perk] = PerkRule(
            unit=r.str_(pr, "unit", f"perks.{perk}"),
            lead_business_days=r.int_(pr, "lead_business_days", f"perks.{perk}"),
            lead_rule=rule,
        )

    tiers_raw = r.mapping(r.get(root, "tiers", ""), "tiers")
    tiers: dict[Tier, TierPlan] = {}
    for tier in Tier:
        tiers[tier] = _parse_tier(r, tier, r.mapping(r.get(tiers_raw, tier.value, "tiers"),
                                                     f"tiers.{tier.value}"))
    unknown = set(tiers_raw) - {t.value for t in Tier}
    if unknown:
        raise r.fail(f"tiers.{sorted(unknown)[0]}", "one of basic, developer, business, enterprise")

    third_party: list[Software] = []
    raw_tp = root.get("third_party", [])
    if not isinstance(raw_tp, list):
        raise r.fail("third_party", "a list of software entries")
    for i, item in enumerate(raw_tp):
        k = f"third_party[{i}]"
        m = r.mapping(item, k)
        third_party.append(Software(
            name=r.str_(m, "name", k),
            aliases=tuple(a.lower() for a in r.str_list(m, "aliases", k)),
            category=r.str_(m, "category", k), versions=r.texts(m, "versions", k),
            help=r.texts(m, "help", k)))

    return Catalog(
        third_party=tuple(third_party),
        currency=r.str_(root, "currency", ""),
        near_breach_ratio=float(ratio),
        escort_target_seconds=60 * r.int_(sla, "escort_target_minutes", "sla", 1),
        escort_severities=frozenset(escort_sevs),
        service_exclusions=frozenset(r.str_list(root, "service_exclusions", "")),
        default_region=default_region,
        regions=regions,
        max_tier_changes_per_year=r.int_(changes, "max_tier_changes_per_year", "plan_changes"),
        perk_rules=perk_rules,
        tiers=tiers,
    )


def _parse_tier(r: _Reader, tier: Tier, t: dict[str, Any]) -> TierPlan:
    key = f"tiers.{tier.value}"
    resp_raw = r.mapping(r.get(t, "response", key), f"{key}.response")
    response: dict[Severity, Target | None] = {}
    for sev in Severity:
        k = f"{key}.response.{sev.value}"
        v = r.get(resp_raw, sev.value, f"{key}.response")
        if v is None:
            response[sev] = None
            continue
        # a bare `4h` or `30` gets the same answer as a wrong key: the forms that work
        m = v if isinstance(v, dict) else {}
        if set(m) == {"minutes"}:
            response[sev] = Target.minutes(r.int_(m, "minutes", k, 1))
        elif set(m) == {"seconds"}:
            response[sev] = Target(seconds=r.int_(m, "seconds", k, 1))
        elif set(m) == {"business_days"}:
            response[sev] = Target(business_days=r.int_(m, "business_days", k, 1))
        else:
            raise r.fail(k, TARGET_FORMS)
    file_as: dict[Severity, Severity] = {}
    for src, dst in r.mapping(t.get("file_as", {}), f"{key}.file_as").items():
        s, d = Severity.parse(str(src)), Severity.parse(str(dst))
        if s is None or d is None or response.get(d) is None:
            raise r.fail(f"{key}.file_as.{src}", "a severity offered by this tier")
        file_as[s] = d
    for sev, target in response.items():
        if target is None and sev not in file_as:
            raise r.fail(f"{key}.file_as.{sev.value}",
                         f"the severity to file {sev.value} as (it has no target)")
    channels = r.str_list(t, "channels", key)
    for ch in channels:
        if ch not in CHANNELS:
            raise r.fail(f"{key}.channels", f"channels among {', '.join(CHANNELS)}")
    perks_raw = r.mapping(r.get(t, "perks", key), f"{key}.perks")
    perks = {p: r.int_(perks_raw, p, f"{key}.perks") for p in PERKS}
    fees_raw = r.mapping(r.get(t, "fees", key), f"{key}.fees")
    brackets: list[Bracket] = []
    last = 0
    raw_brackets = r.get(fees_raw, "brackets", f"{key}.fees")
    if not isinstance(raw_brackets, list):
        raise r.fail(f"{key}.fees.brackets", "a list of {upto, rate_bp}")
    for i, b in enumerate(raw_brackets):
        bk = f"{key}.fees.brackets[{i}]"
        bm = r.mapping(b, bk)
        upto = bm.get("upto")
        if upto is not None and (not isinstance(upto, int) or upto <= last):
            raise r.fail(f"{bk}.upto", f"a whole number above {last}, or null for the last")
        if upto is None and i != len(raw_brackets) - 1:
            raise r.fail(f"{bk}.upto", "a bound (only the last bracket may be open)")
        brackets.append(Bracket(upto=upto, rate_bp=r.int_(bm, "rate_bp", bk)))
        last = upto or last
    return TierPlan(
        tier=tier,
        handler=r.str_(t, "handler", key),
        channels=channels,
        im_group=r.bool_(t, "im_group", key),
        tam=r.bool_(t, "tam", key),
        third_party_support=r.bool_(t, "third_party_support", key),
        response=response,
        file_as=file_as,
        items=r.str_list(t, "items", key),
        perks=perks,
        escort_max_days_per_request=r.int_(t, "escort_max_days_per_request", key),
        fees=Fees(base=r.int_(fees_raw, "base", f"{key}.fees"), brackets=tuple(brackets)),
    )
