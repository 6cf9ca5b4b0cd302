"""Fees, proration and plan-change quotes (rulebook §7). All money in integer minor units."""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from bot.domain.catalog import PERKS, Catalog, Fees
from bot.domain.model import Account, Term, Tier


def _share(amount: int, num: int, den: int) -> int:
    """amount × num / den, rounded half up, in integers (no floats near money)."""
    if den <= 0:
        raise ValueError("denominator must be positive")
    return (2 * amount * num + den) // (2 * den)


def tiered_amount(fees: Fees, consumption: int) -> int:
    """The tiered rate applied to a month's consumption (list price, minor units)."""
    if consumption < 0:
        raise ValueError("consumption cannot be negative")
    total_x10000 = 0  # basis points keep the arithmetic exact until the final rounding
    lower = 0
    for bracket in fees.brackets:
        upper = bracket.upto if bracket.upto is not None else consumption
        if consumption > lower:
            total_x10000 += (min(consumption, upper) - lower) * bracket.rate_bp
        lower = upper
        if consumption <= lower:
            break
    return (total_x10000 + 5000) // 10000


def monthly_fee(fees: Fees, consumption: int) -> int:
    """Fee for the month = max(base fee, tiered amount)."""
    return max(fees.base, tiered_amount(fees, consumption))


def incremental_fee(fees: Fees, consumption: int) -> int:
    """Postpaid part: max(0, tiered amount − base fee)."""
    return monthly_fee(fees, consumption) - fees.base


def term_months(term: Term) -> int:
    return 12 if term is Term.ANNUAL else 1


def unused_base(fees: Fees, account: Account, on: date) -> int:
    """Prepaid base fee left for the rest of the term, from `on` (by days)."""
    total = (account.end - account.start).days
    remaining = max(0, min(total, (account.end - on).days))
    return _share(fees.base * term_months(account.term), remaining, total)


def base_for_remaining(fees: Fees, account: Account, on: date) -> int:
    """The new tier's base fee for the same remaining service time."""
    return unused_base(fees, account, on)


@dataclass(frozen=True, slots=True)
class FeeEstimate:
    """A month's support fee for one tier: base (prepaid) + incremental (postpaid)."""

    consumption: int
    base: int
    incremental: int

    @property
    def total(self) -> int:
        return self.base + self.incremental


def estimate_month(fees: Fees, consumption: int) -> FeeEstimate:
    """The month's fee from its recorded consumption (seed §6: base + incremental)."""
    return FeeEstimate(consumption, fees.base, incremental_fee(fees, consumption))


class SplitBasis:
    """How a month's incremental fee is shared between two tiers (seed §6)."""

    USAGE = "usage"  # by the consumption of each tier's days (daily figures known)
    DAYS = "days"  # prorated by days (no daily figures for the old tier's days)


@dataclass(frozen=True, slots=True)
class IncrementalSplit:
    old_tier: Tier
    new_tier: Tier | None
    days_old: int
    days_new: int
    old_amount: int
    new_amount: int
    basis: str = SplitBasis.DAYS
    usage_old: int | None = None  # consumption of the old tier's days, when known
    usage_new: int | None = None

    @property
    def total(self) -> int:
        return self.old_amount + self.new_amount


def usage_before(daily: Mapping[date, int], on: date) -> int | None:
    """The consumption of the month's days before `on`, when every one of them has a daily
    figure; None when any is missing (then the split is prorated by days)."""
    first = on.replace(day=1)
    days = [first + timedelta(days=i) for i in range((on - first).days)]
    if not days or any(d not in daily for d in days):
        return None
    return sum(daily[d] for d in days)


def split_incremental(catalog: Catalog, old: Tier, new: Tier | None, on: date,
                      consumption: int, used_before: int | None = None) -> IncrementalSplit:
    """The month's incremental fee between the old and the new tier. Seed §6: each tier is
    charged for what its days consumed. With `used_before` (the consumption of the days
    before `on`, from daily figures) each tier's incremental fee for the month is weighted by
    its days' share of the consumption; without it, by its share of the days."""
    days_in_month = _calendar.monthrange(on.year, on.month)[1]
    days_old = on.day - 1
    days_new = days_in_month - days_old
    old_inc = incremental_fee(catalog.plan(old).fees, consumption)
    if new is None:  # unsubscribe: the month's incremental fee is still charged (§7)
        return IncrementalSplit(old, None, days_in_month, 0, old_inc, 0)
    new_inc = incremental_fee(catalog.plan(new).fees, consumption)
    if used_before is not None and consumption > 0:
        u_old = min(used_before, consumption)
        u_new = consumption - u_old
        return IncrementalSplit(old, new, days_old, days_new,
                                _share(old_inc, u_old, consumption),
                                _share(new_inc, u_new, consumption),
                                SplitBasis.USAGE, u_old, u_new)
    return IncrementalSplit(old, new, days_old, days_new,
                            _share(old_inc, days_old, days_in_month),
                            _share(new_inc, days_new, days_in_month))


class ChangeKind:
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True, slots=True)
class Quote:
    kind: str
    account_key: str
    old_tier: Tier
    new_tier: Tier | None
    on: date
    unused_old: int  # prepaid base fee left on the old tier
    new_base: int  # the new tier's base fee for the remaining time (0 when unsubscribing)
    incremental: IncrementalSplit | None  # None when no consumption figure is known

    @property
    def due_now(self) -> int:
        """Positive: the customer pays now. Negative: the customer is refunded."""
        return self.new_base - self.unused_old


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a plan change is not allowed: a message id and its fields."""

    msg_id: str
    params: dict[str, object]


def quote_change(catalog: Catalog, account: Account, kind: str, new_tier: Tier | None,
                 on: date, consumption: int | None, perks_used: dict[str, int],
                 changes_last_year: int, perks_pending: Mapping[str, int] | None = None,
                 used_before: int | None = None) -> Quote | Refused:
    """Check the §7 rules and price a plan change; nothing is applied here.

    `perks_used` counts every claim on a quota, pending requests included (approving one
    later must not overdraw the new plan); `perks_pending` says how many of them are still
    pending, so a refusal says "pending" rather than "used" for those. `used_before`: the
    consumption of the month's days before `on`, when daily figures give it."""
    if on < account.start or on >= account.end:
        return Refused("plan.outside_term", {"start": account.start.isoformat(),
                                             "end": account.end.isoformat()})
    pending = {p: n for p, n in (perks_pending or {}).items() if n > 0}
    used_any = {p: n for p, n in perks_used.items() if n > 0}
    if kind == ChangeKind.UNSUBSCRIBE:
        consumed = sorted(p for p, n in used_any.items() if n > pending.get(p, 0))
        if consumed:
            return Refused("plan.unsubscribe_after_perk", {"perk": consumed[0]})
        if used_any:
            return Refused("plan.unsubscribe_pending_perk", {"perk": sorted(used_any)[0]})
    else:
        assert new_tier is not None
        if new_tier is account.tier:
            return Refused("plan.same_tier", {"tier": new_tier.value})
        if kind == ChangeKind.UPGRADE and new_tier.rank < account.tier.rank:
            return Refused("plan.not_an_upgrade", {"old": account.tier.value,
                                                   "new": new_tier.value})
        if kind == ChangeKind.DOWNGRADE and new_tier.rank > account.tier.rank:
            return Refused("plan.not_a_downgrade", {"old": account.tier.value,
                                                    "new": new_tier.value})
        if changes_last_year >= catalog.max_tier_changes_per_year:
            return Refused("plan.too_many_changes", {"n": changes_last_year,
                                                     "max": catalog.max_tier_changes_per_year})
        if kind == ChangeKind.DOWNGRADE and account.term is Term.ANNUAL:
            new_quota = catalog.plan(new_tier).perks
            for perk in PERKS:
                if new_quota[perk] - perks_used.get(perk, 0) < 0:
                    held = pending.get(perk, 0)
                    return Refused("plan.downgrade_perk", {
                        "perk": perk, "used": perks_used.get(perk, 0) - held, "held": held,
                        "quota": new_quota[perk], "tier": new_tier.value})
    old_fees = catalog.plan(account.tier).fees
    unused = unused_base(old_fees, account, on)
    new_base = 0 if new_tier is None else base_for_remaining(catalog.plan(new_tier).fees,
                                                             account, on)
    split = None if consumption is None else split_incremental(
        catalog, account.tier, new_tier, on, consumption, used_before)
    return Quote(kind, account.key, account.tier, new_tier, on, unused, new_base, split)


def format_money(minor: int, currency: str) -> str:
    """`USD 1,234.50` (minor units -> display; the sign is kept)."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{currency} {whole:,}.{cents:02d}"


def parse_money(text: str) -> int | None:
    """`1234`, `1,234.5`, `1234.56` -> minor units; None for anything else."""
    t = text.strip().replace(",", "")
    if not t or t.startswith("-") or t.count(".") > 1:
        return None
    whole, _, frac = t.partition(".")
    if not (whole or frac) or not (whole.isascii() and (whole.isdigit() or whole == "")) \
            or not (frac == "" or (frac.isascii() and frac.isdigit() and len(frac) <= 2)):
        return None
    if len(whole) > 13:
        return None
    return int(whole or "0") * 100 + int((frac + "00")[:2])
