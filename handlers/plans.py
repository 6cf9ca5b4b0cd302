"""Plans: `/support plan` and `/support scope` (what the group's plan covers), and
`/tam plan` (quote, then apply, an upgrade, downgrade or unsubscription)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.billing import (
    ChangeKind,
    IncrementalSplit,
    Quote,
    SplitBasis,
    format_money,
    parse_money,
)
from bot.domain.catalog import Catalog
from bot.domain.model import Account, Role, Severity, Tier
from bot.domain.perks import PerkBalance
from bot.i18n import Translator
from bot.messages import Button
from bot.services import plans, quota
from bot.services.base import Refusal
from handlers.core import Call, Reply, Router, UsageError, split_options


def parse_tier(word: str) -> Tier:
    """A tier typed by the user, or a usage error listing the tiers."""
    tier = Tier.parse(word)
    if tier is None:
        raise UsageError("error.bad_tier", given=word,
                         choices=", ".join(t.value for t in Tier))
    return tier


def render_plan(t: Translator, catalog: Catalog, account: Account,
                perk_rows: Sequence[PerkBalance]) -> str:
    """The plan as its customer reads it: tier, term, channels, targets, items, perks used
    and left, and what the next tier adds."""
    p = catalog.plan(account.tier)
    lines = [t("plan.header", name=account.name, tier=t(f"tier.{account.tier}"),
               term=t(f"term.{account.term}"), start=account.start.isoformat(),
               end=account.last_day.isoformat(), region=account.region)]
    if account.cancelled_on is not None:
        lines.append(t("plan.cancelled_line", on=account.cancelled_on.isoformat()))
    if account.region in catalog.service_exclusions:
        lines.append(t("plan.region_excluded", region=account.region))
    chans = t.join(t(f"channel.{c}") for c in p.channels)
    if p.tam:
        chans += " — " + (t("plan.tam_is", user=account.tam_user_id)
                          if account.tam_user_id else t("plan.tam_unassigned"))
    lines.append(t("plan.channels", channels=chans))
    lines.append(t("plan.handler", handler=t(f"handler.{p.handler}")))
    targets = " · ".join(
        f"{sev.value} {t('severity.' + sev.value)} {t.target(p.response[sev])}"
        for sev in Severity)
    lines.append(t("plan.targets", targets=targets))
    lines.append(t("plan.items", items=t.join(t(f"item.{i}") for i in p.items)))
    if any(p.perks.values()):
        lines.append(t("plan.perks_header", start=account.start.isoformat(),
                       end=account.last_day.isoformat()))
        for b in perk_rows:
            if p.perks[b.perk]:
                lines.append(t("plan.perk_line", perk=t(f"perk.{b.perk}"), used=b.used,
                               held=b.held, left=b.left, quota=b.quota))
        if not any(b.quota for b in perk_rows):
            lines.append(t("plan.perks_annual_only"))
    if any(b.perk == "escort" and b.quota for b in perk_rows):
        lines.append(t("perk.escort_includes"))
    if account.tier is not Tier.ENTERPRISE:
        nxt = list(Tier)[account.tier.rank + 1]
        lines.append(t("plan.next_tier", tier=t(f"tier.{nxt}"),
                       items=t.join(next_tier_adds(t, catalog, account.tier, nxt)) or "—"))
    return "\n".join(lines)


def next_tier_adds(t: Translator, catalog: Catalog, tier: Tier, nxt: Tier) -> list[str]:
    """What a higher tier adds: its channels (IM group, enterprise phone line, TAM), the
    response targets it shortens (S1 < 10 min), then the items of its catalog."""
    now, then = catalog.plan(tier), catalog.plan(nxt)
    added = [t(f"upsell.channel.{c}") for c in then.channels if c not in now.channels]
    faster = [f"{sev.value} {t.target(then.response[sev])}" for sev in Severity
              if then.response[sev] is not None and then.response[sev] != now.response[sev]]
    if faster:
        added.append(t("upsell.faster", targets=t.join(faster)))
    return added + [t(f"item.{i}") for i in then.items if i not in now.items]


async def show_plan(call: Call) -> Reply:
    """`/support plan`: the plan of the account bound to the channel."""
    if call.account is None:
        raise Refusal("case.unbound")
    balances = await quota.balances_of(call.app, call.account)
    return Reply(render_plan(call.t, call.app.catalog, call.account, balances))


async def scope(call: Call) -> Reply:
    """`/support scope <software>`: third-party software support, and whether this group's
    plan covers it."""
    t = call.t
    catalog = call.app.catalog
    lang = t.lang.value
    names = t.join(sw.name for sw in catalog.third_party)
    if not call.args:
        raise UsageError("scope.need_software", names=names)
    sw = catalog.software(" ".join(call.args))
    lines: list[str] = []
    if sw is None:
        lines.append(t("scope.unknown", given=" ".join(call.args), names=names))
        lines.append(t("scope.elsewhere"))  # seed §5.3: where to ask instead
    else:
        tier = call.account.tier if call.account else None
        covered = tier is not None and catalog.plan(tier).third_party_support
        lines.append(t("scope.entry", name=sw.name, category=t(f"scope.cat.{sw.category}"),
                       versions=sw.versions.get(lang, sw.versions["en"]),
                       help=sw.help.get(lang, sw.help["en"])))
        if tier is None:
            lines.append(t("scope.which_tiers"))
        elif covered:
            lines.append(t("scope.covered", tier=t(f"tier.{tier}")))
        else:
            lines.append(t("scope.not_covered", tier=t(f"tier.{tier}")))
    lines.append(t("scope.exclusions"))
    return Reply("\n".join(lines))


def split_line(t: Translator, cur: str, inc: IncrementalSplit) -> str:
    """A month's incremental fee shared by two tiers, and on what basis (seed §6)."""
    if inc.basis == SplitBasis.USAGE:
        return t("plan.incremental_split_usage", old=t(f"tier.{inc.old_tier}"),
                 days_old=t("count.days", n=inc.days_old),
                 usage_old=format_money(inc.usage_old or 0, cur),
                 old_amount=format_money(inc.old_amount, cur),
                 new=t(f"tier.{inc.new_tier}"), days_new=t("count.days", n=inc.days_new),
                 usage_new=format_money(inc.usage_new or 0, cur),
                 new_amount=format_money(inc.new_amount, cur))
    return t("plan.incremental_split", old=t(f"tier.{inc.old_tier}"),
             days_old=t("count.days", n=inc.days_old),
             old_amount=format_money(inc.old_amount, cur),
             new=t(f"tier.{inc.new_tier}"), days_new=t("count.days", n=inc.days_new),
             new_amount=format_money(inc.new_amount, cur))


def render_quote(t: Translator, currency: str, q: Quote, *, applied: bool,
                 for_customer: bool = False) -> str:
    """The quote as the TAM reads it: the rule, the money, what changes for the customer.
    `for_customer`: the same figures, without telling them to run staff commands."""
    cur = currency
    lines = [t(f"plan.{'applied' if applied else 'quote'}.{q.kind}", key=q.account_key,
               old=t(f"tier.{q.old_tier}"),
               new=t(f"tier.{q.new_tier}") if q.new_tier else "", on=q.on.isoformat())]
    lines.append(t("plan.unused_old", amount=format_money(q.unused_old, cur)))
    if q.new_tier is not None:
        lines.append(t("plan.new_base", amount=format_money(q.new_base, cur)))
    due = q.due_now
    lines.append(t("plan.charge_now" if due >= 0 else "plan.refund_now",
                   amount=format_money(abs(due), cur)))
    inc = q.incremental
    if inc is None:
        lines.append(t("plan.no_consumption_customer" if for_customer
                       else "plan.no_consumption"))
    elif inc.new_tier is None:
        lines.append(t("plan.incremental_unsubscribe", amount=format_money(inc.old_amount, cur)))
    else:
        lines.append(split_line(t, cur, inc))
    if q.kind == ChangeKind.UPGRADE:
        lines.append(t("plan.upgrade_perks_note"))
    if q.kind == ChangeKind.UNSUBSCRIBE:
        lines.append(t("plan.unsubscribe_note", on=q.on.isoformat()))
    else:
        lines.append(t("plan.open_cases_note"))
    return "\n".join(lines)


async def change_plan(call: Call) -> Reply:
    """`/tam plan <account> upgrade|downgrade <tier> | unsubscribe`: a quote with a button
    to confirm; with `confirm`, the change applied."""
    pos, opts = split_options(call.args)
    if set(opts) - {"consumption"}:
        raise UsageError("error.bad_option", given=sorted(set(opts) - {"consumption"})[0],
                         choices="consumption")
    confirm = bool(pos) and pos[-1].lower() == "confirm"
    if confirm:
        pos = pos[:-1]
    if len(pos) < 2:
        raise UsageError("plan.usage")
    key, kind = pos[0], pos[1].lower()
    new_tier: Tier | None = None
    if kind in (ChangeKind.UPGRADE, ChangeKind.DOWNGRADE):
        if len(pos) != 3:
            raise UsageError("plan.usage")
        new_tier = parse_tier(pos[2])
    elif kind != ChangeKind.UNSUBSCRIBE or len(pos) != 2:
        raise UsageError("plan.usage")
    consumption = None
    if "consumption" in opts:
        consumption = parse_money(opts["consumption"])
        if consumption is None:
            raise UsageError("usage.bad_amount", given=opts["consumption"])
    currency = call.app.catalog.currency
    if confirm:
        _, q = await plans.apply(call.app, call.actor, key, kind, new_tier, consumption)
        return Reply(render_quote(call.t, currency, q, applied=True))
    _, q = await plans.quote(call.app, key, kind, new_tier, consumption)
    command = "/tam " + " ".join(["plan", *call.args, "confirm"])
    return Reply(render_quote(call.t, currency, q, applied=False) + "\n" +
                 call.t("plan.confirm_hint", command=command),
                 buttons=(Button(call.t("plan.button_confirm"), command, "primary"),))


async def customer_quote(call: Call) -> Reply:
    """`/support plan quote upgrade|downgrade <tier>`: what a change would cost this group's
    account, the same quote staff see, read-only (applying it stays with staff)."""
    if call.account is None:
        raise Refusal("case.unbound")
    if len(call.args) != 2 or call.args[0].lower() not in (ChangeKind.UPGRADE,
                                                           ChangeKind.DOWNGRADE):
        raise UsageError("plan.quote_usage")
    new_tier = parse_tier(call.args[1])
    _, q = await plans.quote(call.app, call.account.key, call.args[0].lower(), new_tier, None)
    return Reply(render_quote(call.t, call.app.catalog.currency, q, applied=False,
                              for_customer=True) + "\n" + call.t("plan.quote_read_only"))


def register(router: Router) -> None:
    router.command("support", "plan", help_id="help.support.plan")(show_plan)
    router.command("support", "plan quote", "upgrade|downgrade <tier>",
                   help_id="help.support.plan_quote")(customer_quote)
    router.command("support", "scope", "<software>", help_id="help.support.scope")(scope)
    router.command("tam", "plan", "<account> upgrade|downgrade <tier> | unsubscribe "
                   "[consumption=AMOUNT] [confirm]", help_id="help.tam.plan",
                   role=Role.ADMIN)(change_plan)
