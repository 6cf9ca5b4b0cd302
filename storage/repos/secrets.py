"""Groups' delivery addresses, kept as the encrypted bytes the service layer hands over."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import GroupSecretRow


class GroupSecrets:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def get(self, channel_id: str) -> bytes | None:
        row = await self.s.get(GroupSecretRow, channel_id)
        return bytes(row.secret) if row is not None else None

    async def put(self, channel_id: str, secret: bytes, now: datetime) -> None:
        row = await self.s.get(GroupSecretRow, channel_id)
        if row is None:
            self.s.add(GroupSecretRow(channel_id=channel_id, secret=secret, updated_at=now))
        else:
            row.secret, row.updated_at = secret, now
        await self.s.flush()
