"""Monthly service reports as posted, their email recipients and an account's report setting."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.reports import ReportRecord
from storage.sql import core
from storage.tables import ReportRecipientRow, ReportRow, ReportSettingRow

_INSERT = insert(core(ReportRow))  # Core: no unit of work for a row written once


class Reports:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def add(self, r: ReportRecord) -> None:
        await self.s.execute(_INSERT, {
            "account_key": r.account_key, "month": r.month, "trigger": r.trigger,
            "deadline": r.deadline, "created_at": r.created_at, "channel_id": r.channel_id,
            "ts": r.ts, "figures": r.figures})

    async def of(self, account_key: str) -> list[ReportRecord]:
        """An account's reports in the order they were posted."""
        rows = await self.s.scalars(select(ReportRow).where(ReportRow.account_key == account_key)
                                    .order_by(ReportRow.id))
        return [ReportRecord(account_key=r.account_key, month=r.month, trigger=r.trigger,
                             deadline=r.deadline, created_at=r.created_at,
                             channel_id=r.channel_id, ts=r.ts, figures=r.figures)
                for r in rows.all()]


class ReportSettings:
    """Whether an account's monthly report is skipped, and why (none: it is produced)."""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def skip_reason(self, account_key: str) -> str | None:
        return await self.s.scalar(select(ReportSettingRow.skip_reason)
                                   .where(ReportSettingRow.account_key == account_key))

    async def skipped(self) -> dict[str, str]:
        """Every account whose report is skipped -> the reason."""
        rows = (await self.s.execute(select(ReportSettingRow.account_key,
                                            ReportSettingRow.skip_reason)
                                     .where(ReportSettingRow.skip_reason.is_not(None)))).all()
        return {k: r for k, r in rows if r}

    async def set_skip(self, account_key: str, reason: str | None, by: str,
                       at: datetime) -> str | None:
        """Skip (with a reason) or produce (None) the account's reports; the reason before."""
        row = await self.s.get(ReportSettingRow, account_key)
        before = row.skip_reason if row else None
        if row is None:
            self.s.add(ReportSettingRow(account_key=account_key, skip_reason=reason, set_by=by,
                                        set_at=at))
        else:
            row.skip_reason, row.set_by, row.set_at = reason, by, at
        await self.s.flush()
        return before


class ReportRecipients:
    """The email addresses an account's monthly report goes to."""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def of(self, account_key: str) -> list[str]:
        return list(await self.s.scalars(select(ReportRecipientRow.address)
                                          .where(ReportRecipientRow.account_key == account_key)
                                          .order_by(ReportRecipientRow.address)))

    async def count(self, account_key: str) -> int:
        return int(await self.s.scalar(select(func.count()).select_from(ReportRecipientRow)
                                       .where(ReportRecipientRow.account_key == account_key))
                   or 0)

    async def add(self, account_key: str, address: str, by: str, at: datetime) -> bool:
        """False when the address is already there."""
        if await self.s.get(ReportRecipientRow, (account_key, address)) is not None:
            return False
        self.s.add(ReportRecipientRow(account_key=account_key, address=address, added_by=by,
                                      added_at=at))
        await self.s.flush()
        return True

    async def remove(self, account_key: str, address: str) -> bool:
        r = await self.s.execute(delete(ReportRecipientRow).where(
            ReportRecipientRow.account_key == account_key,
            ReportRecipientRow.address == address))
        return bool(r.rowcount)  # type: ignore[attr-defined]
