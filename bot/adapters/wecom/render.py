"""The neutral message as WeCom markdown (the push webhook's and app messages' `markdown`).

WeCom's markdown knows `**bold**`, `` `code` ``, `<@userid>` mentions (group messages),
`<font color="comment">` and `>` quotes. It has no time tokens (a moment is shown as local
time with its UTC offset) and, in a webhook message, nothing to click: a button becomes a
line saying what to type instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from bot.adapters.plain import MARK_GLYPH, local_time
from bot.messages import Button, Message, tokens

PREFIX = "wecom:"
# one zone for every reader: WeCom tells the bot nothing about a reader's zone, and the
# offset is shown, so nobody misreads it
ZONE = ZoneInfo("Asia/Shanghai")
MAX_BYTES = 4096  # markdown.content limit (errcode 40058 beyond it)


def qualify(platform_id: str) -> str:
    """A WeCom id as the core knows it (`wecom:<id>`)."""
    return PREFIX + platform_id


def unqualify(core_id: str) -> str:
    """The WeCom id of a core id (`wecom:zhangsan` -> `zhangsan`)."""
    return core_id[len(PREFIX):] if core_id.startswith(PREFIX) else core_id


def _escape(text: str) -> str:
    # a literal `*` or backtick must not open emphasis or code in WeCom markdown
    return text.replace("`", "'").replace("**", "*\u200b*")


def text(neutral: str) -> str:
    """Neutral markup as WeCom markdown."""
    out: list[str] = []
    for tok in tokens(neutral):
        if tok.kind == "text":
            out.append(_escape(tok.value))
        elif tok.kind in ("b", "/b"):
            out.append("**")
        elif tok.kind in ("code", "/code"):
            out.append("`")
        elif tok.kind == "user":
            if tok.value.startswith(PREFIX):
                out.append(f"<@{unqualify(tok.value)}>")
            else:  # a user of another platform: WeCom cannot mention them
                out.append("@" + tok.value)
        elif tok.kind == "time":
            out.append(local_time(int(tok.value), ZONE))
        elif tok.kind == "mark":
            out.append(MARK_GLYPH[tok.value])
    return "".join(out)


def typed_command(button: Button, bot_name: str) -> str:
    """What to type in the group to do what a button does: `@supportbot support ack CS-1`."""
    command = button.command.strip().lstrip("/")
    if button.ask:
        command += f" <{button.ask}>"
    return f"@{bot_name} {command}"


def button_lines(buttons: Sequence[Button], bot_name: str) -> list[str]:
    # the label says what it does, the code span what to type ("reply …" in both languages
    # would need the reader's language; the command itself needs none)
    return [f"▸ {text(b.label)}: `{typed_command(b, bot_name)}`" for b in buttons]


def markdown(message: Message, bot_name: str, *, updated: bool = False) -> str:
    """A whole message: title, text or sections (heading, text, fields, buttons), buttons,
    footer; cut to WeCom's 4096 bytes. `updated` marks a new post that stands for an edit
    (WeCom cannot edit a message already sent)."""
    lines: list[str] = []
    if updated:
        lines.append("🔄")
    if message.title:
        lines.append(f"**{text(message.title)}**")
    if message.sections:
        for sec in message.sections:
            if sec.title:
                lines.append(f"**{text(sec.title)}**")
            if sec.text.strip():
                lines.append(text(sec.text))
            lines += [f"{text(f.label)}: {text(f.value)}" for f in sec.fields]
            lines += button_lines(sec.buttons, bot_name)
    else:
        lines.append(text(message.text))
    lines += button_lines(message.buttons, bot_name)
    if message.footer:
        lines.append(f'<font color="comment">{text(message.footer)}</font>')
    return cut("\n".join(lines))


def cut(content: str, limit: int = MAX_BYTES) -> str:
    """At most `limit` UTF-8 bytes, never splitting a character; an ellipsis shows the cut."""
    raw = content.encode("utf-8")
    if len(raw) <= limit:
        return content
    return raw[:limit - 3].decode("utf-8", errors="ignore") + "…"
