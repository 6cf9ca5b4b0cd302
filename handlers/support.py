"""`/support`: what a customer in a bound group can do."""

from __future__ import annotations

from datetime import datetime

from bot.domain.catalog import Target
from bot.domain.model import Case, CaseStatus, Severity, Tier, parse_case_ref
from bot.domain.perks import balances
from bot.i18n import Translator, time_token
from bot.services import cases
from bot.services.base import Refusal
from handlers.core import Call, Form, Reply, Router, UsageError, Visibility
from storage.repos import PerkLedger


def case_line(t: Translator, case: Case, now_ts: datetime) -> str:
    """One line per case: reference, severity, summary, status and the clock."""
    if case.awaiting_first_response:
        clock = t("case.clock_waiting", left=t.time_left(case.due_at, now_ts),
                  due=time_token(case.due_at))
    else:
        clock = t("case.clock_answered", at=time_token(case.first_response_at or case.opened_at))
    flag = " :rotating_light:" if case.breached and case.awaiting_first_response else ""
    return (f"*{case.ref}* [{case.severity.value}] {case.summary} — "
            f"{t('status.' + case.status.value)}; {clock}{flag}")


def parse_ref(word: str) -> int:
    case_id = parse_case_ref(word)
    if case_id is None:
        raise UsageError("error.bad_ref", given=word)
    return case_id


def register(router: Router) -> None:
    @router.command("support", "plan", help_id="help.support.plan")
    async def plan(call: Call) -> Reply:
        account = call.account
        if account is None:
            raise Refusal("case.unbound")
        t = call.t
        catalog = call.app.catalog
        p = catalog.plan(account.tier)
        async with call.app.db.transaction() as s:
            held, used = await PerkLedger(s).totals(account.key, account.start)
        lines = [t("plan.header", name=account.name, tier=t(f"tier.{account.tier}"),
                   term=t(f"term.{account.term}"), start=account.start.isoformat(),
                   end=account.end.isoformat(), region=account.region)]
        chans = ", ".join(t(f"channel.{c}") for c in p.channels)
        if p.tam:
            chans += " — " + (t("plan.tam_is", user=account.tam_user_id)
                              if account.tam_user_id else t("plan.tam_unassigned"))
        lines.append(t("plan.channels", channels=chans))
        lines.append(t("plan.handler", handler=t(f"handler.{p.handler}")))
        targets = " · ".join(
            f"{sev.value} {t('severity.' + sev.value)} {t.target(p.response[sev])}"
            for sev in Severity)
        lines.append(t("plan.targets", targets=targets))
        lines.append(t("plan.items", items=", ".join(t(f"item.{i}") for i in p.items)))
        lines.append(t("plan.perks_header"))
        for b in balances(p, account, held, used):
            lines.append(t("plan.perk_line", perk=t(f"perk.{b.perk}"), used=b.used,
                           held=b.held, left=b.left, quota=b.quota))
        if not any(b.quota for b in balances(p, account, held, used)) and any(
                p.perks.values()):
            lines.append(t("plan.perks_annual_only"))
        if account.tier is not Tier.ENTERPRISE:
            nxt = list(Tier)[account.tier.rank + 1]
            added = [i for i in catalog.plan(nxt).items if i not in p.items]
            lines.append(t("plan.next_tier", tier=t(f"tier.{nxt}"),
                           items=", ".join(t(f"item.{i}") for i in added) or "—"))
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
                             choices=", ".join(f"{s.value}/{s.alias}" for s in Severity))
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


def _scope(call: Call) -> str:
    """Customers act only within the account bound to the channel they type in."""
    if call.account is None:
        raise Refusal("case.unbound")
    return call.account.key

