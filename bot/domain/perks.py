"""Perk quotas: what a plan year grants, and what is held, used and left."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.catalog import PERKS, TierPlan
from bot.domain.model import Account, Term


@dataclass(frozen=True, slots=True)
class PerkBalance:
    perk: str
    quota: int
    held: int  # pending requests
    used: int  # approved requests

    @property
    def left(self) -> int:
        return max(0, self.quota - self.held - self.used)


def granted(plan: TierPlan, account: Account) -> dict[str, int]:
    """Quotas for the plan year: annual plans only, and not a plan reached mid-term (§5)."""
    if account.term is not Term.ANNUAL or account.upgraded_midterm:
        return dict.fromkeys(PERKS, 0)
    return dict(plan.perks)


def balances(plan: TierPlan, account: Account, held: dict[str, int],
             used: dict[str, int]) -> list[PerkBalance]:
    quotas = granted(plan, account)
    return [PerkBalance(p, quotas[p], held.get(p, 0), used.get(p, 0)) for p in PERKS]
