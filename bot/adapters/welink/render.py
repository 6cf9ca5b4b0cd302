"""The neutral message as WeLink plain text (the group webhook robot's `text`, a card
message's title and content).

WeLink's group webhook takes `text` messages only, 1 to 500 characters, with no markup;
`@userid` is highlighted when the id is also listed in `atAccounts` (at most 10). So
emphasis and code spans become plain words, a moment is local time with its UTC offset, a
mark its glyph, and a long message is split into parts of at most 500 characters. Buttons
are left out: a webhook message has nothing to click, and WeLink documents no way for a
group member to send the bot a command, so there is nothing to type instead either.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.adapters.plain import MARK_GLYPH, local_time
from bot.messages import Message, tokens

PREFIX = "welink:"
ZONE = ZoneInfo("Asia/Shanghai")  # one zone for every reader; the offset is shown
MAX_CHARS = 500  # content.text of the group webhook: 1 to 500 characters
MAX_PARTS = 5  # a longer message is cut: the rest would crowd the group
MAX_AT = 10  # atAccounts holds at most 10 user ids
TITLE_BYTES = 128  # card message msgTitle
CONTENT_BYTES = 512  # card message msgContent


def qualify(platform_id: str) -> str:
    """A WeLink id as the core knows it (`welink:<id>`)."""
    return PREFIX + platform_id


def unqualify(core_id: str) -> str:
    """The WeLink id of a core id (`welink:zhangsan@corp` -> `zhangsan@corp`)."""
    return core_id[len(PREFIX):] if core_id.startswith(PREFIX) else core_id


def text(neutral: str, mentioned: list[str] | None = None) -> str:
    """Neutral markup as WeLink plain text; WeLink users mentioned are added to
    `mentioned` (for `atAccounts`)."""
    out: list[str] = []
    for tok in tokens(neutral):
        if tok.kind == "text":
            out.append(tok.value)
        elif tok.kind == "user":
            user = unqualify(tok.value)
            if tok.value.startswith(PREFIX) and mentioned is not None and \
                    user not in mentioned:
                mentioned.append(user)
            out.append("@" + user)
        elif tok.kind == "time":
            out.append(local_time(int(tok.value), ZONE))
        elif tok.kind == "mark":
            out.append(MARK_GLYPH[tok.value])
        # <b>, <code>: WeLink text has no emphasis; the words stay
    return "".join(out)


def plain(message: Message, *, updated: bool = False,
          mentioned: list[str] | None = None) -> str:
    """A whole message as text: title, text or sections (heading, text, fields), footer.
    `updated` marks a new post that stands for an edit (a webhook message cannot be
    edited)."""
    lines: list[str] = []
    if updated:
        lines.append("🔄")
    if message.title:
        lines.append(f"【{text(message.title, mentioned)}】")
    if message.sections:
        for sec in message.sections:
            if sec.title:
                lines.append(f"【{text(sec.title, mentioned)}】")
            if sec.text.strip():
                lines.append(text(sec.text, mentioned))
            lines += [f"{text(f.label, mentioned)}: {text(f.value, mentioned)}"
                      for f in sec.fields]
    else:
        lines.append(text(message.text, mentioned))
    if message.footer:
        lines.append(text(message.footer, mentioned))
    return "\n".join(line for line in lines if line.strip()) or "…"


def parts(content: str, limit: int = MAX_CHARS, most: int = MAX_PARTS) -> list[str]:
    """`content` in parts of at most `limit` characters, split between lines where it can;
    at most `most` parts, the last one ending in an ellipsis when the rest was cut."""
    out: list[str] = []
    current = ""
    for line in content.split("\n"):
        while len(line) > limit:  # a line longer than a part: split it hard
            if current:
                out.append(current)
                current = ""
            out.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            out.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        out.append(current)
    out = [p for p in out if p.strip()] or ["…"]
    if len(out) > most:
        out = out[:most]
        out[-1] = out[-1][:limit - 1] + "…"
    return out


def cut_bytes(content: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, never splitting a character; an ellipsis shows a cut."""
    raw = content.encode("utf-8")
    if len(raw) <= limit:
        return content
    return raw[:limit - 3].decode("utf-8", errors="ignore") + "…"


def card(message: Message, *, updated: bool = False) -> tuple[str, str]:
    """A staff DM as a card message's title (128 bytes) and content (512 bytes)."""
    if message.title:
        title = text(message.title)
        body = plain(Message(text=message.text, sections=message.sections,
                             footer=message.footer), updated=updated)
    else:
        first, _, rest = plain(message, updated=updated).partition("\n")
        title, body = first, rest or first
    return cut_bytes(title, TITLE_BYTES), cut_bytes(body, CONTENT_BYTES)
