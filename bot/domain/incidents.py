"""Platform incidents: a regional outage declared by staff, the groups it affects and the
cases it ties together. Pure rules: no I/O, `today` is an argument."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime

from bot.domain.advisories import AccountProfile
from bot.domain.catalog import Catalog


class IncidentStatus(enum.StrEnum):
    OPEN = "open"  # new cases in affected groups are linked to it
    RESOLVED = "resolved"


class PostKind(enum.StrEnum):
    """What one broadcast of an incident says to its groups."""

    DECLARED = "declared"
    UPDATE = "update"
    RESOLVED = "resolved"


def incident_ref(incident_id: int) -> str:
    """Reference of an incident, e.g. `INC-1001`."""
    return f"INC-{1000 + incident_id}"


def parse_incident_ref(text: str) -> int | None:
    """The incident id for `INC-1001` (any case, optional `#`), or None."""
    t = text.strip().upper().lstrip("#")
    t = t[4:] if t.startswith("INC-") else t
    if not (t.isascii() and t.isdecimal()) or len(t) > 12 or int(t) <= 1000:
        return None
    return int(t) - 1000


@dataclass(frozen=True)
class Scope:
    """Where an incident is: one region and, optionally, the products it hits (empty: every
    product in the region)."""

    region: str
    products: frozenset[str] = frozenset()


def affects(catalog: Catalog, profile: AccountProfile, scope: Scope, today: date) -> bool:
    """Whether an incident in `scope` affects the account's groups.

    The account must be in force and on a tier with an IM group (only those have groups);
    its region, or one of its region tags, is the incident's; when the incident names
    products, the account runs one of them (its product tags). **[decision]** An account
    without product tags is not reached by an incident that names products: tags say what
    an account runs, as for advisories; an incident without `products=` reaches it.
    """
    account = profile.account
    if not account.in_force(today) or not catalog.plan(account.tier).im_group:
        return False
    regions = profile.tags.get("region", frozenset()) | {account.region}
    if scope.region not in regions:
        return False
    return not scope.products or bool(scope.products & profile.tags.get("product",
                                                                        frozenset()))


def links_new_case(scope: Scope, case_region: str | None) -> bool:
    """A case opened in an affected group is linked to the open incident unless it says
    it is about another region."""
    return case_region is None or case_region == scope.region


@dataclass(frozen=True)
class Incident:
    id: int
    team_id: str
    scope: Scope
    title: str
    status: IncidentStatus
    declared_by: str
    declared_at: datetime
    latest: str | None = None  # the latest update's text (None: no update yet)
    latest_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None

    @property
    def ref(self) -> str:
        return incident_ref(self.id)

    @property
    def is_open(self) -> bool:
        return self.status is IncidentStatus.OPEN


@dataclass(frozen=True)
class IncidentPost:
    """One broadcast of an incident (declaration, update, resolution) and where its
    sender's progress message lives."""

    id: int
    incident_id: int
    kind: PostKind
    body: str
    respond: bool
    created_by: str
    created_at: datetime
    total: int  # groups it goes to
    team_id: str
    progress_channel: str | None = None
    progress_ts: str | None = None


@dataclass(frozen=True)
class LinkedCase:
    """A case linked to an incident, as lists of an incident's cases show it."""

    case_id: int
    ref: str
    account_key: str
    channel_id: str
    severity: str
    summary: str
    status: str
    awaiting: bool  # still waiting for its first response
    due_at: datetime


@dataclass(frozen=True)
class IncidentSummary:
    """An incident with its figures for staff lists."""

    incident: Incident
    groups: int  # groups reached so far (distinct)
    linked: int
    waiting: int  # linked cases still waiting for a first response
