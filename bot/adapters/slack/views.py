"""Pure Block Kit builders: neutral view models and texts in, Slack JSON out (tested alone)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.domain.advisories import KINDS, SEVERITIES
from bot.domain.model import Lang, Severity
from bot.i18n import Translator, clean_user_text
from bot.messages import Button, Message, tokens

SECTION_LIMIT = 3000
MAX_BLOCKS = 50

ACK_ACTION = "case_ack"
CLOSE_ACTION = "case_close"
OPEN_FROM_REACTION_ACTION = "open_case_from_reaction"
OPEN_CASE_CALLBACK = "open_case"
OPEN_FROM_MESSAGE_SHORTCUT = "open_case_from_message"
RUN_ACTION = "run_command"
RUN_ASK_ACTION = "run_command_ask"
RUN_ASK_CALLBACK = "run_command_ask"
ADVISORY_CALLBACK = "advisory_form"
INCIDENT_CALLBACK = "incident_form"


# Slack's own glyph for each neutral status mark
MARK_EMOJI = {"breach": ":rotating_light:", "warning": ":warning:", "ok": ":white_check_mark:",
              "error": ":x:", "advisory": ":mega:", "report": ":bar_chart:", "reminder": ":bell:",
              "ticket": ":ticket:"}


SLACK_MENTION = re.compile(r"<@([UW][A-Z0-9]{1,30})(?:\|[^>]*)?>")
# Slack's other angle-bracket forms in typed text: channel links, links with or without a
# label, special mentions (<!here>) and date tokens
HELD = "\x00"
MENTION_HELD = re.compile(HELD + r"([UW][A-Z0-9]{1,30})" + HELD)
SLACK_LINK = re.compile(r"<([#!]?)([^<>|]*)(?:\|([^<>]*))?>")


def _typed_link(m: re.Match[str]) -> str:
    sigil, target, label = m.group(1), m.group(2), m.group(3)
    if sigil == "#":
        return f"#{label or target}"
    if sigil == "!":
        return label or f"@{target.split('^')[0]}"
    if target.startswith("mailto:") and (not label or label == target[7:]):
        return target[7:]  # an email address Slack linked: the address, as typed
    return target if not label or label == target else f"{label} ({target})"


def neutral_text(text: str) -> str:
    """Text typed in Slack as neutral text: a user mention (`<@U1|bob>`) becomes `<user:U1>`,
    links and channel references become their readable form, and Slack's escapes of `&`,
    `<` and `>` are undone, so handlers and stored summaries never carry Slack's syntax."""
    text = SLACK_LINK.sub(_typed_link, SLACK_MENTION.sub(HELD + r"\1" + HELD, text))
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    # mentions were set aside first (NUL cannot be typed in Slack) so the link rule leaves
    # them be
    return MENTION_HELD.sub(r"<user:\1>", text)


def _escape(text: str) -> str:
    """Slack's three control characters in a literal run, as Slack asks for mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(text: str, *, escape: bool = True) -> str:
    """Neutral markup (`bot.messages`) to Slack mrkdwn: emphasis, code, user mentions, date
    tokens (each reader's own time zone) and emoji for status marks. Literal text is escaped
    (`a < b` never becomes a link); `escape=False` is for plain_text objects, which Slack
    shows as written."""
    out: list[str] = []
    for tok in tokens(text):
        if tok.kind == "text":
            out.append(_escape(tok.value) if escape else tok.value)
        elif tok.kind in ("b", "/b"):
            out.append("*")
        elif tok.kind in ("code", "/code"):
            out.append("`")
        elif tok.kind == "user":
            out.append(f"<@{tok.value}>")
        elif tok.kind == "time":
            ts = int(tok.value)
            fallback = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
            out.append(f"<!date^{ts}^{{date_short_pretty}} {{time}}|{fallback}>")
        elif tok.kind == "mark":
            out.append(MARK_EMOJI[tok.value])
    return "".join(out)


def _chunks(text: str, size: int = SECTION_LIMIT) -> list[str]:
    """Split text at line breaks into pieces that fit one section."""
    out: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > size:
            if current:
                out.append(current)
                current = ""
            out.append(line[:size])
            line = line[size:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > size:
            out.append(current)
            current = line
        else:
            current = candidate
    if current or not out:
        out.append(current or " ")
    return out


def text_blocks(text: str, buttons: Sequence[Button] | None = None) -> list[dict[str, Any]]:
    """A reply as sections within Slack's limits (3,000 chars a section, 50 blocks)."""
    actions = _buttons_block(buttons or ())
    room = MAX_BLOCKS - (1 if actions else 0)
    chunks = _chunks(slack_text(text))
    if len(chunks) > room:
        chunks = [*chunks[: room - 1], "…"]
    blocks = [SectionBlock(text=MarkdownTextObject(text=c)).to_dict() for c in chunks]
    if actions:
        blocks.append(actions.to_dict())
    return blocks


def ask_modal(button: Button, channel_id: str) -> dict[str, Any]:
    """Collect the text a button asks for (e.g. a rejection reason), then run its command."""
    return {
        "type": "modal", "callback_id": RUN_ASK_CALLBACK,
        "private_metadata": json.dumps({"command": button.command, "channel": channel_id}),
        "title": {"type": "plain_text", "text": button.label[:24]},
        "submit": {"type": "plain_text", "text": button.label[:24]},
        "blocks": [{"type": "input", "block_id": "text",
                    "label": {"type": "plain_text", "text": (button.ask or "")[:2000]},
                    "element": {"type": "plain_text_input", "action_id": "value",
                                "multiline": True, "max_length": 1000}}],
    }


def _description_blocks(description: str) -> list[dict[str, Any]]:
    """A form's description (neutral markup) as a context block above its fields."""
    if not description:
        return []
    return [ContextBlock(elements=[MarkdownTextObject(
        text=slack_text(description)[:SECTION_LIMIT])]).to_dict()]


def open_case_modal(lang: Lang, channel_id: str, prefill: str = "",
                    regions: Sequence[str] = (), description: str = "") -> dict[str, Any]:
    """The intake form: severity, summary, description, region, third-party software; the
    form's description (the severity self-assessment note) above them."""
    t = Translator(lang)
    summary = " ".join(prefill.split())[:150]
    options = [{"text": {"type": "plain_text", "text": f"{s.value} · {t('severity.' + s.value)}"},
                "value": s.value} for s in Severity]

    def text_input(block_id: str, label: str, *, multiline: bool = False, optional: bool = False,
                   initial: str = "", max_length: int = 300) -> dict[str, Any]:
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value",
                                   "multiline": multiline, "max_length": max_length}
        if initial:
            element["initial_value"] = initial[:max_length]
        return {"type": "input", "block_id": block_id, "optional": optional,
                "label": {"type": "plain_text", "text": label}, "element": element}

    region_input: dict[str, Any] = text_input("region", t("form.region"), optional=True,
                                              max_length=64)
    if regions:  # a list to pick from: free text would have to match our region ids
        region_input = {"type": "input", "block_id": "region", "optional": True,
                        "label": {"type": "plain_text", "text": t("form.region")},
                        "element": {"type": "static_select", "action_id": "value",
                                    "options": [{"text": {"type": "plain_text", "text": r},
                                                 "value": r} for r in regions[:100]]}}
    return {
        "type": "modal",
        "callback_id": OPEN_CASE_CALLBACK,
        "private_metadata": channel_id,
        "title": {"type": "plain_text", "text": t("form.title")[:24]},
        "submit": {"type": "plain_text", "text": t("form.submit")[:24]},
        "close": {"type": "plain_text", "text": t("form.cancel")[:24]},
        "blocks": [
            *_description_blocks(description),
            {"type": "input", "block_id": "severity",
             "label": {"type": "plain_text", "text": t("form.severity")},
             "element": {"type": "static_select", "action_id": "value", "options": options}},
            text_input("summary", t("form.summary"), initial=summary),
            text_input("description", t("form.description"), multiline=True, optional=True,
                       initial=prefill, max_length=3000),
            region_input,
            text_input("software", t("form.software"), optional=True, max_length=64),
        ],
    }


def modal_values(view: dict[str, Any]) -> dict[str, str]:
    """Flatten a submitted view's state into {block_id: value}."""
    out: dict[str, str] = {}
    for block_id, actions in (view.get("state", {}).get("values", {}) or {}).items():
        if not isinstance(actions, dict):
            continue
        v = actions.get("value") or {}
        if not isinstance(v, dict):
            continue
        if v.get("type") == "static_select":
            sel = v.get("selected_option") or {}
            out[block_id] = str(sel.get("value") or "")
        elif v.get("type") == "multi_static_select":
            out[block_id] = ",".join(str(o.get("value", "")) for o in
                                     v.get("selected_options") or [])
        else:
            # typed text: no bidi overrides or other invisible characters reach a reply
            out[block_id] = clean_user_text(str(v.get("value") or ""))
    return out


def reaction_offer_blocks(lang: Lang, channel_id: str, ts: str) -> list[dict[str, Any]]:
    t = Translator(lang)
    return [
        SectionBlock(text=MarkdownTextObject(text=t("reaction.offer"))).to_dict(),
        ActionsBlock(elements=[ButtonElement(text=t("reaction.button"),
                                             action_id=OPEN_FROM_REACTION_ACTION,
                                             value=f"{channel_id}|{ts}",
                                             style="primary")]).to_dict(),
    ]


def _select(block_id: str, label: str, options: list[tuple[str, str]], *,
            multi: bool = False, optional: bool = False) -> dict[str, Any]:
    return {"type": "input", "block_id": block_id, "optional": optional,
            "label": {"type": "plain_text", "text": label},
            "element": {"type": "multi_static_select" if multi else "static_select",
                        "action_id": "value",
                        "options": [{"text": {"type": "plain_text", "text": text[:75]},
                                     "value": value} for value, text in options[:100]]}}


def _text(block_id: str, label: str, *, multiline: bool = False, optional: bool = False,
          max_length: int = 150) -> dict[str, Any]:
    return {"type": "input", "block_id": block_id, "optional": optional,
            "label": {"type": "plain_text", "text": label},
            "element": {"type": "plain_text_input", "action_id": "value",
                        "multiline": multiline, "max_length": max_length}}


def advisory_modal(lang: Lang, channel_id: str, regions: Sequence[str],
                   description: str = "") -> dict[str, Any]:
    """The advisory form; its submission becomes the text command, previewed first. The
    form's description (what proactive care does not cover) is shown above the fields."""
    t = Translator(lang)
    select, text = _select, _text
    return {
        "type": "modal", "callback_id": ADVISORY_CALLBACK, "private_metadata": channel_id,
        "title": {"type": "plain_text", "text": t("form.advisory_title")[:24]},
        "submit": {"type": "plain_text", "text": t("form.advisory_send")[:24]},
        "close": {"type": "plain_text", "text": t("form.cancel")[:24]},
        "blocks": [
            *_description_blocks(description),
            text("title", t("form.adv_title")),
            select("kind", t("form.adv_kind"),
                   [(k, t(f"advisory.kind.{k}")) for k in KINDS]),
            select("severity", t("form.adv_severity"),
                   [(k, t(f"advisory.severity.{k}")) for k in SEVERITIES]),
            text("body", t("form.adv_body"), multiline=True, max_length=2500),
            select("regions", t("form.adv_regions"), [(r, r) for r in regions], multi=True,
                   optional=True),
            text("products", t("form.adv_products"), optional=True, max_length=300),
            text("software", t("form.adv_software"), optional=True, max_length=300),
            text("accounts", t("form.adv_accounts"), optional=True, max_length=1000),
        ],
    }


def incident_modal(lang: Lang, channel_id: str, regions: Sequence[str]) -> dict[str, Any]:
    """The declare-an-incident form; its submission runs `/tam incident declare`."""
    t = Translator(lang)
    return {
        "type": "modal", "callback_id": INCIDENT_CALLBACK, "private_metadata": channel_id,
        "title": {"type": "plain_text", "text": t("form.incident_title")[:24]},
        "submit": {"type": "plain_text", "text": t("form.incident_submit")[:24]},
        "close": {"type": "plain_text", "text": t("form.cancel")[:24]},
        "blocks": [
            _select("region", t("form.inc_region"), [(r, r) for r in regions]),
            _text("products", t("form.inc_products"), optional=True, max_length=300),
            _text("title", t("form.inc_title")),
        ],
    }


BUTTON_VALUE_LIMIT = 2000  # Slack keeps this much of a button's value


def _buttons_block(buttons: Sequence[Button]) -> ActionsBlock | None:
    """The buttons as one actions block; None when none fits. A button is its command, in
    its value: one too long for Slack is left out (cut, it would run nothing when clicked);
    the message's text says what to type instead."""
    values = [(b, json.dumps(b.to_dict())) for b in buttons]
    elements = [ButtonElement(text=b.label[:75], action_id=RUN_ASK_ACTION if b.ask else RUN_ACTION,
                              value=value, style=b.style)
                for b, value in values if len(value) <= BUTTON_VALUE_LIMIT][:5]
    return ActionsBlock(elements=elements) if elements else None


def message_blocks(message: Message, limit: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    """A neutral message with a layout as Block Kit: a header per titled section, its text
    in sections within Slack's size limits, its fields, its buttons."""
    if not message.sections:
        return text_blocks(message.text, message.buttons)
    blocks: list[Block] = []
    if message.title:
        blocks.append(HeaderBlock(text=PlainTextObject(
            text=slack_text(message.title, escape=False)[:150])))
    for sec in message.sections:
        if sec.title:
            blocks.append(HeaderBlock(text=PlainTextObject(
                text=slack_text(sec.title, escape=False)[:150])))
        fields = [MarkdownTextObject(text=slack_text(f"<b>{f.label}</b>\n{f.value}")[:2000])
                  for f in sec.fields[:10]]
        for n, chunk in enumerate(_chunks(slack_text(sec.text or " "))):
            blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk),
                                       fields=fields if n == 0 and fields else None))
        if actions := _buttons_block(sec.buttons):
            blocks.append(actions)
    if actions := _buttons_block(message.buttons):
        blocks.append(actions)
    if message.footer:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=slack_text(message.footer))]))
    return [b.to_dict() for b in blocks[:limit]]


def home_view(home: Message) -> dict[str, Any]:
    """The App Home tab (at most 100 blocks)."""
    return {"type": "home", "blocks": message_blocks(home, limit=100)}
