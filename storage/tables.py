"""Typed SQLAlchemy 2 tables. The schema itself is made only by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# a chat platform's id as the core knows it: Slack's bare ids, other platforms' qualified
# ones (`wecom:<chatid>`; WeCom user ids alone may have 64 characters)
CHAT_ID_LENGTH = 128
ChatId = String(CHAT_ID_LENGTH)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps naive text, so re-attach UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        if value.tzinfo is not UTC:  # most are UTC already: spare the conversion
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BIGINT ids on PostgreSQL, INTEGER (the rowid alias) on SQLite
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class AccountRow(Base):
    __tablename__ = "accounts"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(16))
    term: Mapped[str] = mapped_column(String(16))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    region: Mapped[str] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64))
    lang: Mapped[str] = mapped_column(String(8))
    team_id: Mapped[str | None] = mapped_column(ChatId)
    tam_user_id: Mapped[str | None] = mapped_column(ChatId)
    perk_tier: Mapped[str | None] = mapped_column(String(16))
    cancelled_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]


class ChannelBindingRow(Base):
    __tablename__ = "channel_bindings"
    channel_id: Mapped[str] = mapped_column(ChatId, primary_key=True)
    team_id: Mapped[str] = mapped_column(ChatId)
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), index=True)
    bound_by: Mapped[str] = mapped_column(ChatId)
    bound_at: Mapped[datetime]


class StaffRow(Base):
    __tablename__ = "staff"
    team_id: Mapped[str] = mapped_column(ChatId, primary_key=True)
    user_id: Mapped[str] = mapped_column(ChatId, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    lang: Mapped[str] = mapped_column(String(8), default="en")
    added_by: Mapped[str] = mapped_column(ChatId)
    added_at: Mapped[datetime]


class UserPrefRow(Base):
    """A user's own settings (language), kept apart from roles."""

    __tablename__ = "user_prefs"
    team_id: Mapped[str] = mapped_column(ChatId, primary_key=True)
    user_id: Mapped[str] = mapped_column(ChatId, primary_key=True)
    lang: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime]


class CaseRow(Base):
    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str | None] = mapped_column(String(24), unique=True)
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), index=True)
    team_id: Mapped[str] = mapped_column(ChatId)
    channel_id: Mapped[str] = mapped_column(ChatId)
    opener_user_id: Mapped[str] = mapped_column(ChatId)
    severity: Mapped[str] = mapped_column(String(4))
    requested_severity: Mapped[str] = mapped_column(String(4))
    summary: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    region: Mapped[str | None] = mapped_column(String(64))
    software: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    opened_at: Mapped[datetime]
    due_at: Mapped[datetime]
    warn_at: Mapped[datetime]
    target_label: Mapped[str] = mapped_column(String(16))
    sla_generation: Mapped[int] = mapped_column(Integer, default=1)
    escort: Mapped[bool] = mapped_column(Boolean, default=False)
    first_response_at: Mapped[datetime | None]
    first_response_by: Mapped[str | None] = mapped_column(ChatId)
    resolved_at: Mapped[datetime | None]
    warned: Mapped[bool] = mapped_column(Boolean, default=False)
    breached: Mapped[bool] = mapped_column(Boolean, default=False)
    card_ts: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (Index("ix_cases_channel_card", "channel_id", "card_ts"),)


class AuditRow(Base):
    """Append-only audit log: who did what, when, before and after (and refusals, with why)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    team_id: Mapped[str | None] = mapped_column(ChatId)
    actor: Mapped[str] = mapped_column(ChatId)
    action: Mapped[str] = mapped_column(String(64))
    account_key: Mapped[str | None] = mapped_column(String(64), index=True)
    case_id: Mapped[int | None] = mapped_column(BigId, index=True)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    reason: Mapped[str | None] = mapped_column(Text)


class JobRow(Base):
    """A durable timer or outbound message (the outbox)."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]

    __table_args__ = (Index("ix_jobs_status_due", "status", "due_at"),)


class InboxRow(Base):
    """Inbound Slack event ids already processed (deduplication of retries)."""

    __tablename__ = "inbox"
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime]


class PerkRequestRow(Base):
    """A customer's request for an annual perk (escort days or a review)."""

    __tablename__ = "perk_requests"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), index=True)
    perk: Mapped[str] = mapped_column(String(32))
    start_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(Integer)  # days for escort, 1 for a review
    plan_year_start: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    channel_id: Mapped[str] = mapped_column(ChatId)
    requested_by: Mapped[str] = mapped_column(ChatId)
    requested_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(ChatId)
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)


class PerkLedgerRow(Base):
    """Append-only perk ledger: holds, releases and consumptions per plan year."""

    __tablename__ = "perk_ledger"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), index=True)
    perk: Mapped[str] = mapped_column(String(32))
    plan_year_start: Mapped[date] = mapped_column(Date)
    entry: Mapped[str] = mapped_column(String(16))  # hold | release | consume
    amount: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[int | None] = mapped_column(BigId)
    at: Mapped[datetime]


class UsageRow(Base):
    """A month's (or one day's) cloud consumption at list price (minor units), recorded by
    staff: `month` is `YYYY-MM` for a month's figure, `YYYY-MM-DD` for a day's."""

    __tablename__ = "account_usage"
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), primary_key=True)
    month: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM[-DD]
    amount: Mapped[int] = mapped_column(BigInteger)
    recorded_by: Mapped[str] = mapped_column(ChatId)
    recorded_at: Mapped[datetime]


class PlanChangeRow(Base):
    """An applied plan change with the money it moved (minor units; + charge, - refund)."""

    __tablename__ = "plan_changes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    old_tier: Mapped[str] = mapped_column(String(16))
    new_tier: Mapped[str | None] = mapped_column(String(16))
    effective: Mapped[date] = mapped_column(Date)
    due_now: Mapped[int] = mapped_column(BigInteger)
    incremental_old: Mapped[int | None] = mapped_column(BigInteger)
    incremental_new: Mapped[int | None] = mapped_column(BigInteger)
    by: Mapped[str] = mapped_column(ChatId)
    at: Mapped[datetime]


class AccountTagRow(Base):
    """What an account runs (regions, products, third-party software): advisory targeting."""

    __tablename__ = "account_tags"
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True)


class AdvisoryRow(Base):
    """A proactive-care advisory and where its progress message lives."""

    __tablename__ = "advisories"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(ChatId)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    targeting: Mapped[dict[str, Any]]  # regions, products, software, accounts
    created_by: Mapped[str] = mapped_column(ChatId)
    created_at: Mapped[datetime]
    total: Mapped[int] = mapped_column(Integer)
    progress_channel: Mapped[str | None] = mapped_column(ChatId)
    progress_ts: Mapped[str | None] = mapped_column(String(32))
    # the same advisory confirmed twice (a double click) is sent once
    dedupe_key: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("dedupe_key", name="uq_advisories_dedupe_key"),)


class AdvisoryDeliveryRow(Base):
    """One advisory message to one group: pending, sent or failed; and its acknowledgement."""

    __tablename__ = "advisory_deliveries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    advisory_id: Mapped[int] = mapped_column(ForeignKey("advisories.id"), index=True)
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), index=True)
    channel_id: Mapped[str] = mapped_column(ChatId)
    status: Mapped[str] = mapped_column(String(16))
    ts: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None]
    acked_by: Mapped[str | None] = mapped_column(ChatId)
    acked_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("advisory_id", "channel_id"),)


class ReportRow(Base):
    """A monthly service report posted to an account's group."""

    __tablename__ = "reports"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), index=True)
    month: Mapped[str] = mapped_column(String(7))
    trigger: Mapped[str] = mapped_column(String(16))  # scheduled | on_demand
    deadline: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime]
    channel_id: Mapped[str | None] = mapped_column(ChatId)
    ts: Mapped[str | None] = mapped_column(String(32))
    figures: Mapped[dict[str, Any] | None]


class UserAccountRow(Base):
    """Which account's group a customer user has used: their App Home shows that account."""

    __tablename__ = "user_accounts"
    team_id: Mapped[str] = mapped_column(ChatId, primary_key=True)
    user_id: Mapped[str] = mapped_column(ChatId, primary_key=True)
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), primary_key=True)
    channel_id: Mapped[str | None] = mapped_column(ChatId)  # the group they used
    last_seen: Mapped[datetime]


class HomeViewerRow(Base):
    """Users who have opened the App Home: refreshed when something they see changes."""

    __tablename__ = "home_viewers"
    team_id: Mapped[str] = mapped_column(ChatId, primary_key=True)
    user_id: Mapped[str] = mapped_column(ChatId, primary_key=True)
    opened_at: Mapped[datetime]


class GroupSecretRow(Base):
    """A group's delivery address for platforms that need one (a WeCom push webhook key),
    encrypted by the service layer before it gets here: this table only keeps the bytes."""

    __tablename__ = "group_secrets"
    channel_id: Mapped[str] = mapped_column(ChatId, primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]


class IncidentRow(Base):
    """A platform incident declared by staff: one region, maybe some products."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(ChatId)
    region: Mapped[str] = mapped_column(String(64))
    products: Mapped[list[str]] = mapped_column(JSON)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    declared_by: Mapped[str] = mapped_column(ChatId)
    declared_at: Mapped[datetime]
    latest: Mapped[str | None] = mapped_column(Text)
    latest_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(ChatId)
    resolved_at: Mapped[datetime | None]


class IncidentPostRow(Base):
    """One broadcast of an incident to its groups (declaration, update, resolution)."""

    __tablename__ = "incident_posts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    respond: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(ChatId)
    created_at: Mapped[datetime]
    total: Mapped[int] = mapped_column(Integer)
    progress_channel: Mapped[str | None] = mapped_column(ChatId)
    progress_ts: Mapped[str | None] = mapped_column(String(32))


class IncidentDeliveryRow(Base):
    """One incident post to one group: pending, sent or failed."""

    __tablename__ = "incident_deliveries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("incident_posts.id"), index=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), index=True)
    channel_id: Mapped[str] = mapped_column(ChatId)
    status: Mapped[str] = mapped_column(String(16))
    ts: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("post_id", "channel_id"),)


class IncidentCaseRow(Base):
    """A case linked to an incident (opened in an affected group meanwhile, or by staff)."""

    __tablename__ = "incident_cases"
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True, index=True)
    linked_by: Mapped[str] = mapped_column(ChatId)
    linked_at: Mapped[datetime]


class ReportSettingRow(Base):
    """An account's monthly-report setting: skipped (and why) when data cannot be collected
    (a proof-of-concept stage, dedicated cloud); no row means reports are produced."""

    __tablename__ = "report_settings"
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), primary_key=True)
    skip_reason: Mapped[str | None] = mapped_column(String(16))  # poc | dedicated
    set_by: Mapped[str] = mapped_column(ChatId)
    set_at: Mapped[datetime]


class ReportRecipientRow(Base):
    """An email address an account's monthly report is sent to."""

    __tablename__ = "report_recipients"
    account_key: Mapped[str] = mapped_column(ForeignKey("accounts.key"), primary_key=True)
    address: Mapped[str] = mapped_column(String(254), primary_key=True)
    added_by: Mapped[str] = mapped_column(ChatId)
    added_at: Mapped[datetime]


class DigestRow(Base):
    """One staff message gathering the near-breach and breach notices to one recipient (a
    TAM's DM or the duty channel) within a window: posted once, then updated in place.
    `version` counts its items; `shown_version` is the one last posted or updated. A sender
    holds the message (`held_by` until `held_until`) while it posts or updates it, so two
    replicas never post it twice or update it out of order."""

    __tablename__ = "digests"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(160))  # user:<id> | channel:<id>
    lang: Mapped[str] = mapped_column(String(8))
    opened_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=0)
    shown_version: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str | None] = mapped_column(ChatId)
    ts: Mapped[str | None] = mapped_column(String(64))
    posts_tried: Mapped[int] = mapped_column(Integer, default=0)
    held_by: Mapped[str | None] = mapped_column(String(64))
    held_until: Mapped[datetime | None]

    __table_args__ = (Index("ix_digests_recipient_closes", "recipient", "closes_at"),)


class DigestItemRow(Base):
    """A case's notice in a digest; its key (the notice's own) is unique, so a notice is in
    one digest once."""

    __tablename__ = "digest_items"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    digest_id: Mapped[int] = mapped_column(BigId, ForeignKey("digests.id"), index=True)
    notice_key: Mapped[str] = mapped_column(String(200), unique=True)
    case_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(16))  # warn | breach
    due_at: Mapped[datetime]
    fired_at: Mapped[datetime]
    incident: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
