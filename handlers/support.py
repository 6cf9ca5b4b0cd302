"""`/support`: what a customer in a bound group can do."""

from __future__ import annotations

from datetime import date, datetime

from bot.domain.catalog import Target
from bot.domain.model import (
    Case,
    CaseStatus,
    Severity,
    Tier,
    parse_advisory_ref,
    parse_case_ref,
    parse_request_ref,
    request_ref,
)
from bot.i18n import Translator, time_token
from bot.messages import mark
from bot.services import advisories, cases, perks, quota
from bot.services.base import Refusal
from handlers.core import (
    Call,
    Form,
    Reply,
    Router,
    UsageError,
    Visibility,
    parse_arg,
    single_ref,
)


def case_line(t: Translator, case: Case, now_ts: datetime, *, flag: bool = True) -> str:
    """One line per case: reference, severity, summary, status and the clock.

    `flag=False` leaves out the trailing breach mark, for lists that lead with their own.
    """
    if case.awaiting_first_response:
        clock = t("case.clock_waiting", left=t.time_left(case.due_at, now_ts),
                  due=time_token(case.due_at))
    else:
        clock = t("case.clock_answered", at=time_token(case.first_response_at or case.opened_at))
    breached = flag and case.breached and case.awaiting_first_response
    return t("case.line", ref=case.ref, sev=case.severity.value, summary=case.summary,
             status=t("status." + case.status.value), clock=clock,
             flag=" " + mark("breach") if breached else "")


def parse_ref(word: str) -> int:
    return parse_arg(word, parse_case_ref, "error.bad_ref")


def register(router: Router) -> None:
    @router.command("support", "plan", help_id="help.support.plan")
    async def plan(call: Call) -> Reply:
        account = call.account
        if account is None:
            raise Refusal("case.unbound")
        t = call.t
        catalog = call.app.catalog
        p = catalog.plan(account.tier)
        perk_rows = await quota.balances_of(call.app, account)
        lines = [t("plan.header", name=account.name, tier=t(f"tier.{account.tier}"),
                   term=t(f"term.{account.term}"), start=account.start.isoformat(),
                   end=account.last_day.isoformat(), region=account.region)]
        if account.cancelled_on is not None:
            lines.append(t("plan.cancelled_line", on=account.cancelled_on.isoformat()))
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
        if account.tier is not Tier.ENTERPRISE:
            nxt = list(Tier)[account.tier.rank + 1]
            added = [i for i in catalog.plan(nxt).items if i not in p.items]
            lines.append(t("plan.next_tier", tier=t(f"tier.{nxt}"),
                           items=t.join(t(f"item.{i}") for i in added) or "—"))
        return Reply("\n".join(lines))

    @router.command("support", "open", "<severity> <summary...>", help_id="help.support.open")
    async def open_(call: Call) -> Reply:
        if not call.args:
            if call.account is None:
                raise Refusal("case.unbound")
            if call.req.can_open_form:
                return Reply(call.t("case.form_opened"), form=Form("open_case"))
            raise UsageError("case.need_severity")
        severity = Severity.parse(call.args[0])
        if severity is None:
            raise UsageError("error.bad_severity", given=call.args[0],
                             choices=call.t.join(f"{s.value}/{s.alias}" for s in Severity))
        opened = await cases.open_case(call.app, call.actor, call.req.channel_id, severity,
                                       " ".join(call.args[1:]))
        t = call.t
        lines = [t("case.opened", ref=opened.case.ref, sev=opened.case.severity.value,
                   target=t.target(Target.parse_label(opened.case.target_label)),
                   due=time_token(opened.case.due_at))]
        lines += [t(msg_id, **params) for msg_id, params in opened.notices]
        return Reply("\n".join(lines))

    @router.command("support", "cases", help_id="help.support.cases")
    async def list_cases(call: Call) -> Reply:
        account, active = await cases.channel_cases(call.app, call.req.channel_id)
        if not active:
            return call.reply("case.none_open", name=account.name)
        now = call.app.clock()
        lines = [call.t("case.list_header", name=account.name, n=len(active))]
        lines += [case_line(call.t, c, now) for c in active[:40]]
        if len(active) > 40:
            lines.append(call.t("list.more", n=len(active) - 40))
        return Reply("\n".join(lines))

    @router.command("support", "sla", help_id="help.support.sla")
    async def sla(call: Call) -> Reply:
        account, active = await cases.channel_cases(call.app, call.req.channel_id)
        waiting = [c for c in active if c.awaiting_first_response]
        if not waiting:
            return call.reply("sla.none_waiting", name=account.name)
        now = call.app.clock()
        lines = [call.t("sla.header", n=len(waiting))]
        lines += [call.t("sla.line", ref=c.ref, sev=c.severity.value,
                         left=call.t.time_left(c.due_at, now), due=time_token(c.due_at),
                         target=call.t.target(Target.parse_label(c.target_label)))
                 for c in waiting[:40]]
        return Reply("\n".join(lines))

    @router.command("support", "case", "<ref>", help_id="help.support.case")
    async def show_case(call: Call) -> Reply:
        if len(call.args) != 1:
            raise UsageError("error.need_ref")
        scope = None if call.actor.is_staff else _scope(call)
        case = await cases.get_case(call.app, parse_ref(call.args[0]), scope)
        t = call.t
        lines = [case_line(t, case, call.app.clock()),
                 t("case.detail", opener=case.opener_user_id, opened=time_token(case.opened_at),
                   target=t.target(Target.parse_label(case.target_label)),
                   due=time_token(case.due_at))]
        if case.requested_severity is not case.severity:
            lines.append(t("case.detail_requested", sev=case.requested_severity.value))
        if case.description:
            lines.append(case.description[:1500])
        return Reply("\n".join(lines))

    @router.command("support", "close", "<ref>", help_id="help.support.close")
    async def close(call: Call) -> Reply:
        if len(call.args) != 1:
            raise UsageError("error.need_ref")
        case = await cases.finish(call.app, call.actor, parse_ref(call.args[0]),
                                  scope_account=_scope(call), status=CaseStatus.CLOSED)
        return Reply(call.t("case.closed_ok", ref=case.ref), Visibility.EPHEMERAL)


    @router.command("support", "scope", "<software>", help_id="help.support.scope")
    async def scope(call: Call) -> Reply:
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

    @router.command("support", "escort", "<YYYY-MM-DD> [days]", help_id="help.support.escort")
    async def escort(call: Call) -> Reply:
        if not 1 <= len(call.args) <= 2:
            raise UsageError("error.arg_count_range", lo=1, hi=2)
        start = parse_date(call.args[0])
        days = 1
        if len(call.args) == 2:
            if not (call.args[1].isascii() and call.args[1].isdecimal()) or \
                    len(call.args[1]) > 3:
                raise UsageError("perk.bad_days", given=call.args[1])
            days = int(call.args[1])
        return _requested(call, await perks.request_perk(call.app, call.actor,
                                                          call.req.channel_id, "escort",
                                                          start, days))

    @router.command("support", "review", "availability|monitoring <YYYY-MM-DD>",
                    help_id="help.support.review")
    async def review(call: Call) -> Reply:
        if len(call.args) != 2:
            raise UsageError("error.arg_count", n=2)
        kinds = {"availability": "availability_check", "monitoring": "resource_monitoring"}
        perk = kinds.get(call.args[0].lower())
        if perk is None:
            raise UsageError("perk.bad_review", given=call.args[0])
        start = parse_date(call.args[1])
        return _requested(call, await perks.request_perk(call.app, call.actor,
                                                          call.req.channel_id, perk, start, 1))

    @router.command("support", "requests", help_id="help.support.requests")
    async def requests(call: Call) -> Reply:
        account, rows = await perks.group_requests(call.app, call.req.channel_id)
        t = call.t
        if not rows:
            return call.reply("perk.no_requests", name=account.name)
        lines = [t("perk.requests_header", name=account.name)]
        for r in rows[-30:]:
            lines.append(t("perk.request_line", ref=request_ref(r.id),
                           perk=t(f"perk.{r.perk}"),
                           when=perks.window_text(t, r.perk, r.start_date, r.amount),
                           status=t(f"perk.status.{r.status}"),
                           reason=f" — {r.reason}" if r.reason else ""))
        return Reply("\n".join(lines))

    @router.command("support", "acknowledge", "<advisory-id>",
                    help_id="help.support.acknowledge")
    async def acknowledge(call: Call) -> Reply:
        advisory_id = single_ref(call, parse_advisory_ref, "advisory.bad_ref")
        ref = await advisories.acknowledge(call.app, call.actor, call.req.channel_id,
                                           advisory_id)
        return call.reply("advisory.acked_ok", ref=ref)

    @router.command("support", "cancel", "<request-id>", help_id="help.support.cancel")
    async def cancel(call: Call) -> Reply:
        request_id = single_ref(call, parse_request_ref, "perk.bad_ref")
        ref = await perks.cancel(call.app, call.actor, call.req.channel_id, request_id)
        return call.reply("perk.cancelled_ok", ref=ref)


def parse_date(word: str) -> date:
    try:
        return date.fromisoformat(word)
    except ValueError:
        raise UsageError("error.bad_date", given=word) from None


def _requested(call: Call, r: perks.Requested) -> Reply:
    t = call.t
    lines = [t("perk.requested", ref=r.ref, perk=t(f"perk.{r.perk}"),
               when=perks.window_text(t, r.perk, r.start, r.amount))]
    lines += [t(w, **p) for w, p in r.warnings]
    return Reply("\n".join(lines))


def _scope(call: Call) -> str:
    """Customers act only within the account bound to the channel they type in."""
    if call.account is None:
        raise Refusal("case.unbound")
    return call.account.key

