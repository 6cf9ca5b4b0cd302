"""The append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import AuditEntry
from storage import sql
from storage.sql import core
from storage.tables import AuditRow


def _entry(r: AuditRow) -> AuditEntry:
    return AuditEntry(id=r.id, at=r.at, actor=r.actor, action=r.action, team_id=r.team_id,
                      account_key=r.account_key, case_id=r.case_id, before=r.before,
                      after=r.after, reason=r.reason)


_INSERT = insert(core(AuditRow))  # Core: not the ORM bulk path


class Audit:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def write(self, *, at: datetime, actor: str, action: str, team_id: str | None = None,
                    account_key: str | None = None, case_id: int | None = None,
                    before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                    reason: str | None = None) -> None:
        # a Core insert: no unit of work to track an object nobody reads back
        await sql.run(self.s, _INSERT, dict(at=at, actor=actor, action=action, team_id=team_id,
                                           account_key=account_key, case_id=case_id,
                                           before=before, after=after, reason=reason))

    async def for_case(self, case_id: int) -> list[AuditEntry]:
        rows = await self.s.scalars(select(AuditRow).where(AuditRow.case_id == case_id)
                                    .order_by(AuditRow.id))
        return [_entry(r) for r in rows.all()]

    async def by_action(self, action: str) -> list[AuditEntry]:
        rows = await self.s.scalars(select(AuditRow).where(AuditRow.action == action)
                                    .order_by(AuditRow.id))
        return [_entry(r) for r in rows.all()]
