"""Proactive-care advisories (rulebook §6): kinds, severities and who an advisory reaches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from bot.domain.catalog import Catalog
from bot.domain.model import Account, DeliveryStatus

KINDS = ("vulnerability", "virus", "attack", "backbone_failure", "platform_change",
         "new_feature")
SEVERITIES = ("low", "medium", "high", "critical")
REMINDED = frozenset({"high", "critical"})  # unacknowledged ones remind the TAM once
TAG_KINDS = ("region", "product", "software")


@dataclass(frozen=True)
class Targeting:
    """Filters; empty means "any". `accounts` set = chosen accounts instead of all."""

    regions: frozenset[str] = frozenset()
    products: frozenset[str] = frozenset()
    software: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, list[str]]:
        return {"regions": sorted(self.regions), "products": sorted(self.products),
                "software": sorted(self.software), "accounts": sorted(self.accounts)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Iterable[str]]) -> Targeting:
        return cls(*(frozenset(d.get(k, ())) for k in ("regions", "products", "software",
                                                        "accounts")))


@dataclass(frozen=True)
class AccountProfile:
    account: Account
    tags: Mapping[str, frozenset[str]] = field(default_factory=dict)  # kind -> values


def proactive_care(catalog: Catalog, account: Account) -> bool:
    """Whether the account's tier includes proactive care (seed §5.7: enterprise only)."""
    return "proactive_care" in catalog.plan(account.tier).items


def reaches(catalog: Catalog, profile: AccountProfile, targeting: Targeting,
            today: date) -> bool:
    """Whether an advisory with this targeting goes to the account's groups."""
    account = profile.account
    if not account.in_force(today):
        return False
    if not proactive_care(catalog, account):
        return False  # an enterprise entitlement, also for accounts named one by one
    if targeting.accounts and account.key not in targeting.accounts:
        return False
    regions = profile.tags.get("region", frozenset()) | {account.region}
    if targeting.regions and not targeting.regions & regions:
        return False
    if targeting.products and not targeting.products & profile.tags.get("product", frozenset()):
        return False
    return not (targeting.software and
                not targeting.software & profile.tags.get("software", frozenset()))


@dataclass(frozen=True)
class Audience:
    """An account as advisory targeting sees it, with the groups bound to it (oldest first)."""

    profile: AccountProfile
    channels: tuple[str, ...]


@dataclass(frozen=True)
class NewAdvisory:
    team_id: str
    title: str
    kind: str
    severity: str
    body: str
    targeting: Targeting
    created_by: str
    created_at: datetime
    total: int  # groups it goes to
    dedupe_key: str | None = None


@dataclass(frozen=True)
class Advisory:
    """A proactive-care advisory and where its sender's progress message lives."""

    id: int
    team_id: str
    title: str
    kind: str
    severity: str
    body: str
    targeting: Targeting
    created_by: str
    created_at: datetime
    total: int
    progress_channel: str | None = None
    progress_ts: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One advisory message to one group, and the account's acknowledgement."""

    advisory_id: int
    account_key: str
    channel_id: str
    status: DeliveryStatus
    ts: str | None = None
    error: str | None = None
    sent_at: datetime | None = None
    acked_by: str | None = None
    acked_at: datetime | None = None


def no_counts() -> dict[str, int]:
    """Deliveries per status (keyed by `DeliveryStatus`, a str), every status present."""
    return dict.fromkeys(DeliveryStatus, 0)


@dataclass(frozen=True)
class Unacknowledged:
    """A sent advisory some accounts have not acknowledged yet."""

    advisory_id: int
    title: str
    severity: str
    waiting: int  # accounts


class AdvisorySummary(NamedTuple):
    """An advisory with its deliveries per status and how many accounts acknowledged it."""

    advisory: Advisory
    counts: dict[str, int]  # keyed by DeliveryStatus
    acked: int
