"""Accounts and staff: `/tam staff add|language`, `/tam account add|assign|usage|renew|tag`
and `/tam link` (binding a group to its account)."""

from __future__ import annotations

import re
from datetime import date

from bot.domain.advisories import TAG_KINDS
from bot.domain.billing import format_money, parse_money
from bot.domain.model import Lang, Role, Term
from bot.i18n import Translator
from bot.services import accounts, advisories, plans
from handlers.core import Call, Reply, Router, UsageError, parse_mention, split_options
from handlers.plans import parse_tier, split_line


def parse_user(word: str) -> str:
    """A user named in a command (a mention, `@ID` or an id), or a usage error."""
    user = parse_mention(word)
    if user is None:
        raise UsageError("error.bad_user", given=word)
    return user


def parse_lang(word: str) -> Lang:
    """A language typed by the user (`en`, `zh`), or a usage error."""
    lang = Lang.parse(word)
    if lang is None:
        raise UsageError("error.bad_lang", given=word)
    return lang


def parse_term(word: str) -> Term:
    term = Term.parse(word)
    if term is None:
        raise UsageError("error.bad_term", given=word)
    return term


def render_tags(t: Translator, tags: dict[str, list[str]]) -> str:
    """An account's targeting tags, kind by kind ('—' for a kind without any)."""
    return t("list.sep_major").join(
        t("tags.cell", kind=t(f"tags.kind.{k}"), values=t.join(v) or "—")
        for k, v in tags.items())


async def staff_add(call: Call) -> Reply:
    """`/tam staff add @user <role> [lang=..]` (admins)."""
    pos, opts = split_options(call.args)
    if len(pos) != 2:
        raise UsageError("error.arg_count", n=2)
    if set(opts) - {"lang"}:
        raise UsageError("error.bad_option", given=sorted(set(opts) - {"lang"})[0],
                         choices="lang")
    user = parse_user(pos[0])
    role = Role.parse(pos[1])
    if role is None:
        raise UsageError("error.bad_role", given=pos[1])
    lang = parse_lang(opts.get("lang", "en"))
    await accounts.add_staff(call.app, call.actor, user, role, lang)
    return call.reply("staff.added", user=user, role=role.value)


async def language(call: Call) -> Reply:
    """`/tam language <en|zh>`: staff read every reply in their own language."""
    if len(call.args) != 1:
        raise UsageError("error.arg_count", n=1)
    lang = parse_lang(call.args[0])
    await accounts.set_staff_lang(call.app, call.actor, lang)
    # confirmed in the language just chosen
    return Reply(Translator(lang)("staff.language_set"))


async def account_add(call: Call) -> Reply:
    """`/tam account add <account> <tier> <term> [start=..] [region=..] [name=..] [lang=..]`."""
    pos, opts = split_options(call.args)
    if len(pos) != 3:
        raise UsageError("error.arg_count", n=3)
    tier = parse_tier(pos[1])
    term = parse_term(pos[2])
    unknown = set(opts) - {"start", "region", "name", "lang"}
    if unknown:
        raise UsageError("error.bad_option", given=sorted(unknown)[0],
                         choices="start, region, name, lang")
    start = call.app.clock().date()
    if "start" in opts:
        try:
            start = date.fromisoformat(opts["start"])
        except ValueError:
            raise UsageError("error.bad_date", given=opts["start"]) from None
    lang = parse_lang(opts.get("lang", "en"))
    account = await accounts.add_account(call.app, call.actor, pos[0], tier, term, start,
                                         opts.get("region"), opts.get("name"), lang)
    text = call.t("account.added", key=account.key, name=account.name,
                  tier=account.tier.value, term=account.term.value,
                  start=account.start.isoformat(), end=account.last_day.isoformat(),
                  region=account.region, lang=account.lang.value)
    return Reply(text + _excluded_note(call, account.key, account.region))


def _excluded_note(call: Call, key: str, region: str) -> str:
    """For staff: the account's region is outside the service area (seed §3)."""
    if region not in call.app.catalog.service_exclusions:
        return ""
    return "\n" + call.t("account.region_excluded", key=key, region=region)


async def account_assign(call: Call) -> Reply:
    """`/tam account assign <account> @user`: the account's TAM."""
    if len(call.args) != 2:
        raise UsageError("error.arg_count", n=2)
    user = parse_user(call.args[1])
    account = await accounts.assign_tam(call.app, call.actor, call.args[0], user)
    return call.reply("account.assigned", key=account.key, user=user)


async def link(call: Call) -> Reply:
    """`/tam link <account> [force] [webhook=<address>] [group=<id>]`: bind the channel typed
    in to the account; `webhook=` gives the group's delivery address, for platforms that need
    one; `group=` names, instead, a group of a platform that cannot send commands (WeLink)."""
    args, opts = split_options(call.args)
    unknown = set(opts) - {"webhook", "group"}
    if unknown:
        raise UsageError("error.bad_option", given=sorted(unknown)[0], choices="webhook, group")
    force = len(args) == 2 and args[1].lower() == "force"
    if len(args) != 1 and not force:
        raise UsageError("error.arg_count", n=1)
    channel = call.req.channel_id
    if "group" in opts:
        channel = remote_group(call, opts["group"])
    account = await accounts.link_channel(call.app, call.actor, channel,
                                          args[0], force=force, address=opts.get("webhook"))
    note = _excluded_note(call, account.key, account.region)
    if channel != call.req.channel_id:
        return Reply(call.t("link.done_remote", key=account.key, group=channel) + note)
    return Reply(call.t("link.done", key=account.key, channel=call.req.channel_id) + note)


def render_estimate(t: Translator, currency: str, fee: plans.MonthFee) -> str:
    """A month's fee estimate as staff read it: base + incremental = total, and from what."""
    account, est = fee.account, fee.estimate
    base = format_money(fee.base, currency)
    if est is None:
        return t("usage.estimate_none", key=account.key, month=fee.month,
                 tier=t(f"tier.{account.tier}"), base=base)
    source = (t("usage.from_days", n=fee.days) if fee.basis == "days"
              else t("usage.from_month"))
    text = t("usage.estimate", key=account.key, month=fee.month,
             tier=t(f"tier.{account.tier}"), base=base,
             incremental=format_money(est.incremental, currency),
             total=format_money(est.total, currency),
             consumption=format_money(est.consumption, currency), source=source)
    if fee.split is not None:  # a month of tier change: the incremental fee is shared
        text += "\n" + split_line(t, currency, fee.split)
    return text


REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def remote_group(call: Call, given: str) -> str:
    """The qualified id of a group named with `group=` (`welink:acme-ops`): a platform that
    cannot send commands, and a name of letters, digits, `.`, `_`, `-`."""
    platform, sep, name = given.strip().partition(":")
    remote = sorted(call.app.remote_platforms)
    if not remote:
        raise UsageError("link.no_remote_platform")
    if not sep or platform.lower() not in remote or not REMOTE_NAME.fullmatch(name):
        raise UsageError("link.bad_group", given=given, example=f"{remote[0]}:acme-ops")
    return f"{platform.lower()}:{name}"


async def account_usage(call: Call) -> Reply:
    """`/tam account usage <account> [YYYY-MM|YYYY-MM-DD] [amount]`: record a month's (or a
    day's) cloud consumption; always answered with the month's fee estimate."""
    if not 1 <= len(call.args) <= 3:
        raise UsageError("error.arg_count_range", lo=1, hi=3)
    currency = call.app.catalog.currency
    period = call.args[1] if len(call.args) >= 2 else None
    lines: list[str] = []
    if len(call.args) == 3:
        assert period is not None
        amount = parse_money(call.args[2])
        if amount is None:
            raise UsageError("usage.bad_amount", given=call.args[2])
        account, before = await plans.record_usage(call.app, call.actor, call.args[0],
                                                   period, amount)
        money = format_money(amount, currency)
        lines.append(call.t("usage.recorded", key=account.key, month=period, amount=money)
                     if before is None else
                     call.t("usage.replaced", key=account.key, month=period, amount=money,
                            before=format_money(before, currency)))
    fee = await plans.fee_estimate(call.app, call.args[0], period[:7] if period else None)
    lines.append(render_estimate(call.t, currency, fee))
    return Reply("\n".join(lines))


async def account_renew(call: Call) -> Reply:
    """`/tam account renew <account> [monthly|annual]`."""
    if len(call.args) not in (1, 2):
        raise UsageError("error.arg_count_range", lo=1, hi=2)
    term = parse_term(call.args[1]) if len(call.args) == 2 else None
    account = await plans.renew(call.app, call.actor, call.args[0], term)
    return call.reply("account.renewed", key=account.key, term=account.term.value,
                      start=account.start.isoformat(), end=account.last_day.isoformat())


async def account_tag(call: Call) -> Reply:
    """`/tam account tag <account> [region=..] [product=..] [software=..]`: set the tags
    advisories target by; without options, show them."""
    pos, opts = split_options(call.args)
    if len(pos) != 1:
        raise UsageError("error.arg_count", n=1)
    unknown = set(opts) - set(TAG_KINDS)
    if unknown:
        raise UsageError("error.bad_option", given=sorted(unknown)[0],
                         choices=call.t.join(TAG_KINDS))
    if opts:
        tags = await advisories.set_tags(call.app, call.actor, pos[0], {
            k: [v.strip().lower() for v in val.split(",") if v.strip()]
            for k, val in opts.items()})
    else:
        tags = await advisories.get_tags(call.app, pos[0])
    return call.reply("tags.shown", key=pos[0].lower(), tags=render_tags(call.t, tags))


def register(router: Router) -> None:
    router.command("tam", "staff add", "@user <admin|tam|engineer> [lang=en|zh]",
                   help_id="help.tam.staff_add", role=Role.ADMIN)(staff_add)
    router.command("tam", "language", "<en|zh>", help_id="help.tam.language",
                   role=Role.ENGINEER)(language)
    router.command("tam", "account add",
                   '<account> <tier> <monthly|annual> [start=YYYY-MM-DD] [region=...] '
                   '[name="..."] [lang=en|zh]', help_id="help.tam.account_add",
                   role=Role.ADMIN)(account_add)
    router.command("tam", "account assign", "<account> @user",
                   help_id="help.tam.account_assign", role=Role.ADMIN)(account_assign)
    router.command("tam", "link", "<account> [force] [webhook=URL] [group=ID]",
                   help_id="help.tam.link", role=Role.TAM)(link)
    router.command("tam", "account usage", "<account> [YYYY-MM|YYYY-MM-DD] [amount]",
                   help_id="help.tam.account_usage", role=Role.TAM)(account_usage)
    router.command("tam", "account renew", "<account> [monthly|annual]",
                   help_id="help.tam.account_renew", role=Role.ADMIN)(account_renew)
    router.command("tam", "account tag", "<account> [region=a,b] [product=x,y] [software=z]",
                   help_id="help.tam.account_tag", role=Role.TAM)(account_tag)
