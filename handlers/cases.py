"""Case intake and case-card interactions that are not typed commands: the open-case form,
"open a case from this message", the card's buttons, the :ticket: reaction, a staff reply in
a card's thread. Each is a `Request` the adapter built; the router resolved who and where."""

from __future__ import annotations

from bot.domain.model import CaseStatus, Severity, parse_case_ref
from bot.services import cases
from bot.services.base import Refusal, record_event
from handlers.core import NOTHING, Call, Form, Kind, Reply, Router, UsageError, parse_arg

# refusals of the open-case form shown next to the field at fault
OPEN_FORM_FIELDS = {"case.summary_required": "summary", "case.summary_too_long": "summary",
                    "case.description_too_long": "description",
                    "account.bad_region": "region"}


async def open_from_form(call: Call) -> Reply:
    """The open-case form was submitted: the same use case as `/support open`."""
    severity = Severity.parse(call.form_value("severity"))
    if severity is None:
        raise UsageError("form.pick_severity", field="severity")
    opened = await cases.open_case(call.app, call.actor, call.req.channel_id, severity,
                                   call.form_value("summary"), call.form_value("description"),
                                   call.form_value("region") or None,
                                   call.form_value("software") or None)
    t = call.t
    lines = [t("case.opened_short", ref=opened.case.ref)]
    lines += [t(m, **p) for m, p in opened.notices]
    return Reply("\n".join(lines))


async def intake(call: Call) -> Reply:
    """Offer the open-case form for a message (shortcut, reaction button), prefilled with
    its text; refused before any form opens when the channel cannot take a case."""
    await cases.check_intake(call.app, call.req.channel_id)
    return Reply("", form=Form("open_case", {"message": call.form_value("message")}))


async def reaction(call: Call) -> Reply:
    """A :ticket: reaction in a bound group: offer (once per event) to open a case."""
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
    router.command("support", "open-form", help_id="help.support.open", hidden=True,
                   form_fields=OPEN_FORM_FIELDS)(open_from_form)
    router.command("support", "card ack", "<ref>", help_id="help.support.case",
                   hidden=True)(card_ack)
    router.command("support", "card close", "<ref>", help_id="help.support.close",
                   hidden=True)(card_close)
    router.on(Kind.INTAKE)(intake)
    router.on(Kind.REACTION)(reaction)
    router.on(Kind.THREAD_REPLY)(thread_reply)
