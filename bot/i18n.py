"""One translation layer for every user-facing string (English and Simplified Chinese).

Messages live in `bot/locales/<lang>.yaml`, keyed by message id, with `str.format` fields.
Times inside messages are written as `<t:UNIX>` tokens (`time_token`); each transport turns
them into something its reader sees in their own time zone (Slack's date token, or local
time in the console).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from bot.domain.catalog import Target
from bot.domain.model import Lang

TIME_TOKEN = re.compile(r"<t:(-?\d+)>")


@lru_cache(maxsize=4)
def messages(lang: Lang) -> dict[str, str]:
    text = (resources.files("bot") / "locales" / f"{lang.value}.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"locales/{lang.value}.yaml: expected a mapping of message ids")
    return {str(k): str(v) for k, v in data.items()}


class Translator:
    """Looks up message ids for one language; falls back to English, then to the id."""

    def __init__(self, lang: Lang) -> None:
        self.lang = lang

    def __call__(self, msg_id: str, **params: Any) -> str:
        template = messages(self.lang).get(msg_id)
        if template is None:
            template = messages(Lang.EN).get(msg_id)
        if template is None:
            return msg_id
        return template.format(**params) if params else template

    def duration(self, delta: timedelta) -> str:
        """`2h 5m` / `2小时5分钟`, rounded to the minute (seconds under a minute shown)."""
        secs = int(abs(delta.total_seconds()))
        days, rem = divmod(secs, 86400)
        hours, rem = divmod(rem, 3600)
        minutes, seconds = divmod(rem, 60)
        parts: list[str] = []
        if days:
            parts.append(self("unit.days", n=days))
        if hours:
            parts.append(self("unit.hours", n=hours))
        if minutes or (not parts and not seconds):
            parts.append(self("unit.minutes", n=minutes))
        if not parts:
            parts.append(self("unit.seconds", n=seconds))
        return self("unit.join").join(parts[:2])

    def target(self, target: Target | None) -> str:
        """A response target in words: `< 30 min`, `< 3 h`, `within 1 business day(s)`."""
        if target is None:
            return self("target.not_offered")
        if target.business_days is not None:
            return self("target.business_days", n=target.business_days)
        assert target.seconds is not None
        if target.seconds % 3600 == 0:
            return self("target.hours", n=target.seconds // 3600)
        if target.seconds % 60 == 0:
            return self("target.minutes", n=target.seconds // 60)
        return self("target.seconds", n=target.seconds)

    def time_left(self, due_at: datetime, now: datetime) -> str:
        delta = due_at - now
        if delta.total_seconds() >= 0:
            return self("sla.left", d=self.duration(delta))
        return self("sla.overdue", d=self.duration(delta))


def time_token(at: datetime) -> str:
    """A transport-neutral time marker, rendered per reader by the adapter."""
    return f"<t:{int(at.timestamp())}>"
