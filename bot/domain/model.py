"""Core vocabulary of the support-plan rules: tiers, terms, severities, roles, accounts, cases."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any


class Tier(enum.StrEnum):
    BASIC = "basic"
    DEVELOPER = "developer"
    BUSINESS = "business"
    ENTERPRISE = "enterprise"

    @property
    def rank(self) -> int:
        return list(Tier).index(self)

    @classmethod
    def parse(cls, text: str) -> Tier | None:
        try:
            return cls(text.strip().lower())
        except ValueError:
            return None


class Term(enum.StrEnum):
    MONTHLY = "monthly"
    ANNUAL = "annual"

    @classmethod
    def parse(cls, text: str) -> Term | None:
        try:
            return cls(text.strip().lower())
        except ValueError:
            return None


class Severity(enum.StrEnum):
    S1 = "S1"
    S2 = "S2"
    S3 = "S3"
    S4 = "S4"
    S5 = "S5"

    @property
    def alias(self) -> str:
        return _SEVERITY_ALIASES[self]

    @classmethod
    def parse(cls, text: str) -> Severity | None:
        """Accept `S1`..`S5` (any case) or the aliases `core-down` .. `guidance`."""
        key = text.strip().lower()
        for sev, alias in _SEVERITY_ALIASES.items():
            if key in (sev.value.lower(), alias):
                return sev
        return None


_SEVERITY_ALIASES: dict[Severity, str] = {
    Severity.S1: "core-down",
    Severity.S2: "prod-down",
    Severity.S3: "prod-impaired",
    Severity.S4: "impaired",
    Severity.S5: "guidance",
}

SEVERITY_CHOICES = ", ".join(f"{s.value}/{s.alias}" for s in Severity)


class Role(enum.StrEnum):
    ADMIN = "admin"
    TAM = "tam"
    ENGINEER = "engineer"

    @classmethod
    def parse(cls, text: str) -> Role | None:
        try:
            return cls(text.strip().lower())
        except ValueError:
            return None


class Lang(enum.StrEnum):
    EN = "en"
    ZH = "zh"

    @classmethod
    def parse(cls, text: str) -> Lang | None:
        try:
            return cls(text.strip().lower())
        except ValueError:
            return None


class CaseStatus(enum.StrEnum):
    OPEN = "open"  # waiting for the first response
    ACKNOWLEDGED = "acknowledged"  # first response given, work in progress
    RESOLVED = "resolved"  # resolved by staff
    CLOSED = "closed"  # closed by the customer

    @property
    def is_active(self) -> bool:
        return self in (CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED)


@dataclass(frozen=True, slots=True)
class Account:
    """A customer account holding one Support Plan."""

    key: str
    name: str
    tier: Tier
    term: Term
    start: date
    end: date
    region: str
    timezone: str
    lang: Lang
    tam_user_id: str | None = None
    team_id: str | None = None
    # The tier whose perk quotas apply this plan year: the one bought. A mid-term upgrade
    # keeps it (quotas are not adjusted, §7); a downgrade lowers it. None = `tier`.
    perk_tier: Tier | None = None
    cancelled_on: date | None = None  # unsubscribed: no new cases or requests from this date

    def in_force(self, today: date) -> bool:
        return self.cancelled_on is None or today < self.cancelled_on

    @property
    def last_day(self) -> date:
        """The term's last day (`end` is exclusive; people read terms inclusively)."""
        return self.end - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class StaffMember:
    team_id: str
    user_id: str
    role: Role
    lang: Lang = Lang.EN


@dataclass(frozen=True, slots=True)
class Case:
    """A customer's support case and the state of its response clock."""

    id: int
    ref: str
    account_key: str
    team_id: str
    channel_id: str
    opener_user_id: str
    severity: Severity
    requested_severity: Severity
    summary: str
    description: str
    region: str | None
    software: str | None
    status: CaseStatus
    opened_at: datetime
    due_at: datetime
    target_label: str
    sla_generation: int
    escort: bool = False
    first_response_at: datetime | None = None
    first_response_by: str | None = None
    resolved_at: datetime | None = None
    warned: bool = False
    breached: bool = False
    card_ts: str | None = None
    version: int = 1

    @property
    def awaiting_first_response(self) -> bool:
        return self.status is CaseStatus.OPEN and self.first_response_at is None


def case_ref(case_id: int) -> str:
    """Short human reference shown in every message about a case."""
    return f"CS-{1000 + case_id}"


def parse_case_ref(text: str) -> int | None:
    """Return the case id for `CS-1042` (any case, optional `#`), or None."""
    t = text.strip().upper().lstrip("#")
    if t.startswith("CS-"):
        t = t[3:]
    if not (t.isascii() and t.isdecimal()) or len(t) > 12:
        return None
    n = int(t)
    return n - 1000 if n > 1000 else None


def _parse_ref(text: str, prefix: str) -> int | None:
    t = text.strip().upper().lstrip("#")
    t = t[len(prefix):] if t.startswith(prefix) else t
    if not (t.isascii() and t.isdecimal()) or len(t) > 12 or int(t) <= 1000:
        return None
    return int(t) - 1000


def request_ref(request_id: int) -> str:
    """Reference of a perk request, e.g. `PR-1001`."""
    return f"PR-{1000 + request_id}"


def parse_request_ref(text: str) -> int | None:
    return _parse_ref(text, "PR-")


def advisory_ref(advisory_id: int) -> str:
    """Reference of an advisory, e.g. `AD-1001`."""
    return f"AD-{1000 + advisory_id}"


def parse_advisory_ref(text: str) -> int | None:
    return _parse_ref(text, "AD-")


class RequestStatus(enum.StrEnum):
    """Where a perk request stands; stored as its value."""

    PENDING = "pending"  # the quota is held until a TAM decides
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"  # withdrawn by the customer


class LedgerEntry(enum.StrEnum):
    """A line of the append-only perk ledger."""

    HOLD = "hold"  # a pending request reserves quota
    RELEASE = "release"  # the hold ends (decided or withdrawn)
    CONSUME = "consume"  # an approved request uses quota


class DeliveryStatus(enum.StrEnum):
    """One advisory message to one group."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # the group could not be reached


@dataclass(frozen=True, slots=True)
class PerkRequest:
    """A customer's request for an annual perk (escort days or a review)."""

    id: int
    account_key: str
    perk: str
    start_date: date
    amount: int  # days for escort, 1 for a review
    plan_year_start: date
    status: RequestStatus
    channel_id: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class NewPerkRequest:
    account_key: str
    perk: str
    start_date: date
    amount: int
    plan_year_start: date
    channel_id: str
    requested_by: str
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class NewCase:
    """A case about to be opened: what the opener said and the terms its clock runs on."""

    account_key: str
    team_id: str
    channel_id: str
    opener_user_id: str
    severity: Severity
    requested_severity: Severity
    summary: str
    description: str
    region: str | None
    software: str | None
    opened_at: datetime
    due_at: datetime
    warn_at: datetime
    target_label: str
    escort: bool = False


@dataclass(frozen=True, slots=True)
class CaseChange:
    """What a case update changes; a field left None stays as it is."""

    status: CaseStatus | None = None
    severity: Severity | None = None
    due_at: datetime | None = None
    warn_at: datetime | None = None
    target_label: str | None = None
    sla_generation: int | None = None
    escort: bool | None = None
    first_response_at: datetime | None = None
    first_response_by: str | None = None
    resolved_at: datetime | None = None
    warned: bool | None = None
    breached: bool | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the append-only audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    team_id: str | None = None
    account_key: str | None = None
    case_id: int | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PlanChange:
    """An applied plan change with the money it moved (minor units; + charge, - refund)."""

    account_key: str
    kind: str  # upgrade | downgrade | unsubscribe | renew
    old_tier: str
    new_tier: str | None
    effective: date
    due_now: int
    incremental_old: int | None
    incremental_new: int | None
    by: str
    at: datetime
    id: int | None = None  # assigned when stored
