"""A neutral message as an email's two bodies: plain text and HTML (the same words; the
HTML has headings, emphasis and the images shown inline by content id)."""

from __future__ import annotations

import html
import unicodedata
from zoneinfo import ZoneInfo

from bot.adapters.plain import MARK_GLYPH, local_time
from bot.messages import Message, tokens

STYLE = ("font-family:-apple-system,'Segoe UI','PingFang SC','Microsoft YaHei',sans-serif;"
         "color:#1d1d1f;max-width:720px")


def text_line(text: str, tz: ZoneInfo) -> str:
    """Neutral markup as plain text: emphasis and code as their words, moments in `tz`."""
    out: list[str] = []
    for tok in tokens(text):
        if tok.kind == "text":
            out.append(tok.value)
        elif tok.kind == "user":
            out.append("@" + tok.value)
        elif tok.kind == "time":
            out.append(local_time(int(tok.value), tz))
        elif tok.kind == "mark":
            out.append(MARK_GLYPH.get(tok.value, ""))
    return "".join(out)


def html_line(text: str, tz: ZoneInfo) -> str:
    """Neutral markup as HTML, every literal run escaped."""
    out: list[str] = []
    for tok in tokens(text):
        if tok.kind == "text":
            out.append(html.escape(tok.value).replace("\n", "<br>\n"))
        elif tok.kind == "b":
            out.append("<strong>")
        elif tok.kind == "/b":
            out.append("</strong>")
        elif tok.kind == "code":
            out.append("<code>")
        elif tok.kind == "/code":
            out.append("</code>")
        elif tok.kind == "user":
            out.append("@" + html.escape(tok.value))
        elif tok.kind == "time":
            out.append(html.escape(local_time(int(tok.value), tz)))
        elif tok.kind == "mark":
            out.append(MARK_GLYPH.get(tok.value, ""))
    return "".join(out)


def _rule(text: str, char: str) -> str:
    """A line under `text` as wide as it shows (CJK characters take two columns)."""
    width = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return char * min(72, width)


def plain_body(message: Message, tz: ZoneInfo) -> str:
    """The text part: the title, then each section's heading underlined and its text."""
    if not message.sections:
        return text_line(message.text, tz) + "\n"
    parts: list[str] = []
    if message.title:
        title = text_line(message.title, tz).strip()
        parts.append(f"{title}\n{_rule(title, '=')}")
    for section in message.sections:
        block = []
        if section.title:
            heading = text_line(section.title, tz)
            block.append(f"{heading}\n{_rule(heading, '-')}")
        if section.text:
            block.append(text_line(section.text, tz))
        block += [f"{text_line(f.label, tz)}: {text_line(f.value, tz)}" for f in section.fields]
        parts.append("\n".join(block))
    if message.footer:
        parts.append(text_line(message.footer, tz))
    return "\n\n".join(parts) + "\n"


def html_body(message: Message, tz: ZoneInfo, images: list[tuple[str, str]]) -> str:
    """The HTML part; `images` are (content id, alt text) shown after the sections."""
    body: list[str] = []
    if message.sections:
        if message.title:
            body.append(f"<h1 style=\"font-size:20px\">{html_line(message.title, tz)}</h1>")
        for section in message.sections:
            if section.title:
                body.append(f"<h2 style=\"font-size:16px;margin:18px 0 4px\">"
                            f"{html_line(section.title, tz)}</h2>")
            if section.text:
                body.append(f"<p style=\"margin:0\">{html_line(section.text, tz)}</p>")
            if section.fields:
                rows = "".join(f"<tr><th align=\"left\">{html_line(f.label, tz)}</th>"
                               f"<td>{html_line(f.value, tz)}</td></tr>"
                               for f in section.fields)
                body.append(f"<table>{rows}</table>")
    else:
        body.append(f"<p>{html_line(message.text, tz)}</p>")
    for cid, alt in images:
        body.append(f"<p><img src=\"cid:{html.escape(cid)}\" alt=\"{html.escape(alt)}\" "
                    "style=\"max-width:100%\"></p>")
    if message.footer:
        body.append(f"<p style=\"color:#6e6e73;font-size:12px\">"
                    f"{html_line(message.footer, tz)}</p>")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>"
            f"<body><div style=\"{STYLE}\">\n" + "\n".join(body) + "\n</div></body></html>\n")
