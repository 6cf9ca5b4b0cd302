"""Monthly service reports as posted."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.reports import ReportRecord
from storage.tables import ReportRow


class Reports:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def add(self, r: ReportRecord) -> None:
        self.s.add(ReportRow(account_key=r.account_key, month=r.month, trigger=r.trigger,
                             deadline=r.deadline, created_at=r.created_at,
                             channel_id=r.channel_id, ts=r.ts, figures=r.figures))
        await self.s.flush()

    async def of(self, account_key: str) -> list[ReportRecord]:
        """An account's reports in the order they were posted."""
        rows = await self.s.scalars(select(ReportRow).where(ReportRow.account_key == account_key)
                                    .order_by(ReportRow.id))
        return [ReportRecord(account_key=r.account_key, month=r.month, trigger=r.trigger,
                             deadline=r.deadline, created_at=r.created_at,
                             channel_id=r.channel_id, ts=r.ts, figures=r.figures)
                for r in rows.all()]
