"""Perk quotas and requests: what a plan year grants, what is held, used and left, and
whether a request may be made (rulebook §5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from bot.domain.calendar import BusinessCalendar
from bot.domain.catalog import PERKS, Catalog
from bot.domain.model import Account, Term, Tier


@dataclass(frozen=True, slots=True)
class PerkBalance:
    perk: str
    quota: int
    held: int  # pending requests
    used: int  # approved requests

    @property
    def left(self) -> int:
        return max(0, self.quota - self.held - self.used)


def granted(catalog: Catalog, account: Account) -> dict[str, int]:
    """Quotas for the plan year: annual plans only, from the tier the year was bought at.

    A mid-term upgrade does not adjust quotas (§7), so a developer annual plan upgraded to
    enterprise still earns none (§6 example); a downgrade lowers them to the new tier's.
    """
    if account.term is not Term.ANNUAL:
        return dict.fromkeys(PERKS, 0)
    tier = account.perk_tier or account.tier
    if tier.rank > account.tier.rank:
        tier = account.tier
    return dict(catalog.plan(tier).perks)


def balances(catalog: Catalog, account: Account, held: dict[str, int],
             used: dict[str, int]) -> list[PerkBalance]:
    quotas = granted(catalog, account)
    return [PerkBalance(p, quotas[p], held.get(p, 0), used.get(p, 0)) for p in PERKS]


@dataclass(frozen=True, slots=True)
class PerkDecision:
    """The outcome of checking a request: a refusal, or allowed with warnings."""

    refusal: tuple[str, dict[str, object]] | None = None
    warnings: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def earliest_start(catalog: Catalog, perk: str, today: date, cal: BusinessCalendar) -> date:
    """First start date that respects the perk's lead time in business days."""
    lead = catalog.perk_rules[perk].lead_business_days
    return cal.add_business_days(today, lead) if lead else today + timedelta(days=1)


def check_request(catalog: Catalog, account: Account, perk: str, start: date, amount: int,
                  today: date, cal: BusinessCalendar, balance: PerkBalance) -> PerkDecision:
    """Apply §5 to a request for `amount` units of `perk` starting on `start`."""
    plan = catalog.plan(account.tier)
    def refuse(msg: str, **params: object) -> PerkDecision:
        return PerkDecision(refusal=(msg, params))

    if plan.perks[perk] == 0:
        holders = [t.value for t in Tier if catalog.plan(t).perks[perk] > 0]
        return refuse("perk.not_in_tier", perk=perk, tier=account.tier.value,
                      tiers=", ".join(holders))
    if account.term is not Term.ANNUAL:
        return refuse("perk.annual_only", perk=perk)
    if balance.quota == 0:
        return refuse("perk.not_full_year", perk=perk)
    if amount < 1:
        return refuse("perk.whole_days", perk=perk)
    if perk == "escort" and amount > plan.escort_max_days_per_request:
        return refuse("perk.days_per_request", n=plan.escort_max_days_per_request)
    if perk != "escort" and amount != 1:
        return refuse("perk.one_occurrence", perk=perk)
    if start <= today:
        return refuse("perk.date_not_future", date=start.isoformat())
    last_day = start + timedelta(days=amount - 1)
    if start < account.start or last_day >= account.end:
        return refuse("perk.outside_plan_year", start=account.start.isoformat(),
                      end=(account.end - timedelta(days=1)).isoformat())
    if amount > balance.left:
        return refuse("perk.quota_exhausted", perk=perk, left=balance.left,
                      quota=balance.quota, held=balance.held, used=balance.used)
    rule = catalog.perk_rules[perk]
    earliest = earliest_start(catalog, perk, today, cal)
    warnings: list[tuple[str, dict[str, object]]] = []
    if start < earliest:
        if rule.lead_rule == "refuse":
            return refuse("perk.too_soon", perk=perk, n=rule.lead_business_days,
                          earliest=earliest.isoformat())
        warnings.append(("perk.short_notice", {"n": rule.lead_business_days,
                                               "earliest": earliest.isoformat()}))
    return PerkDecision(warnings=warnings)
