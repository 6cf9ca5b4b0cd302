"""What the broadcast delivery rows share (an advisory's or an incident post's message to one
group): how one is settled and how they are counted by status. Used by the advisories and
incidents repositories, each on its own table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bot.domain.advisories import no_counts
from bot.domain.model import DeliveryStatus
from storage.tables import AdvisoryDeliveryRow, IncidentDeliveryRow


async def settle(s: AsyncSession, row: AdvisoryDeliveryRow | IncidentDeliveryRow | None,
                 status: DeliveryStatus, at: datetime, ts: str | None, error: str | None
                 ) -> str | None:
    """Record how a delivery went; the account it was for (None if the row vanished)."""
    if row is None:
        return None
    row.status, row.ts, row.sent_at = status.value, ts, at
    row.error = error[:200] if error else None
    await s.flush()
    return row.account_key


async def counts(s: AsyncSession, status: InstrumentedAttribute[str],
                 where: ColumnElement[bool]) -> dict[str, int]:
    """Deliveries per status among the rows `where` picks, keyed by `DeliveryStatus` (every
    status present)."""
    rows = (await s.execute(select(status, func.count()).where(where)
                            .group_by(status))).all()
    found = no_counts()
    found.update({DeliveryStatus(k): int(v) for k, v in rows})
    return found
