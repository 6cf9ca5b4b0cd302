"""Platform incidents: `/tam incident declare|update|resolve|link|unlink|list` (declare also
as a form) and `/support incident` for a customer group: what affects its own account."""

from __future__ import annotations

from bot.domain.incidents import (
    Incident,
    LinkedCase,
    Scope,
    incident_ref,
    parse_incident_ref,
)
from bot.domain.model import Role, parse_case_ref
from bot.i18n import Translator
from bot.messages import time_token
from bot.services import incidents
from bot.services.base import Refusal
from bot.services.incident_links import latest_line
from handlers.core import Call, Form, Kind, Reply, Router, UsageError, parse_arg, split_options

# refusals and usage errors of the declare form shown next to the field at fault
FORM_FIELDS = {"account.bad_region": "region", "incident.bad_title": "title",
               "incident.bad_products": "products"}
PRODUCT_MAX = 64
LIST_MAX = 40


def _ref(call: Call, word: str) -> int:
    return parse_arg(word, parse_incident_ref, "incident.bad_ref")


def _scope_label(t: Translator, scope: Scope) -> str:
    if scope.products:
        return t("incident.scope_products", region=scope.region,
                 products=t.join(sorted(scope.products)))
    return scope.region


def _case_line(t: Translator, c: LinkedCase) -> str:
    state = (t("incident.case_waiting", due=time_token(c.due_at)) if c.awaiting
             else t(f"status.{c.status}"))
    return t("incident.case_line", ref=c.ref, sev=c.severity, summary=c.summary,
             key=c.account_key, state=state)


# --- staff ---------------------------------------------------------------------------------

def _parse_declare(call: Call) -> tuple[Scope, str]:
    if call.req.kind is Kind.FORM:
        pos = [call.form_value("region"), call.form_value("title")]
        opts = {"products": call.form_value("products")} if call.form_value("products") else {}
    else:
        pos, opts = split_options(call.args)
    if set(opts) - {"products"}:
        raise UsageError("error.bad_option", given=sorted(set(opts) - {"products"})[0],
                         choices="products")
    if not pos or not pos[0].strip():
        raise UsageError("incident.need_declare", field="region")
    region = pos[0].strip().lower()
    if region not in call.app.catalog.regions:
        raise Refusal("account.bad_region", region=region,
                      choices=", ".join(sorted(call.app.catalog.regions)))
    title = " ".join(" ".join(pos[1:]).split())
    if not title or len(title) > incidents.TITLE_MAX:
        raise UsageError("incident.bad_title", field="title", max=incidents.TITLE_MAX)
    products = frozenset(p.strip().lower() for p in opts.get("products", "").split(",")
                         if p.strip())
    if any(len(p) > PRODUCT_MAX or not p.replace("-", "").replace("_", "").isalnum()
           for p in products):
        raise UsageError("incident.bad_products", field="products")
    return Scope(region, products), title


async def declare(call: Call) -> Reply:
    """`/tam incident declare <region> [products=..] "<title>"`, or the form."""
    if call.req.kind is not Kind.FORM and not call.args:
        if call.req.can_open_form:
            return Reply(call.t("incident.form_opened"), form=Form("incident"))
        raise UsageError("incident.need_declare")
    scope, title = _parse_declare(call)
    done = await incidents.declare(call.app, call.actor, scope, title)
    t = call.t
    lines = [t("incident.declared", ref=done.incident.ref, title=title,
               where=_scope_label(t, scope))]
    lines.append(t("incident.posting", groups=t("count.groups", n=done.groups))
                 if done.groups else t("incident.no_groups_yet"))
    lines.append(t("incident.declared_hint", ref=done.incident.ref))
    return Reply("\n".join(lines))


def _yes_no(call: Call, value: str) -> bool:
    v = value.strip().lower()
    if v in ("yes", "y", "true", "1"):
        return True
    if v in ("no", "n", "false", "0"):
        return False
    raise UsageError("incident.bad_respond", given=value)


def _text(pos: list[str]) -> str:
    text = " ".join(pos).strip()
    if len(text) > incidents.TEXT_MAX:
        raise UsageError("incident.text_too_long", max=incidents.TEXT_MAX, n=len(text))
    return text


async def update(call: Call) -> Reply:
    """`/tam incident update <INC-…> "<text>" [respond=yes|no]`."""
    pos, opts = split_options(call.args)
    if set(opts) - {"respond"}:
        raise UsageError("error.bad_option", given=sorted(set(opts) - {"respond"})[0],
                         choices="respond")
    if len(pos) < 2:
        raise UsageError("incident.need_update")
    incident_id = _ref(call, pos[0])
    text = _text(pos[1:])
    if not text:
        raise UsageError("incident.need_update")
    respond = _yes_no(call, opts["respond"]) if "respond" in opts else False
    done = await incidents.update(call.app, call.actor, incident_id, text, respond=respond)
    t = call.t
    lines = [t("incident.updated", ref=done.incident.ref,
               groups=t("count.groups", n=done.groups))]
    if respond:
        lines.append(t("incident.responded", cases=t("count.cases", n=done.responded)))
    return Reply("\n".join(lines))


async def resolve(call: Call) -> Reply:
    """`/tam incident resolve <INC-…> ["<text>"]`: the resolution to every group, and the
    linked cases still waiting."""
    pos, opts = split_options(call.args)
    if opts:
        raise UsageError("error.bad_option", given=sorted(opts)[0], choices="—")
    if not pos:
        raise UsageError("incident.need_ref")
    incident_id = _ref(call, pos[0])
    done = await incidents.resolve(call.app, call.actor, incident_id, _text(pos[1:]))
    t = call.t
    lines = [t("incident.resolved_ok", ref=done.incident.ref,
               groups=t("count.groups", n=done.groups))]
    if done.waiting:
        lines.append(t("incident.still_open", n=len(done.waiting)))
        lines += [_case_line(t, c) for c in done.waiting[:LIST_MAX]]
        if len(done.waiting) > LIST_MAX:
            lines.append(t("list.more", n=len(done.waiting) - LIST_MAX))
    else:
        lines.append(t("incident.none_still_open"))
    return Reply("\n".join(lines))


def _two_refs(call: Call) -> tuple[int, int]:
    if len(call.args) != 2:
        raise UsageError("incident.need_link")
    return _ref(call, call.args[0]), parse_arg(call.args[1], parse_case_ref, "error.bad_ref")


async def link(call: Call) -> Reply:
    """`/tam incident link <INC-…> <CS-…>`."""
    incident_id, case_id = _two_refs(call)
    case = await incidents.link(call.app, call.actor, incident_id, case_id)
    return call.reply("incident.linked", case=case.ref, ref=incident_ref(incident_id))


async def unlink(call: Call) -> Reply:
    """`/tam incident unlink <INC-…> <CS-…>`."""
    incident_id, case_id = _two_refs(call)
    case = await incidents.unlink(call.app, call.actor, incident_id, case_id)
    return call.reply("incident.unlinked", case=case.ref, ref=incident_ref(incident_id))


async def list_incidents(call: Call) -> Reply:
    """`/tam incident list [INC-…]`: open and recent incidents with their figures; with a
    reference, that incident's linked cases."""
    t = call.t
    if call.args:
        if len(call.args) != 1:
            raise UsageError("error.arg_count", n=1)
        incident, linked = await incidents.linked_cases(call.app, _ref(call, call.args[0]))
        lines = [_incident_line(t, incident), latest_line(t, incident),
                 t("incident.linked_header", n=len(linked))]
        lines += [_case_line(t, c) for c in linked[:LIST_MAX]]
        if len(linked) > LIST_MAX:
            lines.append(t("list.more", n=len(linked) - LIST_MAX))
        return Reply("\n".join(lines))
    rows = await incidents.recent(call.app)
    if not rows:
        return call.reply("incident.none")
    return Reply("\n".join(
        _incident_line(t, r.incident) + " " +
        t("incident.figures", groups=t("count.groups", n=r.groups),
          linked=t("count.cases", n=r.linked), waiting=r.waiting)
        for r in rows))


def _incident_line(t: Translator, i: Incident) -> str:
    return t("incident.line", ref=i.ref, status=t(f"incident.status.{i.status.value}"),
             where=_scope_label(t, i.scope), title=i.title, at=time_token(i.declared_at))


# --- customers -----------------------------------------------------------------------------

async def show(call: Call) -> Reply:
    """`/support incident`: the platform incidents affecting this group's account."""
    account, found = await incidents.for_group(call.app, call.req.channel_id)
    t = call.t
    if not found:
        return call.reply("incident.none_for_you", name=account.name)
    lines: list[str] = []
    for incident, mine in found:
        lines.append(t("incident.customer_line", ref=incident.ref, title=incident.title,
                       status=t(f"incident.status.{incident.status.value}"),
                       where=_scope_label(t, incident.scope)))
        lines.append(latest_line(t, incident))
        if mine:
            lines.append(t("incident.your_cases", refs=t.join(c.ref for c in mine)))
    return Reply("\n".join(lines))


def register(router: Router) -> None:
    router.command("support", "incident", help_id="help.support.incident")(show)
    router.command("tam", "incident declare", '<region> [products=a,b] "<title>"',
                   help_id="help.tam.incident_declare", role=Role.TAM,
                   form_fields=FORM_FIELDS)(declare)
    router.command("tam", "incident update", '<INC-ref> "<text>" [respond=yes|no]',
                   help_id="help.tam.incident_update", role=Role.TAM)(update)
    router.command("tam", "incident resolve", '<INC-ref> ["<text>"]',
                   help_id="help.tam.incident_resolve", role=Role.TAM)(resolve)
    router.command("tam", "incident link", "<INC-ref> <case-ref>",
                   help_id="help.tam.incident_link", role=Role.ENGINEER)(link)
    router.command("tam", "incident unlink", "<INC-ref> <case-ref>",
                   help_id="help.tam.incident_unlink", role=Role.ENGINEER)(unlink)
    router.command("tam", "incident list", "[INC-ref]",
                   help_id="help.tam.incident_list", role=Role.ENGINEER)(list_incidents)
