"""The neutral message: what services and handlers say, before any platform renders it.

A `Message` is text in a small neutral markup, an optional title, optional sections of
label/value fields, buttons and files. Every layer above the domain may build one; only an
adapter turns one into its platform's form (Slack mrkdwn and Block Kit, terminal text, ...).

The markup is a handful of angle-bracket tokens, chosen so that no platform's own markup
(Slack's asterisks, emoji codes and mention syntax, WeCom's markdown) appears outside its
adapter:

| token                  | meaning                                      |
|------------------------|----------------------------------------------|
| `<b>text</b>`          | emphasis                                     |
| `<code>text</code>`    | a command or an identifier, shown verbatim   |
| `<user:ID>`            | a mention of a chat user of this platform    |
| `<t:UNIX>`             | a moment, shown in each reader's time zone   |
| `<mark:NAME>`          | a status mark (see `MARKS`)                  |

Anything else is literal text. `Token` splits a text into literal runs and tokens, so each
renderer is a small mapping from token to its own form.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# status marks a message may carry; each adapter picks its own glyph for each
MARKS = frozenset({"breach", "warning", "ok", "error", "advisory", "report", "reminder",
                   "ticket"})

# the moments a `<t:UNIX>` may name: a renderer turns it into a date in some time zone, which
# must exist (years 2 to 9998, so that no zone's offset leaves the range of a datetime)
TIME_MIN = int(datetime(2, 1, 1, tzinfo=UTC).timestamp())
TIME_MAX = int(datetime(9998, 12, 31, tzinfo=UTC).timestamp())

TOKEN = re.compile(
    r"<b>|</b>|<code>|</code>|<user:([A-Za-z0-9_.:@-]{1,64})>|<t:(-?\d{1,12})>"
    r"|<mark:([a-z_]{1,20})>")


def bold(text: str) -> str:
    return f"<b>{text}</b>"


def code(text: str) -> str:
    return f"<code>{text}</code>"


def mention(user_id: str) -> str:
    return f"<user:{user_id}>"


def time_token(at: datetime) -> str:
    """A moment, rendered per reader by the adapter (their own time zone)."""
    return f"<t:{int(at.timestamp())}>"


def mark(name: str) -> str:
    if name not in MARKS:
        raise ValueError(f"unknown mark {name!r}; known: {', '.join(sorted(MARKS))}")
    return f"<mark:{name}>"


@dataclass(frozen=True, slots=True)
class Token:
    """One piece of a neutral text: `kind` is `text`, `b`, `/b`, `code`, `/code`, `user`,
    `time` or `mark`; `value` is the literal text, user id, UNIX time or mark name."""

    kind: str
    value: str = ""


def tokens(text: str) -> Iterator[Token]:
    """Split neutral text into literal runs and markup tokens, in order."""
    pos = 0
    for m in TOKEN.finditer(text):
        if m.start() > pos:
            yield Token("text", text[pos:m.start()])
        whole = m.group(0)
        if m.group(1) is not None:
            yield Token("user", m.group(1))
        elif m.group(2) is not None:
            # out of range, it is no moment the bot wrote but text a user typed: shown as
            # typed, never a renderer's error (a case summary must not break its card)
            in_range = TIME_MIN <= int(m.group(2)) <= TIME_MAX
            yield Token("time", m.group(2)) if in_range else Token("text", whole)
        elif m.group(3) is not None:
            name = m.group(3)
            yield Token("mark", name) if name in MARKS else Token("text", whole)
        else:
            yield Token(whole.strip("<>"))
        pos = m.end()
    if pos < len(text):
        yield Token("text", text[pos:])


def plain(text: str) -> str:
    """The text with every token removed (emphasis and code kept as their content, users and
    times as their raw ids): for logs, search and length checks, not for readers."""
    out: list[str] = []
    for tok in tokens(text):
        if tok.kind in ("text", "user", "time"):
            out.append(tok.value)
    return "".join(out)


@dataclass(frozen=True)
class Button:
    """A button that runs a command as whoever clicks it, where it was clicked.

    `ask` names a text to collect first (e.g. a rejection reason), appended to the command.
    The command is dispatched by the router like a typed one, so a forged click gains nothing.
    """

    label: str
    command: str
    style: str | None = None  # "primary" | "danger"
    ask: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("label", self.label), ("command", self.command),
                                  ("style", self.style), ("ask", self.ask)) if v}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Button:
        return cls(str(d["label"]), str(d["command"]),
                   str(d["style"]) if d.get("style") else None,
                   str(d["ask"]) if d.get("ask") else None)


@dataclass(frozen=True)
class Field:
    label: str
    value: str


@dataclass(frozen=True)
class Section:
    """A part of a rich message: an optional heading, text, label/value fields and buttons
    that belong to this part (a card's body, a dashboard's list, one request to approve)."""

    text: str = ""
    fields: tuple[Field, ...] = ()
    title: str | None = None
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True)
class File:
    """A file shared with a message (a report's chart)."""

    filename: str
    content: bytes
    title: str


@dataclass(frozen=True)
class Message:
    """What to say. `text` is always the whole message in neutral markup (notification text
    and the rendering of platforms without rich layouts); `title` and `sections` give a
    richer layout to platforms that have one."""

    text: str
    title: str | None = None
    sections: tuple[Section, ...] = ()
    buttons: tuple[Button, ...] = ()
    footer: str | None = None  # a quiet last line (a hint), shown small where possible

    @classmethod
    def of(cls, text: str, buttons: tuple[Button, ...] | list[Button] = ()) -> Message:
        return cls(text, buttons=tuple(buttons))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form, for outbox payloads."""
        d: dict[str, Any] = {"text": self.text}
        if self.title is not None:
            d["title"] = self.title
        if self.sections:
            d["sections"] = [_section_dict(s) for s in self.sections]
        if self.buttons:
            d["buttons"] = [b.to_dict() for b in self.buttons]
        if self.footer is not None:
            d["footer"] = self.footer
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Message:
        sections = tuple(
            Section(str(s.get("text", "")),
                    tuple(Field(str(label), str(value)) for label, value in s.get("fields", [])),
                    str(s["title"]) if s.get("title") else None,
                    tuple(Button.from_dict(b) for b in s.get("buttons") or []))
            for s in d.get("sections") or [])
        return cls(text=str(d["text"]), title=str(d["title"]) if d.get("title") else None,
                   sections=sections,
                   buttons=tuple(Button.from_dict(b) for b in d.get("buttons") or []),
                   footer=str(d["footer"]) if d.get("footer") else None)


def _section_dict(s: Section) -> dict[str, Any]:
    d: dict[str, Any] = {"text": s.text}
    if s.fields:
        d["fields"] = [[f.label, f.value] for f in s.fields]
    if s.title is not None:
        d["title"] = s.title
    if s.buttons:
        d["buttons"] = [b.to_dict() for b in s.buttons]
    return d
