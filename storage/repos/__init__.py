"""Repositories: queries on one session (one transaction) that return domain objects."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import (
    Account,
    Case,
    CaseStatus,
    Lang,
    Role,
    Severity,
    StaffMember,
    Term,
    Tier,
    case_ref,
)
from storage.tables import (
    AccountRow,
    AuditRow,
    CaseRow,
    ChannelBindingRow,
    InboxRow,
    PerkLedgerRow,
    PerkRequestRow,
    PlanChangeRow,
    StaffRow,
    UsageRow,
    UserPrefRow,
)


def _account(row: AccountRow) -> Account:
    return Account(
        key=row.key, name=row.name, tier=Tier(row.tier), term=Term(row.term),
        start=row.start_date, end=row.end_date, region=row.region, timezone=row.timezone,
        lang=Lang(row.lang), tam_user_id=row.tam_user_id, team_id=row.team_id,
        perk_tier=Tier(row.perk_tier) if row.perk_tier else None,
        cancelled_on=row.cancelled_on,
    )


def _case(row: CaseRow) -> Case:
    assert row.ref is not None
    return Case(
        id=row.id, ref=row.ref, account_key=row.account_key, team_id=row.team_id,
        channel_id=row.channel_id, opener_user_id=row.opener_user_id,
        severity=Severity(row.severity), requested_severity=Severity(row.requested_severity),
        summary=row.summary, description=row.description, region=row.region,
        software=row.software, status=CaseStatus(row.status), opened_at=row.opened_at,
        due_at=row.due_at, target_label=row.target_label, sla_generation=row.sla_generation,
        escort=row.escort, first_response_at=row.first_response_at,
        first_response_by=row.first_response_by, resolved_at=row.resolved_at,
        warned=row.warned, breached=row.breached, card_ts=row.card_ts, version=row.version,
    )


class Accounts:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def get(self, key: str, *, for_update: bool = False) -> Account | None:
        """An account; `for_update` locks its row (PostgreSQL) until the transaction ends."""
        if for_update:
            row = await self.s.scalar(select(AccountRow).where(AccountRow.key == key)
                                      .with_for_update()
                                      .execution_options(populate_existing=True))
        else:
            row = await self.s.get(AccountRow, key)
        return _account(row) if row else None

    async def add(self, a: Account, now: datetime) -> None:
        self.s.add(AccountRow(
            key=a.key, name=a.name, tier=a.tier.value, term=a.term.value, start_date=a.start,
            end_date=a.end, region=a.region, timezone=a.timezone, lang=a.lang.value,
            team_id=a.team_id, tam_user_id=a.tam_user_id,
            perk_tier=a.perk_tier.value if a.perk_tier else None, cancelled_on=a.cancelled_on,
            created_at=now,
        ))
        await self.s.flush()

    async def change(self, key: str, **values: Any) -> Account:
        row = await self.s.get(AccountRow, key, populate_existing=True)
        assert row is not None
        for k, v in values.items():
            setattr(row, k, v)
        await self.s.flush()
        return _account(row)

    async def set_tam(self, key: str, user_id: str) -> None:
        await self.s.execute(
            update(AccountRow).where(AccountRow.key == key).values(tam_user_id=user_id))

    async def list(self, tam_user_id: str | None = None) -> list[Account]:
        q = select(AccountRow).order_by(AccountRow.key)
        if tam_user_id is not None:
            q = q.where(AccountRow.tam_user_id == tam_user_id)
        return [_account(r) for r in (await self.s.scalars(q)).all()]


class Bindings:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def account_for(self, channel_id: str) -> Account | None:
        row = await self.s.scalar(
            select(AccountRow).join(ChannelBindingRow,
                                    ChannelBindingRow.account_key == AccountRow.key)
            .where(ChannelBindingRow.channel_id == channel_id))
        return _account(row) if row else None

    async def bound_account_key(self, channel_id: str) -> str | None:
        row = await self.s.get(ChannelBindingRow, channel_id)
        return row.account_key if row else None

    async def bind(self, team_id: str, channel_id: str, account_key: str, by: str,
                   now: datetime) -> None:
        row = await self.s.get(ChannelBindingRow, channel_id)
        if row is None:
            self.s.add(ChannelBindingRow(channel_id=channel_id, team_id=team_id,
                                         account_key=account_key, bound_by=by, bound_at=now))
        else:
            row.account_key, row.bound_by, row.bound_at = account_key, by, now
        await self.s.flush()

    async def channels_of(self, account_key: str) -> list[str]:
        rows = await self.s.scalars(select(ChannelBindingRow.channel_id)
                                    .where(ChannelBindingRow.account_key == account_key)
                                    .order_by(ChannelBindingRow.bound_at))
        return list(rows.all())


ANY_TEAM = "*"  # staff added from the command line, valid in every workspace


class Staff:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def get(self, team_id: str, user_id: str) -> StaffMember | None:
        """The staff entry for this workspace, or one added for every workspace (`*`)."""
        row = await self.s.get(StaffRow, (team_id, user_id))
        if row is None:
            row = await self.s.get(StaffRow, (ANY_TEAM, user_id))
        if row is None:
            return None
        pref = await self.lang(team_id, user_id)
        return StaffMember(team_id=row.team_id, user_id=row.user_id, role=Role(row.role),
                           lang=pref or Lang(row.lang))

    async def lang(self, team_id: str, user_id: str) -> Lang | None:
        row = await self.s.get(UserPrefRow, (team_id, user_id))
        return Lang(row.lang) if row else None

    async def set_lang(self, team_id: str, user_id: str, lang: Lang,
                       now: datetime) -> Lang | None:
        row = await self.s.get(UserPrefRow, (team_id, user_id))
        if row is None:
            self.s.add(UserPrefRow(team_id=team_id, user_id=user_id, lang=lang.value,
                                   updated_at=now))
            await self.s.flush()
            return None
        before = Lang(row.lang)
        row.lang, row.updated_at = lang.value, now
        await self.s.flush()
        return before

    async def upsert(self, m: StaffMember, by: str, now: datetime) -> StaffMember | None:
        """Insert or change a staff member; return the previous entry, if any."""
        row = await self.s.get(StaffRow, (m.team_id, m.user_id))
        before = None
        if row is None:
            self.s.add(StaffRow(team_id=m.team_id, user_id=m.user_id, role=m.role.value,
                                lang=m.lang.value, added_by=by, added_at=now))
        else:
            before = StaffMember(row.team_id, row.user_id, Role(row.role), Lang(row.lang))
            row.role, row.lang, row.added_by, row.added_at = m.role.value, m.lang.value, by, now
        await self.s.flush()
        return before


class Cases:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def add(self, **fields: Any) -> Case:
        row = CaseRow(**fields)
        self.s.add(row)
        await self.s.flush()  # assigns the id the reference is made from
        row.ref = case_ref(row.id)
        await self.s.flush()
        return _case(row)

    async def get(self, case_id: int, *, for_update: bool = False) -> Case | None:
        q = select(CaseRow).where(CaseRow.id == case_id)
        if for_update:
            q = q.with_for_update()
        row = await self.s.scalar(q)
        return _case(row) if row else None

    async def by_card(self, channel_id: str, card_ts: str) -> Case | None:
        row = await self.s.scalar(select(CaseRow).where(CaseRow.channel_id == channel_id,
                                                        CaseRow.card_ts == card_ts))
        return _case(row) if row else None

    async def update(self, case_id: int, *, bump: bool = True, **values: Any) -> Case:
        """Apply changes; `bump` the card version when the card shows what changed (every
        bump must queue a card sync, or an older sync would skip itself as superseded)."""
        # the identity map holds the row this transaction loaded (and locked): no re-read
        row = await self.s.get(CaseRow, case_id)
        assert row is not None
        for k, v in values.items():
            setattr(row, k, v)
        if bump:
            row.version = row.version + 1
        await self.s.flush()
        return _case(row)

    async def set_card_ts(self, case_id: int, ts: str) -> None:
        await self.s.execute(update(CaseRow).where(CaseRow.id == case_id).values(card_ts=ts))

    async def active(self, account_keys: list[str] | None = None,
                     channel_id: str | None = None) -> list[Case]:
        q = select(CaseRow).where(CaseRow.status.in_(
            [CaseStatus.OPEN.value, CaseStatus.ACKNOWLEDGED.value]))
        if account_keys is not None:
            q = q.where(CaseRow.account_key.in_(account_keys))
        if channel_id is not None:
            q = q.where(CaseRow.channel_id == channel_id)
        rows = await self.s.scalars(q.order_by(CaseRow.due_at))
        return [_case(r) for r in rows.all()]

    async def count(self) -> int:
        return int(await self.s.scalar(select(func.count()).select_from(CaseRow)) or 0)


class Audit:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def write(self, *, at: datetime, actor: str, action: str, team_id: str | None = None,
                    account_key: str | None = None, case_id: int | None = None,
                    before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                    reason: str | None = None) -> None:
        # written with the transaction's commit: no round trip of its own
        self.s.add(AuditRow(at=at, actor=actor, action=action, team_id=team_id,
                            account_key=account_key, case_id=case_id, before=before,
                            after=after, reason=reason))

    async def for_case(self, case_id: int) -> list[AuditRow]:
        rows = await self.s.scalars(select(AuditRow).where(AuditRow.case_id == case_id)
                                    .order_by(AuditRow.id))
        return list(rows.all())

    async def by_action(self, action: str) -> list[AuditRow]:
        rows = await self.s.scalars(select(AuditRow).where(AuditRow.action == action)
                                    .order_by(AuditRow.id))
        return list(rows.all())


class Inbox:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def first_time(self, event_id: str, now: datetime) -> bool:
        """Record an inbound event id; False when it was already processed."""
        if await self.s.get(InboxRow, event_id) is not None:
            return False
        self.s.add(InboxRow(event_id=event_id, received_at=now))
        await self.s.flush()  # a concurrent duplicate fails here on the primary key
        return True


class PerkLedger:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def escort_windows(self, account_key: str) -> list[tuple[datetime, datetime]]:
        """Approved escort requests as [start, end) instants in the account's time zone."""
        rows = (await self.s.execute(
            select(PerkRequestRow.start_date, PerkRequestRow.amount, AccountRow.timezone)
            .join(AccountRow, AccountRow.key == PerkRequestRow.account_key)
            .where(PerkRequestRow.account_key == account_key, PerkRequestRow.perk == "escort",
                   PerkRequestRow.status == "approved"))).all()
        windows = []
        for start, days, tz_name in rows:
            tz = ZoneInfo(tz_name)
            begin = datetime.combine(start, time(0), tzinfo=tz)
            end = datetime.combine(start + timedelta(days=days), time(0), tzinfo=tz)
            windows.append((begin.astimezone(UTC), end.astimezone(UTC)))
        return windows

    async def totals(self, account_key: str, plan_year_start: date
                     ) -> tuple[dict[str, int], dict[str, int]]:
        """(held, used) per perk for one plan year, summed from the ledger."""
        rows = (await self.s.execute(
            select(PerkLedgerRow.perk, PerkLedgerRow.entry, func.sum(PerkLedgerRow.amount))
            .where(PerkLedgerRow.account_key == account_key,
                   PerkLedgerRow.plan_year_start == plan_year_start)
            .group_by(PerkLedgerRow.perk, PerkLedgerRow.entry))).all()
        held: dict[str, int] = {}
        used: dict[str, int] = {}
        for perk, entry, amount in rows:
            if entry == "hold":
                held[perk] = held.get(perk, 0) + int(amount)
            elif entry == "release":
                held[perk] = held.get(perk, 0) - int(amount)
            elif entry == "consume":
                used[perk] = used.get(perk, 0) + int(amount)
        return held, used

    async def add_request(self, **fields: Any) -> PerkRequestRow:
        row = PerkRequestRow(**fields)
        self.s.add(row)
        await self.s.flush()
        return row

    async def request(self, request_id: int, *, for_update: bool = False
                      ) -> PerkRequestRow | None:
        q = select(PerkRequestRow).where(PerkRequestRow.id == request_id)
        if for_update:
            q = q.with_for_update()
        return await self.s.scalar(q)

    async def requests(self, account_keys: list[str] | None = None,
                       status: str | None = None) -> list[PerkRequestRow]:
        q = select(PerkRequestRow).order_by(PerkRequestRow.id)
        if account_keys is not None:
            q = q.where(PerkRequestRow.account_key.in_(account_keys))
        if status is not None:
            q = q.where(PerkRequestRow.status == status)
        return list((await self.s.scalars(q)).all())

    async def entry(self, account_key: str, perk: str, plan_year_start: date, entry: str,
                    amount: int, request_id: int | None, at: datetime) -> None:
        """Append to the ledger (never updated or deleted)."""
        self.s.add(PerkLedgerRow(account_key=account_key, perk=perk,
                                 plan_year_start=plan_year_start, entry=entry, amount=amount,
                                 request_id=request_id, at=at))
        await self.s.flush()


class Usage:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def set(self, account_key: str, month: str, amount: int, by: str,
                  now: datetime) -> int | None:
        """Record a month's consumption; return the previous figure, if any."""
        row = await self.s.get(UsageRow, (account_key, month))
        if row is None:
            self.s.add(UsageRow(account_key=account_key, month=month, amount=amount,
                                recorded_by=by, recorded_at=now))
            await self.s.flush()
            return None
        before = row.amount
        row.amount, row.recorded_by, row.recorded_at = amount, by, now
        await self.s.flush()
        return before

    async def get(self, account_key: str, month: str) -> int | None:
        row = await self.s.get(UsageRow, (account_key, month))
        return row.amount if row else None


class PlanChanges:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def add(self, **fields: Any) -> None:
        self.s.add(PlanChangeRow(**fields))
        await self.s.flush()

    async def count_since(self, account_key: str, since: datetime) -> int:
        return int(await self.s.scalar(
            select(func.count()).select_from(PlanChangeRow)
            .where(PlanChangeRow.account_key == account_key, PlanChangeRow.at >= since,
                   PlanChangeRow.kind != "unsubscribe")) or 0)

    async def for_account(self, account_key: str) -> list[PlanChangeRow]:
        rows = await self.s.scalars(select(PlanChangeRow)
                                    .where(PlanChangeRow.account_key == account_key)
                                    .order_by(PlanChangeRow.id))
        return list(rows.all())
