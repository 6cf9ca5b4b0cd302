"""Cases: `/support open|cases|sla|case|close`, `/tam ack|severity|resolve|breaches`, and the
case interactions that are not typed commands: the open-case form, "open a case from this
message", the card's buttons, the ticket reaction, a staff reply in a card's thread. Each is
a `Request` the adapter built; the router resolved who and where."""

from __future__ import annotations

from datetime import datetime

from bot.domain.catalog import Target
from bot.domain.model import Case, CaseStatus, Role, Severity, parse_case_ref
from bot.domain.sla import ClockState, clock_state
from bot.i18n import Translator
from bot.messages import mark, time_token
from bot.services import cases
from bot.services.base import Refusal, record_event
from handlers.core import (
    NOTHING,
    Call,
    Form,
    Kind,
    Reply,
    Router,
    UsageError,
    Visibility,
    parse_arg,
)

# refusals of the open-case form shown next to the field at fault
OPEN_FORM_FIELDS = {"case.summary_required": "summary", "case.summary_too_long": "summary",
                    "case.description_too_long": "description",
                    "account.bad_region": "region"}

# the longest list a reply shows; the rest is counted
LIST_MAX = 40


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
    """A case reference typed by the user (`CS-1042`), or a usage error naming it."""
    return parse_arg(word, parse_case_ref, "error.bad_ref")


def _one_ref(call: Call) -> int:
    if len(call.args) != 1:
        raise UsageError("error.need_ref")
    return parse_ref(call.args[0])


def _scope(call: Call) -> str:
    """Customers act only within the account bound to the channel they type in."""
    if call.account is None:
        raise Refusal("case.unbound")
    return call.account.key


def _parse_severity(call: Call, word: str) -> Severity:
    severity = Severity.parse(word)
    if severity is None:
        raise UsageError("error.bad_severity", given=word,
                         choices=call.t.join(f"{s.value}/{s.alias}" for s in Severity))
    return severity


# --- /support: the customer's cases ---------------------------------------------------------

# the severities whose confirmation repeats the self-assessment note (seed §5.2)
TOP_SEVERITIES = frozenset({Severity.S1, Severity.S2})


def _take_region(args: list[str]) -> tuple[list[str], str | None]:
    """`region=<id>` anywhere among the arguments (other `a=b` words stay in the summary)."""
    rest: list[str] = []
    region: str | None = None
    for a in args:
        if a.lower().startswith("region="):
            region = a.split("=", 1)[1].strip()
            if not region:
                raise UsageError("case.empty_region")
        else:
            rest.append(a)
    return rest, region


def _opened_lines(t: Translator, opened: cases.Opened) -> list[str]:
    """The notices of a newly opened case, and the self-assessment note after S1/S2."""
    lines = [t(msg_id, **params) for msg_id, params in opened.notices]
    if opened.case.requested_severity in TOP_SEVERITIES:
        lines.append(t("case.severity_note"))
    return lines


async def open_case(call: Call) -> Reply:
    """`/support open <severity> <summary...> [region=<id>]`; without arguments, the form
    (where one can open) or what is missing."""
    if not call.args:
        if call.account is None:
            raise Refusal("case.unbound")
        if call.req.can_open_form:
            return Reply(call.t("case.form_opened"),
                         form=Form("open_case", description=call.t("case.severity_note")))
        raise UsageError("case.need_severity")
    args, region = _take_region(call.args)
    if not args:
        raise UsageError("case.need_severity")
    severity = _parse_severity(call, args[0])
    opened = await cases.open_case(call.app, call.actor, call.req.channel_id, severity,
                                   " ".join(args[1:]), region=region, bound=call.account)
    t = call.t
    lines = [t("case.opened", ref=opened.case.ref, sev=opened.case.severity.value,
               target=t.target(Target.parse_label(opened.case.target_label)),
               due=time_token(opened.case.due_at))]
    lines += _opened_lines(t, opened)
    return Reply("\n".join(lines))


async def list_cases(call: Call) -> Reply:
    """`/support cases`: the group's open cases with their clocks."""
    account, active = await cases.channel_cases(call.app, call.req.channel_id)
    if not active:
        return call.reply("case.none_open", name=account.name)
    now = call.app.clock()
    lines = [call.t("case.list_header", name=account.name, n=len(active))]
    lines += [case_line(call.t, c, now) for c in active[:LIST_MAX]]
    if len(active) > LIST_MAX:
        lines.append(call.t("list.more", n=len(active) - LIST_MAX))
    return Reply("\n".join(lines))


async def sla(call: Call) -> Reply:
    """`/support sla`: the timers of the group's cases still waiting for a first response."""
    account, active = await cases.channel_cases(call.app, call.req.channel_id)
    waiting = [c for c in active if c.awaiting_first_response]
    if not waiting:
        return call.reply("sla.none_waiting", name=account.name)
    now = call.app.clock()
    t = call.t
    lines = [t("sla.header", n=len(waiting))]
    lines += [t("sla.line", ref=c.ref, sev=c.severity.value, left=t.time_left(c.due_at, now),
                due=time_token(c.due_at), target=t.target(Target.parse_label(c.target_label)))
              for c in waiting[:LIST_MAX]]
    return Reply("\n".join(lines))


async def show_case(call: Call) -> Reply:
    """`/support case <ref>`: staff see any case, a customer only their group's."""
    if len(call.args) != 1:
        raise UsageError("error.need_ref")
    # an unbound channel is refused before the reference is read
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


async def close(call: Call) -> Reply:
    """`/support close <ref>`: the customer closes their own group's case."""
    case = await cases.finish(call.app, call.actor, _one_ref(call),
                              scope_account=_scope(call), status=CaseStatus.CLOSED)
    return Reply(call.t("case.closed_ok", ref=case.ref), Visibility.EPHEMERAL)


# --- /tam: staff work on cases --------------------------------------------------------------

async def ack(call: Call) -> Reply:
    """`/tam ack <ref>`: the first response, within the target or late."""
    case_id = _one_ref(call)
    updated = await cases.first_response(call.app, call.actor, case_id, via="command")
    if updated is None:
        case = await cases.get_case(call.app, case_id, None)
        return call.reply("case.already_acked", ref=case.ref)
    return call.reply("case.acked", ref=updated.ref,
                      within=call.t("case.within" if updated.first_response_at
                                    and updated.first_response_at <= updated.due_at
                                    else "case.late"))


async def regrade(call: Call) -> Reply:
    """`/tam severity <ref> <severity>`: a new severity, and the target it brings."""
    if len(call.args) != 2:
        raise UsageError("error.arg_count", n=2)
    case_id = parse_ref(call.args[0])
    severity = _parse_severity(call, call.args[1])
    updated = await cases.regrade(call.app, call.actor, case_id, severity)
    return call.reply("case.regraded", ref=updated.ref, sev=updated.severity.value,
                      target=call.t.target(Target.parse_label(updated.target_label)),
                      due=time_token(updated.due_at))


async def resolve(call: Call) -> Reply:
    """`/tam resolve <ref>`."""
    case = await cases.finish(call.app, call.actor, _one_ref(call), scope_account=None,
                              status=CaseStatus.RESOLVED)
    return call.reply("case.resolved_ok", ref=case.ref)


async def breaches(call: Call) -> Reply:
    """`/tam breaches`: the caller's breached cases, then those near their target."""
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
    lines = [call.t("breaches.header", n=len(rows))] + [r[1] for r in rows[:LIST_MAX]]
    if len(rows) > LIST_MAX:
        lines.append(call.t("list.more", n=len(rows) - LIST_MAX))
    return Reply("\n".join(lines))


# --- interactions that are not typed commands -----------------------------------------------

async def open_from_form(call: Call) -> Reply:
    """The open-case form was submitted: the same use case as `/support open`."""
    severity = Severity.parse(call.form_value("severity"))
    if severity is None:
        raise UsageError("form.pick_severity", field="severity")
    opened = await cases.open_case(call.app, call.actor, call.req.channel_id, severity,
                                   call.form_value("summary"), call.form_value("description"),
                                   call.form_value("region") or None,
                                   call.form_value("software") or None,
                                   bound=call.account)
    t = call.t
    lines = [t("case.opened_short", ref=opened.case.ref)]
    lines += _opened_lines(t, opened)
    return Reply("\n".join(lines))


async def intake(call: Call) -> Reply:
    """Offer the open-case form for a message (shortcut, reaction button), prefilled with
    its text; refused before any form opens when the channel cannot take a case."""
    await cases.check_intake(call.app, call.req.channel_id)
    return Reply("", form=Form("open_case", {"message": call.form_value("message")},
                               description=call.t("case.severity_note")))


async def reaction(call: Call) -> Reply:
    """A ticket reaction in a bound group: offer (once per event) to open a case."""
    if call.account is None:
        return NOTHING  # not a customer group: reactions there are none of our business
    if not await record_event(call.app, call.req.event_id):
        return NOTHING  # a retry of an offer already made
    return Reply(call.t("reaction.offer"), form=Form("offer_intake"))


async def thread_reply(call: Call) -> Reply:
    """A staff reply in a case card's thread is the case's first response. The thread is
    named by the card's message (`thread_id`) or, where a platform has no threads to reply
    in (the console), by the case reference in `fields["case"]`."""
    if not call.actor.is_staff:
        return NOTHING
    if call.req.thread_id is not None:
        case = await cases.case_by_card(call.app, call.req.channel_id, call.req.thread_id)
        case_id = case.id if case is not None else None
    else:
        case_id = parse_arg(call.form_value("case"), parse_case_ref, "error.bad_ref")
        if call.account is None:
            raise Refusal("case.not_found")
        await cases.get_case(call.app, case_id, call.account.key)
    if case_id is not None:
        await cases.first_response(call.app, call.actor, case_id, via="thread",
                                   event_id=call.req.event_id)
    return NOTHING


def _card_case(call: Call) -> tuple[int, str]:
    """The case a card button names, and the account of the channel it was clicked in: the
    id in the button is never trusted alone, the case must belong to that account."""
    if len(call.args) != 1:
        raise UsageError("error.arg_count", n=1)
    case_id = parse_arg(call.args[0], parse_case_ref, "error.bad_ref")
    if call.account is None:
        raise Refusal("case.not_found")
    return case_id, call.account.key


async def card_ack(call: Call) -> Reply:
    case_id, bound = _card_case(call)
    await cases.get_case(call.app, case_id, bound)
    done = await cases.first_response(call.app, call.actor, case_id, via="button")
    return call.reply("case.acked_button" if done else "case.already_acked_short")


async def card_close(call: Call) -> Reply:
    """Staff resolve from the card; a customer closes."""
    case_id, bound = _card_case(call)
    closed = await cases.finish(call.app, call.actor, case_id, scope_account=bound,
                                status=CaseStatus.RESOLVED if call.actor.is_staff
                                else CaseStatus.CLOSED)
    return call.reply("case.closed_ok", ref=closed.ref)



def register(router: Router) -> None:
    router.help_note("support", "help.support.contacts")
    router.command("support", "open", "<severity> <summary...> [region=<region>]",
                   help_id="help.support.open")(open_case)
    router.command("support", "cases", help_id="help.support.cases")(list_cases)
    router.command("support", "sla", help_id="help.support.sla")(sla)
    router.command("support", "case", "<ref>", help_id="help.support.case")(show_case)
    router.command("support", "close", "<ref>", help_id="help.support.close")(close)
    router.command("support", "open-form", help_id="help.support.open", hidden=True,
                   form_fields=OPEN_FORM_FIELDS)(open_from_form)
    router.command("support", "card ack", "<ref>", help_id="help.support.case",
                   hidden=True)(card_ack)
    router.command("support", "card close", "<ref>", help_id="help.support.close",
                   hidden=True)(card_close)
    router.command("tam", "ack", "<ref>", help_id="help.tam.ack", role=Role.ENGINEER)(ack)
    router.command("tam", "severity", "<ref> <severity>", help_id="help.tam.severity",
                   role=Role.ENGINEER)(regrade)
    router.command("tam", "resolve", "<ref>", help_id="help.tam.resolve",
                   role=Role.ENGINEER)(resolve)
    router.command("tam", "breaches", help_id="help.tam.breaches", role=Role.ENGINEER)(breaches)
    router.on(Kind.INTAKE)(intake)
    router.on(Kind.REACTION)(reaction)
    router.on(Kind.THREAD_REPLY)(thread_reply)
