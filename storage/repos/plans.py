"""Recorded cloud consumption and applied plan changes."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.billing import ChangeKind
from bot.domain.model import PlanChange
from storage.tables import PlanChangeRow, UsageRow


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

    async def daily(self, account_key: str, month: str) -> dict[date, int]:
        """The day figures recorded for a month (`YYYY-MM`), by day."""
        rows = (await self.s.execute(
            select(UsageRow.month, UsageRow.amount)
            .where(UsageRow.account_key == account_key,
                   UsageRow.month.like(f"{month}-%")))).all()
        return {date.fromisoformat(m): amount for m, amount in rows}


def _change(r: PlanChangeRow) -> PlanChange:
    return PlanChange(
        id=r.id, account_key=r.account_key, kind=r.kind, old_tier=r.old_tier,
        new_tier=r.new_tier, effective=r.effective, due_now=r.due_now,
        incremental_old=r.incremental_old, incremental_new=r.incremental_new, by=r.by,
        at=r.at)


# built once: each monthly report asks for its month's changes
_IN_WINDOW = (select(PlanChangeRow)
              .where(PlanChangeRow.account_key == bindparam("account_key"),
                     PlanChangeRow.at >= bindparam("since"), PlanChangeRow.at < bindparam("until"))
              .order_by(PlanChangeRow.id))


class PlanChanges:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def add(self, c: PlanChange) -> None:
        self.s.add(PlanChangeRow(
            account_key=c.account_key, kind=c.kind, old_tier=c.old_tier, new_tier=c.new_tier,
            effective=c.effective, due_now=c.due_now, incremental_old=c.incremental_old,
            incremental_new=c.incremental_new, by=c.by, at=c.at))
        await self.s.flush()

    async def count_since(self, account_key: str, since: datetime) -> int:
        return int(await self.s.scalar(
            select(func.count()).select_from(PlanChangeRow)
            .where(PlanChangeRow.account_key == account_key, PlanChangeRow.at >= since,
                   PlanChangeRow.kind != ChangeKind.UNSUBSCRIBE)) or 0)

    async def for_account(self, account_key: str, since: datetime | None = None,
                          until: datetime | None = None) -> list[PlanChange]:
        """An account's plan changes in the order applied, optionally in [since, until)."""
        if since is not None and until is not None:
            rows = await self.s.scalars(_IN_WINDOW, {"account_key": account_key,
                                                     "since": since, "until": until})
            return [_change(r) for r in rows.all()]
        q = select(PlanChangeRow).where(PlanChangeRow.account_key == account_key)
        if since is not None:
            q = q.where(PlanChangeRow.at >= since)
        if until is not None:
            q = q.where(PlanChangeRow.at < until)
        rows = await self.s.scalars(q.order_by(PlanChangeRow.id))
        return [_change(r) for r in rows.all()]
