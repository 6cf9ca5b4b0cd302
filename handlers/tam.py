"""`/tam`: what support staff can do (roles from the bot's own staff table)."""

from __future__ import annotations

import shlex
from datetime import date

from bot.domain.advisories import KINDS, TAG_KINDS, Targeting
from bot.domain.advisories import SEVERITIES as ADVISORY_SEVERITIES
from bot.domain.billing import ChangeKind, Quote, format_money, parse_money
from bot.domain.catalog import Target
from bot.domain.model import (
    CaseStatus,
    Lang,
    Role,
    Severity,
    Term,
    Tier,
    advisory_ref,
    parse_advisory_ref,
    parse_request_ref,
)
from bot.domain.sla import ClockState, clock_state
from bot.i18n import Translator, time_token
from bot.messages import Button, mark
from bot.services import accounts, advisories, cases, perks, plans, reports
from bot.services.base import Refusal
from handlers.core import (
    Call,
    Form,
    Kind,
    Reply,
    Router,
    UsageError,
    parse_arg,
    parse_mention,
    single_ref,
    split_options,
)
from handlers.support import case_line, parse_ref


def _tier(word: str) -> Tier:
    tier = Tier.parse(word)
    if tier is None:
        raise UsageError("error.bad_tier", given=word,
                         choices=", ".join(t.value for t in Tier))
    return tier


def _user(word: str) -> str:
    user = parse_mention(word)
    if user is None:
        raise UsageError("error.bad_user", given=word)
    return user


def _advisory_spec(call: Call) -> tuple[advisories.AdvisorySpec, bool]:
    pos, opts = split_options(call.args)
    confirm = bool(pos) and pos[-1].lower() == "confirm"
    if confirm:
        pos = pos[:-1]
    if len(pos) != 4:
        raise UsageError("advisory.need_fields", kinds=call.t.join(KINDS),
                         severities=call.t.join(ADVISORY_SEVERITIES))
    kind, severity, title, body = pos[0].lower(), pos[1].lower(), pos[2].strip(), pos[3]
    if kind not in KINDS:
        raise UsageError("advisory.bad_kind", given=pos[0], choices=call.t.join(KINDS))
    if severity not in ADVISORY_SEVERITIES:
        raise UsageError("advisory.bad_severity", given=pos[1],
                         choices=call.t.join(ADVISORY_SEVERITIES))
    if not title or len(title) > 150:
        raise UsageError("advisory.bad_title", max=150)
    if not body.strip() or len(body) > 2500:
        raise UsageError("advisory.bad_body", max=2500)
    names = {"regions", "products", "software", "accounts"}
    if set(opts) - names:
        raise UsageError("error.bad_option", given=sorted(set(opts) - names)[0],
                         choices=call.t.join(sorted(names)))

    def values(name: str) -> frozenset[str]:
        return frozenset(v.strip().lower() for v in opts.get(name, "").split(",") if v.strip())

    regions = values("regions")
    bad = sorted(regions - set(call.app.catalog.regions))
    if bad:
        raise Refusal("account.bad_region", region=bad[0],
                      choices=call.t.join(sorted(call.app.catalog.regions)))
    return advisories.AdvisorySpec(title, kind, severity, body, Targeting(
        regions, values("products"), values("software"), values("accounts"))), confirm



def render_quote(call: Call, q: Quote, *, applied: bool) -> str:
    """The quote as the TAM reads it: the rule, the money, what changes for the customer."""
    t = call.t
    cur = call.app.catalog.currency
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
        lines.append(t("plan.no_consumption"))
    elif inc.new_tier is None:
        lines.append(t("plan.incremental_unsubscribe", amount=format_money(inc.old_amount, cur)))
    else:
        lines.append(t("plan.incremental_split", old=t(f"tier.{inc.old_tier}"),
                       days_old=t("count.days", n=inc.days_old),
                       old_amount=format_money(inc.old_amount, cur),
                       new=t(f"tier.{inc.new_tier}"), days_new=t("count.days", n=inc.days_new),
                       new_amount=format_money(inc.new_amount, cur)))
    if q.kind == ChangeKind.UPGRADE:
        lines.append(t("plan.upgrade_perks_note"))
    if q.kind == ChangeKind.UNSUBSCRIBE:
        lines.append(t("plan.unsubscribe_note", on=q.on.isoformat()))
    else:
        lines.append(t("plan.open_cases_note"))
    return "\n".join(lines)


def _lang(word: str) -> Lang:
    lang = Lang.parse(word)
    if lang is None:
        raise UsageError("error.bad_lang", given=word)
    return lang


def register(router: Router) -> None:
    @router.command("tam", "staff add", "@user <admin|tam|engineer> [lang=en|zh]",
                    help_id="help.tam.staff_add", role=Role.ADMIN)
    async def staff_add(call: Call) -> Reply:
        pos, opts = split_options(call.args)
        if len(pos) != 2:
            raise UsageError("error.arg_count", n=2)
        if set(opts) - {"lang"}:
            raise UsageError("error.bad_option", given=sorted(set(opts) - {"lang"})[0],
                             choices="lang")
        user = _user(pos[0])
        role = Role.parse(pos[1])
        if role is None:
            raise UsageError("error.bad_role", given=pos[1])
        lang = _lang(opts.get("lang", "en"))
        await accounts.add_staff(call.app, call.actor, user, role, lang)
        return call.reply("staff.added", user=user, role=role.value)

    @router.command("tam", "language", "<en|zh>", help_id="help.tam.language",
                    role=Role.ENGINEER)
    async def language(call: Call) -> Reply:
        if len(call.args) != 1:
            raise UsageError("error.arg_count", n=1)
        lang = _lang(call.args[0])
        await accounts.set_staff_lang(call.app, call.actor, lang)
        return Reply(Translator(lang)("staff.language_set"))

    @router.command("tam", "account add",
                    '<account> <tier> <monthly|annual> [start=YYYY-MM-DD] [region=...] '
                    '[name="..."] [lang=en|zh]', help_id="help.tam.account_add", role=Role.ADMIN)
    async def account_add(call: Call) -> Reply:
        pos, opts = split_options(call.args)
        if len(pos) != 3:
            raise UsageError("error.arg_count", n=3)
        tier = _tier(pos[1])
        term = Term.parse(pos[2])
        if term is None:
            raise UsageError("error.bad_term", given=pos[2])
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
        lang = _lang(opts.get("lang", "en"))
        account = await accounts.add_account(call.app, call.actor, pos[0], tier, term, start,
                                             opts.get("region"), opts.get("name"), lang)
        return call.reply("account.added", key=account.key, name=account.name,
                          tier=account.tier.value, term=account.term.value,
                          start=account.start.isoformat(), end=account.last_day.isoformat(),
                          region=account.region, lang=account.lang.value)

    @router.command("tam", "account assign", "<account> @user",
                    help_id="help.tam.account_assign", role=Role.ADMIN)
    async def account_assign(call: Call) -> Reply:
        if len(call.args) != 2:
            raise UsageError("error.arg_count", n=2)
        user = _user(call.args[1])
        account = await accounts.assign_tam(call.app, call.actor, call.args[0], user)
        return call.reply("account.assigned", key=account.key, user=user)

    @router.command("tam", "link", "<account> [force]", help_id="help.tam.link", role=Role.TAM)
    async def link(call: Call) -> Reply:
        force = len(call.args) == 2 and call.args[1].lower() == "force"
        if len(call.args) != 1 and not force:
            raise UsageError("error.arg_count", n=1)
        account = await accounts.link_channel(call.app, call.actor, call.req.channel_id,
                                              call.args[0], force=force)
        return call.reply("link.done", key=account.key, channel=call.req.channel_id)

    @router.command("tam", "ack", "<ref>", help_id="help.tam.ack", role=Role.ENGINEER)
    async def ack(call: Call) -> Reply:
        if len(call.args) != 1:
            raise UsageError("error.need_ref")
        case_id = parse_ref(call.args[0])
        updated = await cases.first_response(call.app, call.actor, case_id, via="command")
        if updated is None:
            case = await cases.get_case(call.app, case_id, None)
            return call.reply("case.already_acked", ref=case.ref)
        return call.reply("case.acked", ref=updated.ref,
                          within=call.t("case.within" if updated.first_response_at
                                        and updated.first_response_at <= updated.due_at
                                        else "case.late"))

    @router.command("tam", "severity", "<ref> <severity>", help_id="help.tam.severity",
                    role=Role.ENGINEER)
    async def severity(call: Call) -> Reply:
        if len(call.args) != 2:
            raise UsageError("error.arg_count", n=2)
        case_id = parse_ref(call.args[0])
        sev = Severity.parse(call.args[1])
        if sev is None:
            raise UsageError("error.bad_severity", given=call.args[1],
                             choices=call.t.join(f"{s.value}/{s.alias}" for s in Severity))
        updated = await cases.regrade(call.app, call.actor, case_id, sev)
        return call.reply("case.regraded", ref=updated.ref, sev=updated.severity.value,
                          target=call.t.target(Target.parse_label(updated.target_label)),
                          due=time_token(updated.due_at))

    @router.command("tam", "resolve", "<ref>", help_id="help.tam.resolve", role=Role.ENGINEER)
    async def resolve(call: Call) -> Reply:
        if len(call.args) != 1:
            raise UsageError("error.need_ref")
        case = await cases.finish(call.app, call.actor, parse_ref(call.args[0]),
                                  scope_account=None, status=CaseStatus.RESOLVED)
        return call.reply("case.resolved_ok", ref=case.ref)

    @router.command("tam", "account usage", "<account> <YYYY-MM> <amount>",
                    help_id="help.tam.account_usage", role=Role.TAM)
    async def account_usage(call: Call) -> Reply:
        if len(call.args) != 3:
            raise UsageError("error.arg_count", n=3)
        amount = parse_money(call.args[2])
        if amount is None:
            raise UsageError("usage.bad_amount", given=call.args[2])
        account, before = await plans.record_usage(call.app, call.actor, call.args[0],
                                                   call.args[1], amount)
        money = format_money(amount, call.app.catalog.currency)
        if before is None:
            return call.reply("usage.recorded", key=account.key, month=call.args[1],
                              amount=money)
        return call.reply("usage.replaced", key=account.key, month=call.args[1], amount=money,
                          before=format_money(before, call.app.catalog.currency))

    @router.command("tam", "account renew", "<account> [monthly|annual]",
                    help_id="help.tam.account_renew", role=Role.ADMIN)
    async def account_renew(call: Call) -> Reply:
        if len(call.args) not in (1, 2):
            raise UsageError("error.arg_count_range", lo=1, hi=2)
        term = None
        if len(call.args) == 2:
            term = Term.parse(call.args[1])
            if term is None:
                raise UsageError("error.bad_term", given=call.args[1])
        account = await plans.renew(call.app, call.actor, call.args[0], term)
        return call.reply("account.renewed", key=account.key, term=account.term.value,
                          start=account.start.isoformat(), end=account.last_day.isoformat())

    @router.command("tam", "approve", "<request-id>", help_id="help.tam.approve", role=Role.TAM)
    async def approve(call: Call) -> Reply:
        request_id = single_ref(call, parse_request_ref, "perk.bad_ref")
        ref, account, _ = await perks.decide(call.app, call.actor, request_id, approve=True)
        return call.reply("perk.approved_ok", ref=ref, key=account.key)

    @router.command("tam", "reject", "<request-id> <reason...>", help_id="help.tam.reject",
                    role=Role.TAM)
    async def reject(call: Call) -> Reply:
        if len(call.args) < 2:
            raise UsageError("perk.reason_required")
        request_id = parse_arg(call.args[0], parse_request_ref, "perk.bad_ref")
        ref, account, _ = await perks.decide(call.app, call.actor, request_id, approve=False,
                                             reason=" ".join(call.args[1:]))
        return call.reply("perk.rejected_ok", ref=ref, key=account.key)

    @router.command("tam", "plan", "<account> upgrade|downgrade <tier> | unsubscribe "
                    "[consumption=AMOUNT] [confirm]", help_id="help.tam.plan", role=Role.ADMIN)
    async def plan(call: Call) -> Reply:
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
            new_tier = _tier(pos[2])
        elif kind != ChangeKind.UNSUBSCRIBE or len(pos) != 2:
            raise UsageError("plan.usage")
        consumption = None
        if "consumption" in opts:
            consumption = parse_money(opts["consumption"])
            if consumption is None:
                raise UsageError("usage.bad_amount", given=opts["consumption"])
        if confirm:
            _, q = await plans.apply(call.app, call.actor, key, kind, new_tier,
                                           consumption)
            return Reply(render_quote(call, q, applied=True))
        _, q = await plans.quote(call.app, key, kind, new_tier, consumption)
        command = "/tam " + " ".join(["plan", *call.args, "confirm"])
        return Reply(render_quote(call, q, applied=False) + "\n" +
                     call.t("plan.confirm_hint", command=command),
                     buttons=(Button(call.t("plan.button_confirm"), command, "primary"),))

    @router.command("tam", "account tag", "<account> [region=a,b] [product=x,y] [software=z]",
                    help_id="help.tam.account_tag", role=Role.TAM)
    async def account_tag(call: Call) -> Reply:
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
        shown = call.t("list.sep_major").join(
            call.t("tags.cell", kind=call.t(f"tags.kind.{k}"), values=call.t.join(v) or "—")
            for k, v in tags.items())
        return call.reply("tags.shown", key=pos[0].lower(), tags=shown)

    @router.command("tam", "advisory", '<kind> <severity> "<title>" "<body>" [regions=..] '
                    "[products=..] [software=..] [accounts=..] [confirm]",
                    help_id="help.tam.advisory", role=Role.TAM)
    async def advisory(call: Call) -> Reply:
        if call.req.kind is Kind.FORM:
            # the form's fields are the command's arguments: previewed the same way
            call.args = [call.form_value(n) for n in ("kind", "severity", "title", "body")]
            call.args += [f"{n}={call.form_value(n)}" for n in ("regions", "products",
                                                                 "software", "accounts")
                          if call.form_value(n)]
        if not call.args:
            if call.req.can_open_form:
                return Reply(call.t("advisory.form_opened"), form=Form("advisory"))
            raise UsageError("advisory.need_fields", kinds=call.t.join(KINDS),
                             severities=call.t.join(ADVISORY_SEVERITIES))
        spec, confirm = _advisory_spec(call)
        if confirm:
            ref, total = await advisories.send(call.app, call.actor, spec)
            return call.reply("advisory.sending", ref=ref,
                              groups=call.t("count.groups", n=total))
        groups, accounts_n = await advisories.preview(call.app, spec)
        if groups == 0:
            return call.reply("advisory.no_targets")
        command = "/tam " + shlex.join(["advisory", *call.args, "confirm"])
        return Reply(call.t("advisory.preview", title=spec.title,
                            groups=call.t("count.groups", n=groups),
                            accounts=call.t("count.accounts", n=accounts_n)) + "\n" +
                     call.t("advisory.confirm_hint", command=command),
                     buttons=(Button(call.t("advisory.button_send"), command, "primary"),))

    @router.command("tam", "advisory status", "<advisory-id>",
                    help_id="help.tam.advisory_status", role=Role.ENGINEER)
    async def advisory_status(call: Call) -> Reply:
        advisory_id = single_ref(call, parse_advisory_ref, "advisory.bad_ref")
        st = await advisories.status(call.app, advisory_id)
        t = call.t
        lines = [t("advisory.status_header", ref=st.ref, title=st.title, total=st.total,
                   sent=st.counts["sent"], failed=st.counts["failed"],
                   pending=st.counts["pending"])]
        lines += [t("advisory.acked_line", account=a, user=u, at=time_token(w))
                  for a, u, w in st.acked]
        if st.waiting:
            lines.append(t("advisory.waiting_line", accounts=t.join(st.waiting)))
        if st.failed:
            lines.append(t("advisory.failed_header",
                           groups=t("count.groups", n=len(st.failed))))
            lines += [t("advisory.failed_group", account=a, channel=c, error=e)
                      for a, c, e in st.failed]
        return Reply("\n".join(lines))

    @router.command("tam", "advisories", help_id="help.tam.advisories", role=Role.ENGINEER)
    async def advisories_list(call: Call) -> Reply:
        rows = await advisories.recent(call.app)
        if not rows:
            return call.reply("advisory.none")
        t = call.t
        return Reply("\n".join(
            t("advisory.list_line", ref=advisory_ref(a.id), title=a.title,
              severity=t(f"advisory.severity.{a.severity}"), sent=c["sent"], total=a.total,
              failed=c["failed"], acked=t("count.accounts", n=acked))
        for a, c, acked in rows))

    @router.command("tam", "report", "<account> [YYYY-MM]", help_id="help.tam.report",
                    role=Role.TAM)
    async def report(call: Call) -> Reply:
        if len(call.args) not in (1, 2):
            raise UsageError("error.arg_count_range", lo=1, hi=2)
        year = month = None
        if len(call.args) == 2:
            parsed = reports.parse_month(call.args[1])
            if parsed is None:
                raise UsageError("usage.bad_month", given=call.args[1])
            year, month = parsed
        account, label = await reports.request(call.app, call.actor, call.args[0], year, month)
        return call.reply("report.queued", key=account.key, month=label)

    @router.command("tam", "breaches", help_id="help.tam.breaches", role=Role.ENGINEER)
    async def breaches(call: Call) -> Reply:
        now = call.app.clock()
        ratio = call.app.catalog.near_breach_ratio
        marks = {ClockState.BREACHED: (0, mark("breach")), ClockState.NEAR: (1, mark("warning"))}
        rows = []
        for account, case in await cases.staff_cases(call.app, call.actor):
            state = clock_state(case, now, ratio)
            if state in marks:
                order, lead = marks[state]
                # the mark leads the line; the case line adds no second breach mark
                rows.append((order, call.t("breaches.line", mark=lead, key=account.key,
                                           line=case_line(call.t, case, now, flag=False))))
        if not rows:
            return call.reply("breaches.none")
        rows.sort(key=lambda r: r[0])
        lines = [call.t("breaches.header", n=len(rows))] + [r[1] for r in rows[:40]]
        if len(rows) > 40:
            lines.append(call.t("list.more", n=len(rows) - 40))
        return Reply("\n".join(lines))
