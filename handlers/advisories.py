"""Advisories: `/tam advisory` (preview, then send, to the groups it targets; also the
advisory form), `/tam advisory status`, `/tam advisories`, and `/support acknowledge` for a
customer group."""

from __future__ import annotations

import shlex

from bot.domain.advisories import KINDS, Targeting
from bot.domain.advisories import SEVERITIES as ADVISORY_SEVERITIES
from bot.domain.model import Role, advisory_ref, parse_advisory_ref
from bot.i18n import Translator
from bot.messages import Button, time_token
from bot.services import advisories
from bot.services.base import Refusal
from handlers.core import Call, Form, Kind, Reply, Router, UsageError, single_ref, split_options

TITLE_MAX = 150
BODY_MAX = 2500
TARGET_OPTIONS = ("regions", "products", "software", "accounts")
# the advisory form's fields, in the order of the command's positional arguments
FORM_FIELDS = ("kind", "severity", "title", "body")


def parse_spec(call: Call) -> tuple[advisories.AdvisorySpec, bool]:
    """The advisory the arguments describe, and whether they end in `confirm`."""
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
    if not title or len(title) > TITLE_MAX:
        raise UsageError("advisory.bad_title", max=TITLE_MAX)
    if not body.strip() or len(body) > BODY_MAX:
        raise UsageError("advisory.bad_body", max=BODY_MAX)
    names = set(TARGET_OPTIONS)
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


def render_status(t: Translator, st: advisories.AdvisoryStatus) -> str:
    """Where an advisory's deliveries stand, who acknowledged it, what failed and why."""
    lines = [t("advisory.status_header", ref=st.ref, title=st.title, total=st.total,
               sent=st.counts["sent"], failed=st.counts["failed"],
               pending=st.counts["pending"])]
    lines += [t("advisory.acked_line", account=a, user=u, at=time_token(w))
              for a, u, w in st.acked]
    if st.waiting:
        lines.append(t("advisory.waiting_line", accounts=t.join(st.waiting)))
    if st.failed:
        lines.append(t("advisory.failed_header", groups=t("count.groups", n=len(st.failed))))
        lines += [t("advisory.failed_group", account=a, channel=c, error=e)
                  for a, c, e in st.failed]
    return "\n".join(lines)


async def advisory(call: Call) -> Reply:
    """`/tam advisory ...` or the advisory form: a preview with a button to send; with
    `confirm`, sent. Without arguments, the form (where one can open)."""
    if call.req.kind is Kind.FORM:
        # the form's fields are the command's arguments: previewed the same way
        call.args = [call.form_value(n) for n in FORM_FIELDS]
        call.args += [f"{n}={call.form_value(n)}" for n in TARGET_OPTIONS
                      if call.form_value(n)]
    if not call.args:
        if call.req.can_open_form:
            return Reply(call.t("advisory.form_opened"),
                         form=Form("advisory", description=call.t("advisory.planned_events")))
        raise UsageError("advisory.need_fields", kinds=call.t.join(KINDS),
                         severities=call.t.join(ADVISORY_SEVERITIES))
    spec, confirm = parse_spec(call)
    if confirm:
        ref, total = await advisories.send(call.app, call.actor, spec)
        return call.reply("advisory.sending", ref=ref, groups=call.t("count.groups", n=total))
    groups, accounts_n = await advisories.preview(call.app, spec)
    if groups == 0:
        return call.reply("advisory.no_targets")
    command = "/tam " + shlex.join(["advisory", *call.args, "confirm"])
    return Reply(call.t("advisory.preview", title=spec.title,
                        groups=call.t("count.groups", n=groups),
                        accounts=call.t("count.accounts", n=accounts_n)) + "\n" +
                 call.t("advisory.planned_events") + "\n" +
                 call.t("advisory.confirm_hint", command=command),
                 buttons=(Button(call.t("advisory.button_send"), command, "primary"),))


async def status(call: Call) -> Reply:
    """`/tam advisory status <advisory-id>`."""
    advisory_id = single_ref(call, parse_advisory_ref, "advisory.bad_ref")
    return Reply(render_status(call.t, await advisories.status(call.app, advisory_id)))


async def recent(call: Call) -> Reply:
    """`/tam advisories`: the latest advisories, delivered and acknowledged how far."""
    rows = await advisories.recent(call.app)
    if not rows:
        return call.reply("advisory.none")
    t = call.t
    return Reply("\n".join(
        t("advisory.list_line", ref=advisory_ref(a.id), title=a.title,
          severity=t(f"advisory.severity.{a.severity}"), sent=c["sent"], total=a.total,
          failed=c["failed"], acked=t("count.accounts", n=acked))
        for a, c, acked in rows))


async def acknowledge(call: Call) -> Reply:
    """`/support acknowledge <advisory-id>`: the group has read an advisory."""
    advisory_id = single_ref(call, parse_advisory_ref, "advisory.bad_ref")
    ref = await advisories.acknowledge(call.app, call.actor, call.req.channel_id, advisory_id)
    return call.reply("advisory.acked_ok", ref=ref)


def register(router: Router) -> None:
    router.command("support", "acknowledge", "<advisory-id>",
                   help_id="help.support.acknowledge")(acknowledge)
    router.command("tam", "advisory", '<kind> <severity> "<title>" "<body>" [regions=..] '
                   "[products=..] [software=..] [accounts=..] [confirm]",
                   help_id="help.tam.advisory", role=Role.TAM)(advisory)
    router.command("tam", "advisory status", "<advisory-id>",
                   help_id="help.tam.advisory_status", role=Role.ENGINEER)(status)
    router.command("tam", "advisories", help_id="help.tam.advisories",
                   role=Role.ENGINEER)(recent)
