"""One translation layer for every user-facing string (English and Simplified Chinese).

Messages live in `bot/locales/<lang>.yaml`, keyed by message id, with `str.format` fields.
Times inside messages are written as `<t:UNIX>` tokens (`time_token`); each transport turns
them into something its reader sees in their own time zone (Slack's date token, or local
time in the console).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from bot.domain.catalog import Target
from bot.domain.model import Lang

TIME_TOKEN = re.compile(r"<t:(-?\d+)>")
# Deployment data every message may name without its caller passing it: `{hotline}` is the
# catalog's `contact.hotline`, `{enterprise_line}` its `contact.enterprise_line` (the numbers
# and menu path of seed §3/§5.1). A deployment changes them in the locale catalogs.
CONTACT_FIELDS = ("hotline", "enterprise_line")


@lru_cache(maxsize=4)
def messages(lang: Lang) -> dict[str, str]:
    text = (resources.files("bot") / "locales" / f"{lang.value}.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"locales/{lang.value}.yaml: expected a mapping of message ids")
    return {str(k): str(v) for k, v in data.items()}


def _half_up(x: float) -> int:
    return int(x + 0.5)


class Translator:
    """Looks up message ids for one language; falls back to English, then to the id.

    Plurals: a message whose text depends on a count is stored as `<id>.one` and
    `<id>.other` (Chinese needs only `.other`); `t("<id>", n=3)` picks the form by `n`.
    """

    def __init__(self, lang: Lang) -> None:
        self.lang = lang

    def _template(self, msg_id: str, params: dict[str, Any]) -> str | None:
        for lang in (self.lang, Lang.EN):
            catalog = messages(lang)
            template = catalog.get(msg_id)
            if template is None and f"{msg_id}.other" in catalog:
                n = params.get("n")
                one = n == 1 and f"{msg_id}.one" in catalog
                template = catalog[f"{msg_id}.one" if one else f"{msg_id}.other"]
            if template is not None:
                return template
        return None

    def __call__(self, msg_id: str, **params: Any) -> str:
        template = self._template(msg_id, params)
        if template is None:
            return msg_id
        for name in CONTACT_FIELDS:
            if name not in params and "{" + name + "}" in template:
                params[name] = self(f"contact.{name}")
        return template.format(**params) if params else template

    def join(self, items: Iterable[str]) -> str:
        """A list in this language: `a, b, c` / `a、b、c`."""
        return self("list.sep").join(items)

    def duration(self, delta: timedelta) -> str:
        """`2h 5m` / `2小时5分钟`: the one rounding rule for every countdown ("left", "late").

        Under a minute the seconds are shown (never "0m"; at least 1s). From a minute up the
        figure is rounded half up to the minute, and from a day up to the hour, so that two
        units at most are shown and 1m59s reads as 2m, not 1m.
        """
        total = abs(delta.total_seconds())
        if _half_up(total) < 60:
            return self("unit.seconds", n=max(1, _half_up(total)))
        minutes = _half_up(total / 60)
        parts: list[str] = []
        if minutes >= 24 * 60:
            days, hours = divmod(_half_up(minutes / 60), 24)
            parts.append(self("unit.days", n=days))
            if hours:
                parts.append(self("unit.hours", n=hours))
        else:
            hours, minutes = divmod(minutes, 60)
            if hours:
                parts.append(self("unit.hours", n=hours))
            if minutes:
                parts.append(self("unit.minutes", n=minutes))
        return self("unit.join").join(parts)

    def target(self, target: Target | None) -> str:
        """A response target in words: `< 30 min`, `< 3 h`, `within 2 business days`."""
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

    def perk_window(self, perk: str, start: date, amount: int) -> str:
        """When a perk is used: an escort's day or days, a review's date."""
        if perk == "escort" and amount == 1:
            return self("perk.window_day", start=start.isoformat())
        if perk == "escort":
            end = start + timedelta(days=amount - 1)
            return self("perk.window_days", start=start.isoformat(), end=end.isoformat(),
                        n=amount)
        return start.isoformat()

    def time_left(self, due_at: datetime, now: datetime) -> str:
        delta = due_at - now
        if abs(delta.total_seconds()) < 1:
            return self("sla.due_now")
        if delta.total_seconds() > 0:
            return self("sla.left", d=self.duration(delta))
        return self("sla.overdue", d=self.duration(delta))


def time_token(at: datetime) -> str:
    """A transport-neutral time marker, rendered per reader by the adapter."""
    return f"<t:{int(at.timestamp())}>"


# Control and format characters a user could type to disguise an echoed text: bidirectional
# overrides and isolates (U+202A-U+202E, U+2066-U+2069), marks (U+200E/F), zero-width and
# other format characters (category Cf), and C0/C1 controls except line breaks and tabs.
_KEEP = frozenset("\n\t")


def clean_user_text(text: str) -> str:
    """User text with invisible control/format characters removed, safe to echo or store."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(ch for ch in text if ch in _KEEP or
                   unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
