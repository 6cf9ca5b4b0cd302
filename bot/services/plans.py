"""Use cases for consumption figures and plan changes (quote first, then apply)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from bot.domain.billing import ChangeKind, Quote, Refused, quote_change
from bot.domain.model import Account, Term, Tier
from bot.domain.perks import granted
from bot.services.accounts import add_months, add_years
from bot.services.base import Actor, AppContext, Refusal
from storage.repos import Accounts, Audit, PerkLedger, PlanChanges, Usage

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


async def record_usage(app: AppContext, actor: Actor, key: str, month: str,
                       amount: int) -> tuple[Account, int | None]:
    if not MONTH.match(month):
        raise Refusal("usage.bad_month", given=month)
    now = app.clock()
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key.lower())
        if account is None:
            raise Refusal("account.unknown", key=key)
        before = await Usage(s).set(account.key, month, amount, actor.user_id, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="account.usage", account_key=account.key,
                             before={"month": month, "amount": before} if before is not None
                             else None, after={"month": month, "amount": amount})
    return account, before


async def quote(app: AppContext, key: str, kind: str, new_tier: Tier | None,
                consumption: int | None) -> tuple[Account, Quote]:
    """Price a change under the §7 rules; raises Refusal naming the rule or perk."""
    now = app.clock()
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key.lower())
        if account is None:
            raise Refusal("account.unknown", key=key)
        on = now.astimezone(app.tz(account)).date()
        if consumption is None:
            consumption = await Usage(s).get(account.key, on.strftime("%Y-%m"))
        _, used = await PerkLedger(s).totals(account.key, account.start)
        changes = await PlanChanges(s).count_since(account.key, now - timedelta(days=365))
    if not account.in_force(on):
        raise Refusal("plan.cancelled", key=account.key, on=str(account.cancelled_on))
    result = quote_change(app.catalog, account, kind, new_tier, on, consumption, used, changes)
    if isinstance(result, Refused):
        raise Refusal(result.msg_id, **result.params)
    return account, result


async def apply(app: AppContext, actor: Actor, key: str, kind: str, new_tier: Tier | None,
                consumption: int | None) -> tuple[Account, Quote]:
    """Re-check and apply a change. New cases use the new tier; open cases keep theirs."""
    account, q = await quote(app, key, kind, new_tier, consumption)
    now = app.clock()
    async with app.db.transaction() as s:
        current = await Accounts(s).get(account.key)
        if current != account:  # changed since the quote was computed: quote again
            raise Refusal("plan.changed_meanwhile", key=account.key)
        if kind == ChangeKind.UNSUBSCRIBE:
            updated = await Accounts(s).change(account.key, cancelled_on=q.on)
        else:
            assert new_tier is not None
            # upgrade: perk quotas stay those of the plan bought (§7); downgrade: the new
            # tier's (the downgrade check guaranteed nothing consumed exceeds them)
            perk_tier = (account.perk_tier or account.tier) if kind == ChangeKind.UPGRADE \
                else new_tier
            updated = await Accounts(s).change(account.key, tier=new_tier.value,
                                               perk_tier=perk_tier.value)
        inc = q.incremental
        await PlanChanges(s).add(account_key=account.key, kind=kind,
                                 old_tier=account.tier.value,
                                 new_tier=new_tier.value if new_tier else None,
                                 effective=q.on, due_now=q.due_now,
                                 incremental_old=inc.old_amount if inc else None,
                                 incremental_new=inc.new_amount if inc else None,
                                 by=actor.user_id, at=now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action=f"plan.{kind}", account_key=account.key,
                             before={"tier": account.tier.value,
                                     "perks": granted(app.catalog, account)},
                             after={"tier": updated.tier.value, "due_now": q.due_now,
                                    "cancelled_on": str(updated.cancelled_on)
                                    if updated.cancelled_on else None,
                                    "perks": granted(app.catalog, replace(updated))})
    return updated, q


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
        updated = await Accounts(s).change(account.key, term=term.value, start_date=start,
                                           end_date=end, perk_tier=None, cancelled_on=None)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="plan.renew", account_key=account.key,
                             before={"start": str(account.start), "end": str(account.end),
                                     "term": account.term.value},
                             after={"start": str(start), "end": str(end), "term": term.value})
    return updated
