"""Who sees which App Home: customers' accounts (by the groups they used) and viewers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import sql
from storage.sql import core, insert_for, prepared
from storage.tables import ChannelBindingRow, HomeViewerRow, UserAccountRow


def _saw(dialect: str) -> Any:
    ins = insert_for(dialect, core(UserAccountRow))
    return ins.on_conflict_do_update(
        index_elements=["team_id", "user_id", "account_key"],
        set_={"channel_id": ins.excluded.channel_id, "last_seen": ins.excluded.last_seen})


class Viewers:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def opened(self, team_id: str, user_id: str, now: datetime) -> None:
        """A user opened the Home tab (a concurrent first open fails on the primary key at
        commit)."""
        row = await self.s.get(HomeViewerRow, (team_id, user_id))
        if row is None:
            self.s.add(HomeViewerRow(team_id=team_id, user_id=user_id, opened_at=now))
        else:
            row.opened_at = now

    async def all(self) -> list[tuple[str, str]]:
        """(team, user) of everyone who has opened the Home tab."""
        rows = await self.s.execute(select(HomeViewerRow.team_id, HomeViewerRow.user_id))
        return [(t, u) for t, u in rows.all()]

    async def saw_account(self, team_id: str, user_id: str, account_key: str,
                          channel_id: str, now: datetime) -> None:
        """A customer used this account's group (one upsert: a concurrent first use by
        another replica updates the same row instead of failing)."""
        await sql.run(self.s, prepared(self.s, "viewers.saw_account", _saw), dict(
            team_id=team_id, user_id=user_id, account_key=account_key, channel_id=channel_id,
            last_seen=now))

    async def accounts_of(self, team_id: str, user_id: str) -> list[str]:
        """The accounts a customer sees, most recently used first: those whose group they
        used, while that group is still bound to the account (it may have been re-linked)."""
        rows = await self.s.scalars(
            select(UserAccountRow.account_key)
            .join(ChannelBindingRow, (ChannelBindingRow.channel_id == UserAccountRow.channel_id)
                  & (ChannelBindingRow.account_key == UserAccountRow.account_key))
            .where(UserAccountRow.team_id == team_id, UserAccountRow.user_id == user_id)
            .order_by(UserAccountRow.last_seen.desc()))
        return list(rows.all())

    async def customers_of(self, account_key: str) -> set[tuple[str, str]]:
        """(team, user) of the customers who used this account's groups."""
        rows = await self.s.execute(select(UserAccountRow.team_id, UserAccountRow.user_id)
                                    .where(UserAccountRow.account_key == account_key))
        return {(t, u) for t, u in rows.all()}
