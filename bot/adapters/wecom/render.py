"""The neutral message as WeCom markdown (the push webhook's and app messages' `markdown`),
and as a button template card (application messages to staff).

WeCom's markdown knows `**bold**`, `` `code` ``, `<@userid>` mentions (group messages),
`<font color="comment">` and `>` quotes. It has no time tokens (a moment is shown as local
time with its UTC offset) and, in a webhook message, nothing to click: a button becomes a
line saying what to type instead. An application message can carry a `button_interaction`
template card whose buttons call back to the app: each button's key is its command
(`/tam approve PR-1001`), run as whoever clicks it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from bot.adapters.plain import MARK_GLYPH, local_time
from bot.messages import Button, Message, tokens

PREFIX = "wecom:"
# one zone for every reader: WeCom tells the bot nothing about a reader's zone, and the
# offset is shown, so nobody misreads it
ZONE = ZoneInfo("Asia/Shanghai")
MAX_BYTES = 4096  # markdown.content limit (errcode 40058 beyond it)
# template card limits (90236): at most 6 buttons and 6 label/value rows; a key is at most
# 1024 bytes and unique in its card; a task id at most 128 bytes of [0-9A-Za-z_-@]; titles
# and texts have recommended lengths, kept here so WeCom never cuts a word in two
CARD_BUTTONS = 6
CARD_ROWS = 6
KEY_BYTES = 1024
TITLE_CHARS = 36
SUB_TITLE_CHARS = 160
ROW_VALUE_CHARS = 60


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


def plain(neutral: str) -> str:
    """Neutral markup as the plain text a template card shows (it renders no markdown)."""
    out: list[str] = []
    for tok in tokens(neutral):
        if tok.kind == "text":
            out.append(tok.value)
        elif tok.kind == "user":
            out.append("@" + unqualify(tok.value))
        elif tok.kind == "time":
            out.append(local_time(int(tok.value), ZONE))
        elif tok.kind == "mark":
            out.append(MARK_GLYPH[tok.value])
    return "".join(out)


def _chars(text: str, limit: int) -> str:
    text = " ".join(text.split()) if "\n" not in text else text.strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def clickable(button: Button) -> bool:
    """Whether a card can carry the button: one that asks for a text first (a rejection's
    reason) cannot, a card has no text field; nor can a command too long for a key."""
    return button.ask is None and len(button.command.encode("utf-8")) <= KEY_BYTES


def new_task_id() -> str:
    """A card's task id: unique per app, letters and digits (90236)."""
    return "sb" + uuid.uuid4().hex


def template_card(message: Message, bot_name: str, task_id: str) -> dict[str, Any] | None:
    """The message as a `button_interaction` template card, or None when it has no button
    a card can carry. Buttons that ask for a text first become a row saying what to send."""
    buttons = [*message.buttons, *(b for sec in message.sections for b in sec.buttons)]
    keys: list[Button] = []
    for b in buttons:
        if clickable(b) and b.command not in {k.command for k in keys}:
            keys.append(b)
    keys = keys[:CARD_BUTTONS]
    if not keys:
        return None
    lines = [ln for ln in plain(message.text).splitlines() if ln.strip()]
    title = plain(message.title) if message.title else (lines.pop(0) if lines else "")
    if not message.title and len(title) > TITLE_CHARS:
        lines.insert(0, title)  # the title shows its start; the text says it whole
    rows: list[dict[str, Any]] = []
    for sec in message.sections:
        rows += [{"keyname": _chars(plain(f.label), TITLE_CHARS),
                  "value": _chars(plain(f.value), ROW_VALUE_CHARS)} for f in sec.fields]
    # what to type, whole (a command cut short runs something else); a button too long
    # for a key is left out, as in Slack
    rows += [{"keyname": _chars(plain(b.label), TITLE_CHARS),
              "value": typed_command(b, bot_name)}
             for b in buttons if b.ask is not None and
             len(b.command.encode("utf-8")) <= KEY_BYTES]
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": _chars(title, TITLE_CHARS)},
        "task_id": task_id,
        "button_list": [{"text": _chars(plain(b.label), 10), "key": b.command}
                        for b in keys],
    }
    body = "\n".join(lines)
    if body:
        card["sub_title_text"] = _chars(body, SUB_TITLE_CHARS)
    if rows:
        card["horizontal_content_list"] = rows[:CARD_ROWS]
    return card
