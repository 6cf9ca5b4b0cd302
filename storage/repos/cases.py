"""Support cases and the state of their response clocks."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import Case, CaseChange, CaseStatus, NewCase, Severity, case_ref
from bot.domain.reports import CaseFact
from storage import sql
from storage.sql import core
from storage.tables import CaseRow


def to_case(row: CaseRow | Any) -> Case:
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


_CHANGEABLE = tuple(f.name for f in fields(CaseChange))
_CASES = core(CaseRow)
_INSERT = insert(_CASES).returning(_CASES.c.id)
_GET = select(*_CASES.columns).where(_CASES.c.id == bindparam("case_id"))
_SET_CARD_TS = update(_CASES).where(_CASES.c.id == bindparam("case_id")).values(
    card_ts=bindparam("ts"))
# a month's cases as a report counts them: six columns, no case objects (30 a report, 1,000
# reports at once)
_FACTS = select(_CASES.c.severity, _CASES.c.opened_at, _CASES.c.due_at,
                _CASES.c.first_response_at, _CASES.c.resolved_at, _CASES.c.breached).where(
    _CASES.c.account_key == bindparam("account_key"),
    _CASES.c.opened_at >= bindparam("start"), _CASES.c.opened_at < bindparam("end"))


class Cases:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def add(self, new: NewCase) -> Case:
        """Open a case: status open, first clock generation, card version 1. Core
        statements: the case is built from what was written, not tracked or read back."""
        values = dict(
            account_key=new.account_key, team_id=new.team_id, channel_id=new.channel_id,
            opener_user_id=new.opener_user_id, severity=new.severity.value,
            requested_severity=new.requested_severity.value, summary=new.summary,
            description=new.description, region=new.region, software=new.software,
            status=CaseStatus.OPEN.value, opened_at=new.opened_at, due_at=new.due_at,
            warn_at=new.warn_at, target_label=new.target_label, sla_generation=1,
            escort=new.escort, warned=False, breached=False, version=1)
        # the id assigned is what the reference is made from: the database sets the ref
        # column from it (a trigger, migration 0009), in the same format as `case_ref`
        case_id = int((await sql.run(self.s, _INSERT, values)).scalar_one())
        ref = case_ref(case_id)
        return Case(
            id=case_id, ref=ref, account_key=new.account_key, team_id=new.team_id,
            channel_id=new.channel_id, opener_user_id=new.opener_user_id,
            severity=new.severity, requested_severity=new.requested_severity,
            summary=new.summary, description=new.description, region=new.region,
            software=new.software, status=CaseStatus.OPEN, opened_at=new.opened_at,
            due_at=new.due_at, target_label=new.target_label, sla_generation=1,
            escort=new.escort, first_response_at=None, first_response_by=None,
            resolved_at=None, warned=False, breached=False, card_ts=None, version=1)

    async def get(self, case_id: int, *, for_update: bool = False) -> Case | None:
        """A case; `for_update` locks its row (PostgreSQL) and keeps it in the session for
        `update`. A plain read is a Core statement (the worker reads a case per message)."""
        if not for_update:
            found = (await sql.run(self.s, _GET, {"case_id": case_id})).first()
            return to_case(found) if found else None
        row = await self.s.scalar(select(CaseRow).where(CaseRow.id == case_id)
                                  .with_for_update())
        return to_case(row) if row else None

    async def lock(self, case_ids: list[int]) -> None:
        """Lock these cases' rows, lowest id first (PostgreSQL; SQLite's one writer already
        excludes everyone else), so that work locking several cases takes them in one order."""
        if case_ids:
            await self.s.execute(select(CaseRow.id).where(CaseRow.id.in_(case_ids))
                                 .order_by(CaseRow.id).with_for_update())

    async def by_card(self, channel_id: str, card_ts: str) -> Case | None:
        row = await self.s.scalar(select(CaseRow).where(CaseRow.channel_id == channel_id,
                                                        CaseRow.card_ts == card_ts))
        return to_case(row) if row else None

    async def update(self, case_id: int, change: CaseChange, *, bump: bool = True) -> Case:
        """Apply changes; `bump` the card version when the card shows what changed (every
        bump must queue a card sync, or an older sync would skip itself as superseded)."""
        # the identity map holds the row this transaction loaded (and locked): no re-read
        row = await self.s.get(CaseRow, case_id)
        assert row is not None
        for name in _CHANGEABLE:
            value = getattr(change, name)
            if value is not None:
                # enums are stored as their value
                setattr(row, name, value.value if isinstance(value, CaseStatus | Severity)
                        else value)
        if bump:
            row.version = row.version + 1
        await self.s.flush()
        return to_case(row)

    async def set_card_ts(self, case_id: int, ts: str) -> None:
        await sql.run(self.s, _SET_CARD_TS, {"case_id": case_id, "ts": ts})

    async def active(self, account_keys: list[str] | None = None,
                     channel_id: str | None = None) -> list[Case]:
        q = select(CaseRow).where(CaseRow.status.in_(
            [CaseStatus.OPEN.value, CaseStatus.ACKNOWLEDGED.value]))
        if account_keys is not None:
            q = q.where(CaseRow.account_key.in_(account_keys))
        if channel_id is not None:
            q = q.where(CaseRow.channel_id == channel_id)
        rows = await self.s.scalars(q.order_by(CaseRow.due_at))
        return [to_case(r) for r in rows.all()]

    async def facts_between(self, account_key: str, start: datetime, end: datetime
                            ) -> list[CaseFact]:
        """What a report needs of an account's cases opened in [start, end)."""
        rows = await self.s.execute(_FACTS, {"account_key": account_key, "start": start,
                                             "end": end})
        return [CaseFact(Severity(sev), opened, due, first, resolved, breached)
                for sev, opened, due, first, resolved, breached in rows.all()]

    async def count(self) -> int:
        return int(await self.s.scalar(select(func.count()).select_from(CaseRow)) or 0)
