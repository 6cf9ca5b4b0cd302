"""Use cases for consumption figures and plan changes (quote first, then apply)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.billing import (
    ChangeKind,
    FeeEstimate,
    IncrementalSplit,
    Quote,
    Refused,
    estimate_month,
    quote_change,
    split_incremental,
    usage_before,
)
from bot.domain.model import Account, PlanChange, Term, Tier
from bot.domain.perks import granted
from bot.i18n import Translator
from bot.services import home, outbox
from bot.services.accounts import add_months, add_years
from bot.services.base import Actor, AppContext, Refusal, require_manager
from storage.repos import Accounts, Audit, Bindings, PerkLedger, PlanChanges, Usage

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
DAY = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-\d{2}$")


def _period(text: str) -> str:
    """A month (`YYYY-MM`) or one day (`YYYY-MM-DD`) a consumption figure is for."""
    if MONTH.match(text):
        return text
    if DAY.match(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise Refusal("usage.bad_month", given=text)


async def month_consumption(s: AsyncSession, key: str, month: str) -> tuple[int | None, str]:
    """A month's consumption: its recorded figure ("month"), else the sum of the day figures
    recorded so far ("days"), else None."""
    figure = await Usage(s).get(key, month)
    if figure is not None:
        return figure, "month"
    daily = await Usage(s).daily(key, month)
    return (sum(daily.values()), "days") if daily else (None, "month")


@dataclass(frozen=True)
class MonthFee:
    """The fee estimate of an account's month (`estimate` None without a consumption
    figure); `basis` says whether the figure is the month's or the sum of its days'."""

    account: Account
    month: str
    estimate: FeeEstimate | None
    basis: str
    days: int  # day figures recorded for the month
    base: int  # the tier's base fee for a month
    split: IncrementalSplit | None = None  # the month had a tier change: the split as quoted


async def fee_estimate(app: AppContext, key: str, month: str | None = None) -> MonthFee:
    """This month's (or the given month's) support fee for the account at its current tier:
    base, incremental from the recorded consumption, total (seed §6)."""
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key.lower())
        if account is None:
            raise Refusal("account.unknown", key=key)
        month = month or app.clock().astimezone(app.tz(account)).strftime("%Y-%m")
        if not MONTH.match(month):
            raise Refusal("usage.bad_month", given=month)
        consumption, basis = await month_consumption(s, account.key, month)
        daily = await Usage(s).daily(account.key, month)
        change = next((c for c in reversed(await PlanChanges(s).for_account(account.key))
                       if c.new_tier is not None and c.effective.strftime("%Y-%m") == month),
                      None)
    fees = app.catalog.plan(account.tier).fees
    split = None
    if change is not None and consumption is not None and change.new_tier is not None:
        # a month of tier change: each tier's share, as the quote computes it (seed §6)
        split = split_incremental(app.catalog, Tier(change.old_tier), Tier(change.new_tier),
                                  change.effective, consumption,
                                  usage_before(daily, change.effective))
    return MonthFee(account, month, None if consumption is None
                    else estimate_month(fees, consumption), basis, len(daily), fees.base,
                    split)


async def record_usage(app: AppContext, actor: Actor, key: str, month: str,
                       amount: int) -> tuple[Account, int | None]:
    """Record a month's or a day's consumption; the previous figure, if any."""
    month = _period(month)
    now = app.clock()
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key.lower())
        if account is None:
            raise Refusal("account.unknown", key=key)
        require_manager(actor, account, "account.usage")
        before = await Usage(s).set(account.key, month, amount, actor.user_id, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="account.usage", account_key=account.key,
                             before={"month": month, "amount": before} if before is not None
                             else None, after={"month": month, "amount": amount})
    return account, before


async def _quote(s: AsyncSession, app: AppContext, key: str, kind: str,
                 new_tier: Tier | None, consumption: int | None,
                 lock: bool = False) -> tuple[Account, Quote]:
    now = app.clock()
    account = await Accounts(s).get(key.lower(), for_update=lock)
    if account is None:
        raise Refusal("account.unknown", key=key)
    on = now.astimezone(app.tz(account)).date()
    if not account.in_force(on):
        raise Refusal("plan.cancelled", key=account.key, on=str(account.cancelled_on))
    month = on.strftime("%Y-%m")
    if consumption is None:
        consumption, _ = await month_consumption(s, account.key, month)
    # with a day figure for each of the old tier's days, the split follows their usage
    before = usage_before(await Usage(s).daily(account.key, month), on)
    held, used = await PerkLedger(s).totals(account.key, account.start)
    # a pending request counts as used: approving it later must not overdraw the new plan
    claimed = {p: held.get(p, 0) + used.get(p, 0) for p in set(held) | set(used)}
    changes = await PlanChanges(s).count_since(account.key, now - timedelta(days=365))
    result = quote_change(app.catalog, account, kind, new_tier, on, consumption, claimed,
                          changes, perks_pending=held, used_before=before)
    if isinstance(result, Refused):
        raise Refusal(result.msg_id, **result.params)
    return account, result


async def quote(app: AppContext, key: str, kind: str, new_tier: Tier | None,
                consumption: int | None) -> tuple[Account, Quote]:
    """Price a change under the §7 rules; raises Refusal naming the rule or perk."""
    async with app.db.transaction() as s:
        return await _quote(s, app, key, kind, new_tier, consumption)


async def apply(app: AppContext, actor: Actor, key: str, kind: str, new_tier: Tier | None,
                consumption: int | None) -> tuple[Account, Quote]:
    """Check and apply a change with the account locked, so two confirmations (a double
    click, two staff) cannot both apply. New cases use the new tier; open cases keep theirs."""
    now = app.clock()
    async with app.db.transaction() as s:
        account, q = await _quote(s, app, key, kind, new_tier, consumption, lock=True)
        if kind == ChangeKind.UNSUBSCRIBE:
            updated = await Accounts(s).save(account, replace(account, cancelled_on=q.on))
        else:
            assert new_tier is not None
            # the quotas of the plan year are those of the lowest tier it has been on since
            # it was bought: an upgrade adds none (§7), a downgrade lowers them
            bought = account.perk_tier or account.tier
            perk_tier = min(bought, new_tier, key=lambda t: t.rank)
            updated = await Accounts(s).save(account, replace(account, tier=new_tier,
                                                              perk_tier=perk_tier))
        inc = q.incremental
        await PlanChanges(s).add(PlanChange(
            account_key=account.key, kind=kind, old_tier=account.tier.value,
            new_tier=new_tier.value if new_tier else None, effective=q.on, due_now=q.due_now,
            incremental_old=inc.old_amount if inc else None,
            incremental_new=inc.new_amount if inc else None, by=actor.user_id, at=now))
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action=f"plan.{kind}", account_key=account.key,
                             before={"tier": account.tier.value,
                                     "perks": granted(app.catalog, account)},
                             after={"tier": updated.tier.value, "due_now": q.due_now,
                                    "cancelled_on": str(updated.cancelled_on)
                                    if updated.cancelled_on else None,
                                    "perks": granted(app.catalog, replace(updated))})
        await _announce(s, app, updated, kind, account.tier, now)
    return updated, q


async def _announce(s: AsyncSession, app: AppContext, account: Account, kind: str,
                    old: Tier, now: datetime) -> None:
    """Tell the group (and the TAM) what changed for them."""
    t = Translator(account.lang)
    text = t(f"plan.changed_notice.{kind}", old=t(f"tier.{old}"),
             new=t(f"tier.{account.tier}"), on=str(account.cancelled_on or ""))
    for channel in await Bindings(s).channels_of(account.key):
        await outbox.post(s, now, channel=channel, text=text,
                          key=f"plan:{account.key}:{kind}:{int(now.timestamp())}:{channel}")
    if account.tam_user_id:
        await outbox.post(s, now, user=account.tam_user_id,
                          text=f"{account.key}: {text}",
                          key=f"plan:{account.key}:{kind}:{int(now.timestamp())}:tam")
    await home.touch(s, account.key, now)


async def renew(app: AppContext, actor: Actor, key: str, term: Term | None) -> Account:
    """Start the next plan year (or month): quotas reset, the bought tier is the current one."""
    now = app.clock()
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key.lower())
        if account is None:
            raise Refusal("account.unknown", key=key)
        term = term or account.term
        start = account.cancelled_on or account.end
        if start < now.astimezone(app.tz(account)).date() - timedelta(days=366):
            start = now.astimezone(app.tz(account)).date()
        end = add_years(start, 1) if term is Term.ANNUAL else add_months(start, 1)
        updated = await Accounts(s).save(account, replace(
            account, term=term, start=start, end=end, perk_tier=None, cancelled_on=None))
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="plan.renew", account_key=account.key,
                             before={"start": str(account.start), "end": str(account.end),
                                     "term": account.term.value},
                             after={"start": str(start), "end": str(end), "term": term.value})
        await home.touch(s, account.key, now)
    return updated
