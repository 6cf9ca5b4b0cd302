"""Perks: `/support escort|review|requests|cancel` for a customer group, `/tam approve|reject`
for its TAM."""

from __future__ import annotations

from datetime import date

from bot.domain.model import Role, parse_request_ref, request_ref
from bot.services import perks
from handlers.core import Call, Reply, Router, UsageError, parse_arg, single_ref

# `/support review <kind>` -> the perk it requests
REVIEW_KINDS = {"availability": "availability_check", "monitoring": "resource_monitoring"}

# the newest requests `/support requests` lists
REQUESTS_SHOWN = 30


def parse_date(word: str) -> date:
    """A date typed as YYYY-MM-DD, or a usage error naming it."""
    try:
        return date.fromisoformat(word)
    except ValueError:
        raise UsageError("error.bad_date", given=word) from None


def render_requested(call: Call, r: perks.Requested) -> str:
    """A new request as its requester reads it, with any warnings (a short notice, ...)."""
    t = call.t
    lines = [t("perk.requested", ref=r.ref, perk=t(f"perk.{r.perk}"),
               when=t.perk_window(r.perk, r.start, r.amount))]
    lines += [t(w, **p) for w, p in r.warnings]
    if r.perk == "escort":  # what the day brings, and where longer escorts are bought
        lines.append(t("perk.escort_includes"))
    return "\n".join(lines)


async def escort(call: Call) -> Reply:
    """`/support escort <YYYY-MM-DD> [days]`."""
    if not 1 <= len(call.args) <= 2:
        raise UsageError("error.arg_count_range", lo=1, hi=2)
    start = parse_date(call.args[0])
    days = 1
    if len(call.args) == 2:
        if not (call.args[1].isascii() and call.args[1].isdecimal()) or len(call.args[1]) > 3:
            raise UsageError("perk.bad_days", given=call.args[1])
        days = int(call.args[1])
    return Reply(render_requested(call, await perks.request_perk(
        call.app, call.actor, call.req.channel_id, "escort", start, days)))


async def review(call: Call) -> Reply:
    """`/support review availability|monitoring <YYYY-MM-DD>`."""
    if len(call.args) != 2:
        raise UsageError("error.arg_count", n=2)
    perk = REVIEW_KINDS.get(call.args[0].lower())
    if perk is None:
        raise UsageError("perk.bad_review", given=call.args[0])
    start = parse_date(call.args[1])
    return Reply(render_requested(call, await perks.request_perk(
        call.app, call.actor, call.req.channel_id, perk, start, 1)))


async def requests(call: Call) -> Reply:
    """`/support requests`: the group's newest perk requests and where they stand."""
    account, rows = await perks.group_requests(call.app, call.req.channel_id)
    t = call.t
    if not rows:
        return call.reply("perk.no_requests", name=account.name)
    lines = [t("perk.requests_header", name=account.name)]
    for r in rows[-REQUESTS_SHOWN:]:
        lines.append(t("perk.request_line", ref=request_ref(r.id), perk=t(f"perk.{r.perk}"),
                       when=t.perk_window(r.perk, r.start_date, r.amount),
                       status=t(f"perk.status.{r.status}"),
                       reason=f" — {r.reason}" if r.reason else ""))
    return Reply("\n".join(lines))


async def cancel(call: Call) -> Reply:
    """`/support cancel <request-id>`: the group withdraws a pending request."""
    request_id = single_ref(call, parse_request_ref, "perk.bad_ref")
    ref = await perks.cancel(call.app, call.actor, call.req.channel_id, request_id)
    return call.reply("perk.cancelled_ok", ref=ref)


async def approve(call: Call) -> Reply:
    """`/tam approve <request-id>`."""
    request_id = single_ref(call, parse_request_ref, "perk.bad_ref")
    ref, account, _ = await perks.decide(call.app, call.actor, request_id, approve=True)
    return call.reply("perk.approved_ok", ref=ref, key=account.key)


async def reject(call: Call) -> Reply:
    """`/tam reject <request-id> <reason...>`: a rejection always says why."""
    if len(call.args) < 2:
        raise UsageError("perk.reason_required")
    request_id = parse_arg(call.args[0], parse_request_ref, "perk.bad_ref")
    ref, account, _ = await perks.decide(call.app, call.actor, request_id, approve=False,
                                         reason=" ".join(call.args[1:]))
    return call.reply("perk.rejected_ok", ref=ref, key=account.key)


def register(router: Router) -> None:
    router.command("support", "escort", "<YYYY-MM-DD> [days]",
                   help_id="help.support.escort")(escort)
    router.command("support", "review", "availability|monitoring <YYYY-MM-DD>",
                   help_id="help.support.review")(review)
    router.command("support", "requests", help_id="help.support.requests")(requests)
    router.command("support", "cancel", "<request-id>", help_id="help.support.cancel")(cancel)
    router.command("tam", "approve", "<request-id>", help_id="help.tam.approve",
                   role=Role.TAM)(approve)
    router.command("tam", "reject", "<request-id> <reason...>", help_id="help.tam.reject",
                   role=Role.TAM)(reject)
