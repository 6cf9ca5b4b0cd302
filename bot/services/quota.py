"""Perk balances of an account's current plan year, from the append-only ledger."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import Account
from bot.domain.perks import PerkBalance, balances
from bot.services.base import AppContext
from storage.repos import PerkLedger


async def perk_balances(s: AsyncSession, app: AppContext, account: Account
                        ) -> list[PerkBalance]:
    held, used = await PerkLedger(s).totals(account.key, account.start)
    return balances(app.catalog, account, held, used)


async def balances_of(app: AppContext, account: Account) -> list[PerkBalance]:
    async with app.db.transaction() as s:
        return await perk_balances(s, app, account)
