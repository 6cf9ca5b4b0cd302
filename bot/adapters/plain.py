"""Plain-text rendering shared by the adapters whose readers see text, not a platform's own
date tokens or emoji codes (the console, WeCom markdown): local times with an offset anyone
can read, and a glyph for each neutral status mark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo


def zone_label(moment: datetime) -> str:
    """`UTC+8`, `UTC-3:30`, `UTC`: an offset every reader understands (abbreviations such as
    `CST` are ambiguous: China, Cuba or US Central)."""
    minutes = int((moment.utcoffset() or timedelta(0)).total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{'+' if minutes > 0 else '-'}{hours}" + (f":{rest:02d}" if rest else "")


def local_time(unix: int, tz: tzinfo | None = None) -> str:
    """`2026-11-28 15:04 (UTC+8)` in `tz`, by default the machine's zone (`TZ` respected)."""
    moment = datetime.fromtimestamp(unix, UTC).astimezone(tz)
    return f"{moment:%Y-%m-%d %H:%M} ({zone_label(moment)})"


# a glyph for each neutral status mark (`bot.messages.MARKS`)
MARK_GLYPH = {"breach": "🚨", "warning": "⚠️", "ok": "✅", "error": "❌", "advisory": "📣",
              "report": "📊",
              "reminder": "🔔", "ticket": "🎫"}
