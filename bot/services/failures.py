"""Telling staff, in the duty channel, that background work failed for good.

A job the worker gives up on (a permanent platform error, or too many tries) and a report
posted without its chart would otherwise show only in the log. The notice is an ordinary
outbox message; a notice that itself fails is not announced again (no loop).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import Lang
from bot.i18n import Translator
from bot.services import outbox
from bot.services.base import AppContext

KEY = "failure"


def is_notice(job_key: str) -> bool:
    """Whether an outbox job is one of these notices (its own failure is only logged)."""
    return job_key.startswith(f"msg:{KEY}:")


async def tell_staff(s: AsyncSession, app: AppContext, now: datetime, *, once: str,
                     msg_id: str, needed: str | None = None, **params: Any) -> None:
    """Queue `msg_id` for the duty channel, once per `once` (a key). With `needed`, also say
    which Slack scope to add and that the app must then be reinstalled."""
    if not app.settings.duty_channel:
        return  # the one-line log is all there is; serve() warns that no channel is set
    t = Translator(Lang.EN)  # the duty channel reads English, like the other staff notices
    text = t(msg_id, **params)
    if needed:
        text += "\n" + t("notice.missing_scope", scope=needed)
    await outbox.post(s, now, channel=app.settings.duty_channel, text=text, key=f"{KEY}:{once}")
