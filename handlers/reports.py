"""Reports: `/tam report`, a monthly service report queued for an account's group and its
email recipients; `/tam account email` (the recipients), `/tam account set … report=`
(skip an account's reports) and `/tam account show` (an account, with its report setting)."""

from __future__ import annotations

from bot.domain.model import Role
from bot.domain.reports import SKIP_REASONS
from bot.services import accounts, reports
from handlers.core import Call, Reply, Router, UsageError, split_options

EMAIL_ACTIONS = ("add", "remove", "list")


async def report(call: Call) -> Reply:
    """`/tam report <account> [YYYY-MM]`: queue the report (last month by default)."""
    if len(call.args) not in (1, 2):
        raise UsageError("error.arg_count_range", lo=1, hi=2)
    year = month = None
    if len(call.args) == 2:
        parsed = reports.parse_month(call.args[1])
        if parsed is None:
            raise UsageError("usage.bad_month", given=call.args[1])
        year, month = parsed
    done = await reports.request(call.app, call.actor, call.args[0], year, month)
    t = call.t
    lines = [t("report.queued", key=done.account.key, month=done.label)]
    if done.emails is None:
        lines.append(t("report.email_off"))
    elif done.emails == 0 and done.already == 0:
        lines.append(t("report.email_none", key=done.account.key))
    else:
        if done.emails:
            lines.append(t("report.email_queued", n=done.emails))
        if done.already:
            lines.append(t("report.email_already", n=done.already, month=done.label))
    if done.skipped:
        lines.append(t("report.skipped_note", key=done.account.key,
                       reason=t(f"report.skip_reason.{done.skipped}")))
    return Reply("\n".join(lines))


async def account_email(call: Call) -> Reply:
    """`/tam account email <account> add|remove|list [address]`."""
    if len(call.args) < 2:
        raise UsageError("error.arg_count_range", lo=2, hi=3)
    key, action = call.args[0], call.args[1].lower()
    if action not in EMAIL_ACTIONS:
        raise UsageError("report.email_bad_action", given=call.args[1],
                         choices=call.t.join(EMAIL_ACTIONS))
    if action == "list":
        if len(call.args) != 2:
            raise UsageError("error.arg_count", n=2)
        account, addresses = await reports.recipients(call.app, call.actor, key)
        if not addresses:
            return call.reply("report.email_list_none", key=account.key)
        off = "" if call.app.mailer is not None else "\n" + call.t("report.email_off_short")
        return Reply(call.t("report.email_list", key=account.key, n=len(addresses),
                            addresses=call.t.join(addresses)) + off)
    if len(call.args) != 3:
        raise UsageError("error.arg_count", n=3)
    if action == "add":
        account, address = await reports.add_recipient(call.app, call.actor, key, call.args[2])
        off = "" if call.app.mailer is not None else "\n" + call.t("report.email_off_short")
        return Reply(call.t("report.email_added", key=account.key, address=address) + off)
    account, address = await reports.remove_recipient(call.app, call.actor, key, call.args[2])
    return call.reply("report.email_removed", key=account.key, address=address)


async def account_set(call: Call) -> Reply:
    """`/tam account set <account> report=skip reason=poc|dedicated` or `report=send`."""
    pos, opts = split_options(call.args)
    if len(pos) != 1:
        raise UsageError("error.arg_count", n=1)
    unknown = set(opts) - {"report", "reason"}
    if unknown:
        raise UsageError("error.bad_option", given=sorted(unknown)[0], choices="report, reason")
    if "report" not in opts:
        raise UsageError("report.set_needs_report")
    value = opts["report"].lower()
    if value == "skip":
        reason = opts.get("reason", "").lower()
        if reason not in SKIP_REASONS:
            raise UsageError("report.skip_needs_reason", given=opts.get("reason", ""),
                             choices=call.t.join(SKIP_REASONS))
        account, before = await reports.set_skip(call.app, call.actor, pos[0], reason)
        return call.reply("report.skip_set", key=account.key,
                          reason=call.t(f"report.skip_reason.{reason}"))
    if value != "send":
        raise UsageError("report.set_bad_value", given=opts["report"])
    if "reason" in opts:
        raise UsageError("report.send_no_reason")
    account, before = await reports.set_skip(call.app, call.actor, pos[0], None)
    return call.reply("report.skip_cleared" if before else "report.skip_was_not_set",
                      key=account.key)


async def account_show(call: Call) -> Reply:
    """`/tam account show <account>`: the account's plan, TAM and report setting."""
    if len(call.args) != 1:
        raise UsageError("error.arg_count", n=1)
    account = await accounts.get_account(call.app, call.args[0])
    t = call.t
    st = await reports.status(call.app, account)
    if not st.included:
        report_line = t("account.report_not_included")
    elif st.skip_reason:
        report_line = t("account.report_skipped",
                        reason=t(f"report.skip_reason.{st.skip_reason}"))
    else:
        report_line = t("account.report_sent")
    email_line = t("account.report_email", n=st.recipients) if st.email_on else \
        t("account.report_email_off", n=st.recipients)
    tam = f"<user:{account.tam_user_id}>" if account.tam_user_id else t("account.no_tam_yet")
    return Reply("\n".join([
        t("account.shown", key=account.key, name=account.name, tier=t(f"tier.{account.tier}"),
          term=t(f"term.{account.term}"), start=account.start.isoformat(),
          end=account.last_day.isoformat(), region=account.region, lang=account.lang.value,
          tam=tam),
        report_line, *([email_line] if st.included else [])]))


def register(router: Router) -> None:
    router.command("tam", "report", "<account> [YYYY-MM]", help_id="help.tam.report",
                   role=Role.TAM)(report)
    router.command("tam", "account show", "<account>", help_id="help.tam.account_show",
                   role=Role.ENGINEER)(account_show)
    router.command("tam", "account set",
                   "<account> report=skip reason=poc|dedicated | report=send",
                   help_id="help.tam.account_set", role=Role.TAM)(account_set)
    router.command("tam", "account email", "<account> add|remove|list [address]",
                   help_id="help.tam.account_email", role=Role.TAM)(account_email)
