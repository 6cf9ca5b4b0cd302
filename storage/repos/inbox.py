"""Inbound event ids already processed (deduplication of retries)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage import sql
from storage.sql import core, insert_for, prepared
from storage.tables import InboxRow


class Inbox:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def seen(self, event_id: str) -> bool:
        """Whether an inbound event id was processed already (a look; records nothing)."""
        return await self.s.get(InboxRow, event_id) is not None

    async def first_time(self, event_id: str, now: datetime) -> bool:
        """Record an inbound event id; False when it was already processed (or is being
        processed by a concurrent transaction that commits: PostgreSQL waits for it)."""
        stmt = prepared(self.s, "inbox.first_time", lambda d: insert_for(d, core(InboxRow))
                        .on_conflict_do_nothing(index_elements=["event_id"])
                        .returning(core(InboxRow).c.event_id))
        result = await sql.run(self.s, stmt, {"event_id": event_id, "received_at": now})
        return result.first() is not None

    async def prune(self, before: datetime) -> int:
        """Forget ids received before `before`; how many were forgotten."""
        result = await self.s.execute(delete(InboxRow).where(InboxRow.received_at < before))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
