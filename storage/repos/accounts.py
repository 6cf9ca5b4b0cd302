"""Accounts, the groups bound to them and what they run (tags for advisory targeting)."""

from __future__ import annotations

import enum
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.advisories import TAG_KINDS, AccountProfile, Audience
from bot.domain.model import Account, Lang, Term, Tier
from storage import sql
from storage.sql import core
from storage.tables import AccountRow, AccountTagRow, ChannelBindingRow


def to_account(row: AccountRow | Row[Any]) -> Account:
    return Account(
        key=row.key, name=row.name, tier=Tier(row.tier), term=Term(row.term),
        start=row.start_date, end=row.end_date, region=row.region, timezone=row.timezone,
        lang=Lang(row.lang), tam_user_id=row.tam_user_id, team_id=row.team_id,
        perk_tier=Tier(row.perk_tier) if row.perk_tier else None,
        cancelled_on=row.cancelled_on,
    )


# domain field -> column, where the names differ
_COLUMN = {"start": "start_date", "end": "end_date"}
_BINDINGS = core(ChannelBindingRow)
_CHANNELS_OF = (select(_BINDINGS.c.channel_id)
                .where(_BINDINGS.c.account_key == bindparam("account_key"))
                .order_by(_BINDINGS.c.bound_at))


def _write(row: AccountRow, a: Account, only: set[str] | None = None) -> None:
    """Copy an account's fields into its row (`only` these fields, when given)."""
    for f in fields(Account):
        if f.name == "key" or (only is not None and f.name not in only):
            continue
        value = getattr(a, f.name)
        setattr(row, _COLUMN.get(f.name, f.name),
                value.value if isinstance(value, enum.Enum) else value)


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
            row = (await sql.run(self.s, _GET, {"key": key})).first()
        return to_account(row) if row else None

    async def add(self, a: Account, now: datetime) -> None:
        row = AccountRow(key=a.key, created_at=now)
        _write(row, a)
        self.s.add(row)
        await self.s.flush()

    async def save(self, before: Account, after: Account) -> Account:
        """Store what changed from `before` to `after` (those columns only: a concurrent
        change to another one is kept) and return the account as stored."""
        assert before.key == after.key
        changed = {f.name for f in fields(Account)
                   if getattr(before, f.name) != getattr(after, f.name)}
        row = await self.s.get(AccountRow, after.key, populate_existing=True)
        assert row is not None
        _write(row, after, changed)
        await self.s.flush()
        return to_account(row)

    async def set_tam(self, key: str, user_id: str) -> None:
        await self.s.execute(
            update(AccountRow).where(AccountRow.key == key).values(tam_user_id=user_id))

    async def list(self, tam_user_id: str | None = None) -> list[Account]:
        q = select(AccountRow).order_by(AccountRow.key)
        if tam_user_id is not None:
            q = q.where(AccountRow.tam_user_id == tam_user_id)
        return [to_account(r) for r in (await self.s.scalars(q)).all()]


# the account bound to a channel, as plain columns (no ORM object to track)
_GET = select(*core(AccountRow).columns).where(AccountRow.key == bindparam("key"))
_BOUND = (select(*core(AccountRow).columns)
          .join(ChannelBindingRow, ChannelBindingRow.account_key == AccountRow.key)
          .where(ChannelBindingRow.channel_id == bindparam("channel")))


class Bindings:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def account_for(self, channel_id: str) -> Account | None:
        row = (await sql.run(self.s, _BOUND, {"channel": channel_id})).first()
        return to_account(row) if row else None

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

    async def bound_accounts(self) -> set[str]:
        """Keys of the accounts that have at least one group."""
        rows = await self.s.scalars(select(ChannelBindingRow.account_key).distinct())
        return set(rows.all())

    async def channels_of(self, account_key: str) -> list[str]:
        rows = await self.s.scalars(_CHANNELS_OF, {"account_key": account_key})
        return list(rows.all())


class Tags:
    """What an account runs (regions, products, third-party software)."""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def of(self, account_key: str) -> dict[str, frozenset[str]]:
        """Every tag kind, empty when the account has none of it."""
        rows = (await self.s.execute(select(AccountTagRow.kind, AccountTagRow.value)
                                     .where(AccountTagRow.account_key == account_key))).all()
        out: dict[str, set[str]] = {k: set() for k in TAG_KINDS}
        for kind, value in rows:
            out.setdefault(kind, set()).add(value)
        return {k: frozenset(v) for k, v in out.items()}

    async def replace(self, account_key: str, kind: str, values: set[str]) -> None:
        """Set one kind's values (other kinds stay as they are)."""
        await self.s.execute(delete(AccountTagRow).where(
            AccountTagRow.account_key == account_key, AccountTagRow.kind == kind))
        self.s.add_all(AccountTagRow(account_key=account_key, kind=kind, value=v)
                       for v in sorted(values))
        await self.s.flush()

    async def audience(self) -> list[Audience]:
        """Every account with its tags and its groups, by key: what advisory targeting
        decides on, read in one query (outer joins, so accounts without tags or groups
        are there too)."""
        rows = (await self.s.execute(
            select(AccountRow, AccountTagRow.kind, AccountTagRow.value,
                   ChannelBindingRow.channel_id)
            .outerjoin(AccountTagRow, AccountTagRow.account_key == AccountRow.key)
            .outerjoin(ChannelBindingRow, ChannelBindingRow.account_key == AccountRow.key)
            .order_by(AccountRow.key, ChannelBindingRow.bound_at,
                      ChannelBindingRow.channel_id))).all()
        accounts: dict[str, Account] = {}
        tags: dict[str, dict[str, set[str]]] = {}
        channels: dict[str, dict[str, None]] = {}  # insertion-ordered set: bind order
        for row, kind, value, channel in rows:
            if row.key not in accounts:
                accounts[row.key] = to_account(row)
                tags[row.key] = {k: set() for k in TAG_KINDS}
                channels[row.key] = {}
            if kind is not None:
                tags[row.key].setdefault(kind, set()).add(value)
            if channel is not None:
                channels[row.key][channel] = None
        return [Audience(AccountProfile(a, {k: frozenset(v) for k, v in tags[key].items()}),
                         tuple(channels[key]))
                for key, a in accounts.items()]
