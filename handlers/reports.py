"""Reports: `/tam report`, a monthly service report queued for an account's group."""

from __future__ import annotations

from bot.domain.model import Role
from bot.services import reports
from handlers.core import Call, Reply, Router, UsageError


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
    account, label = await reports.request(call.app, call.actor, call.args[0], year, month)
    return call.reply("report.queued", key=account.key, month=label)


def register(router: Router) -> None:
    router.command("tam", "report", "<account> [YYYY-MM]", help_id="help.tam.report",
                   role=Role.TAM)(report)
