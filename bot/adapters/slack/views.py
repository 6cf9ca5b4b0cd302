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
from bot.domain.sla import ClockState
from bot.i18n import TIME_TOKEN, Translator, clean_user_text
from bot.services.cards import CaseCard
from bot.services.home import CaseLine, CustomerHome, StaffHome
from bot.services.messenger import Button

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


def slack_text(text: str) -> str:
    """Turn neutral `<t:UNIX>` markers into Slack date tokens (each reader's own time zone)."""

    def token(m: re.Match[str]) -> str:
        ts = int(m.group(1))
        fallback = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"<!date^{ts}^{{date_short_pretty}} {{time}}|{fallback}>"

    return TIME_TOKEN.sub(token, text)


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
    room = MAX_BLOCKS - (1 if buttons else 0)
    chunks = _chunks(slack_text(text))
    if len(chunks) > room:
        chunks = [*chunks[: room - 1], "…"]
    blocks = [SectionBlock(text=MarkdownTextObject(text=c)).to_dict() for c in chunks]
    if buttons:
        blocks.append(ActionsBlock(elements=[
            ButtonElement(text=b.label[:75], action_id=RUN_ASK_ACTION if b.ask else RUN_ACTION,
                          value=json.dumps(b.to_dict())[:2000], style=b.style)
            for b in buttons[:5]]).to_dict())
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


def case_card_blocks(card: CaseCard) -> list[dict[str, Any]]:
    t = Translator(card.lang)
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=f"{card.ref} · {card.severity}"[:150])),
        SectionBlock(text=MarkdownTextObject(text=slack_text(card.title(t))[:SECTION_LIMIT]),
                     fields=[MarkdownTextObject(text=slack_text(f"*{label}*\n{value}")[:2000])
                             for label, value in card.fields(t)]),
    ]
    if card.status.is_active:
        buttons = []
        if card.awaiting:
            buttons.append(ButtonElement(text=t("card.button_ack"), action_id=ACK_ACTION,
                                         value=str(card.case_id), style="primary"))
        buttons.append(ButtonElement(text=t("card.button_close"), action_id=CLOSE_ACTION,
                                     value=str(card.case_id)))
        blocks.append(ActionsBlock(elements=buttons))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=t("card.thread_hint"))]))
    return [b.to_dict() for b in blocks]


def open_case_modal(lang: Lang, channel_id: str, prefill: str = "",
                    regions: Sequence[str] = ()) -> dict[str, Any]:
    """The intake form: severity, summary, description, region, third-party software."""
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


def advisory_modal(lang: Lang, channel_id: str, regions: Sequence[str]) -> dict[str, Any]:
    """The advisory form; its submission becomes the text command, previewed first."""
    t = Translator(lang)

    def select(block_id: str, label: str, options: list[tuple[str, str]], *,
               multi: bool = False, optional: bool = False) -> dict[str, Any]:
        return {"type": "input", "block_id": block_id, "optional": optional,
                "label": {"type": "plain_text", "text": label},
                "element": {"type": "multi_static_select" if multi else "static_select",
                            "action_id": "value",
                            "options": [{"text": {"type": "plain_text", "text": text[:75]},
                                         "value": value} for value, text in options[:100]]}}

    def text(block_id: str, label: str, *, multiline: bool = False, optional: bool = False,
             max_length: int = 150) -> dict[str, Any]:
        return {"type": "input", "block_id": block_id, "optional": optional,
                "label": {"type": "plain_text", "text": label},
                "element": {"type": "plain_text_input", "action_id": "value",
                            "multiline": multiline, "max_length": max_length}}

    return {
        "type": "modal", "callback_id": ADVISORY_CALLBACK, "private_metadata": channel_id,
        "title": {"type": "plain_text", "text": t("form.advisory_title")[:24]},
        "submit": {"type": "plain_text", "text": t("form.advisory_send")[:24]},
        "close": {"type": "plain_text", "text": t("form.cancel")[:24]},
        "blocks": [
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


def _case_row(t: Translator, line: CaseLine, now: datetime) -> str:
    c = line.case
    mark = {ClockState.BREACHED: ":rotating_light: ", ClockState.NEAR: ":warning: "}.get(
        line.state, "")
    clock = t.time_left(c.due_at, now) if c.awaiting_first_response else \
        t(f"status.{c.status.value}")
    return f"{mark}*{c.ref}* [{c.severity.value}] {c.summary[:80]} — {clock}"


def home_view(home: StaffHome | CustomerHome) -> dict[str, Any]:
    """The App Home tab: staff dashboards or the customer's account (≤ 100 blocks)."""
    t = Translator(home.lang)
    blocks: list[Block] = []

    def section(title: str, lines: list[str], empty: str) -> None:
        blocks.append(HeaderBlock(text=PlainTextObject(text=title[:150])))
        body = "\n".join(lines) if lines else f"_{empty}_"
        for chunk in _chunks(slack_text(body)):
            blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk)))

    if isinstance(home, StaffHome):
        section(t("home.staff.accounts", n=len(home.accounts)),
                [f"• *{a.key}* {a.name} — {t(f'tier.{a.tier}')}" for a in home.accounts[:30]],
                t("home.none"))
        section(t("home.staff.breaches", n=len(home.breaches)),
                [_case_row(t, c, home.now) for c in home.breaches], t("home.none"))
        section(t("home.staff.cases"),
                [f"{c.account_key}: " + _case_row(t, c, home.now) for c in home.cases],
                t("home.none"))
        blocks.append(HeaderBlock(text=PlainTextObject(text=t("home.staff.requests"))))
        if not home.pending:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=f"_{t('home.none')}_")))
        for r in home.pending:
            approve = Button(t("perk.button_approve"), f"/tam approve {r.ref}", "primary")
            reject = Button(t("perk.button_reject"), f"/tam reject {r.ref}", "danger",
                            ask=t("perk.reject_reason"))
            blocks.append(SectionBlock(text=MarkdownTextObject(text=t(
                "home.request_line", ref=r.ref, account=r.account_key,
                perk=t(f"perk.{r.perk}"), start=r.start, n=r.amount))))
            blocks.append(ActionsBlock(elements=[
                ButtonElement(text=b.label, action_id=RUN_ASK_ACTION if b.ask else RUN_ACTION,
                              value=json.dumps(b.to_dict()), style=b.style)
                for b in (approve, reject)]))
        section(t("home.staff.advisories"),
                [t("home.advisory_line", ref=a.ref, title=a.title[:80],
                   severity=t(f"advisory.severity.{a.severity}"), n=a.waiting)
                 for a in home.advisories], t("home.none"))
    else:
        if not home.accounts:
            section(t("home.customer.welcome"), [t("home.customer.no_account")], "")
        for acc in home.accounts:
            a = acc.account
            section(t("home.customer.account", name=a.name, tier=t(f"tier.{a.tier}")),
                    [t("plan.header", name=a.name, tier=t(f"tier.{a.tier}"),
                       term=t(f"term.{a.term}"), start=a.start.isoformat(),
                       end=a.last_day.isoformat(), region=a.region)] +
                    [t("plan.perk_line", perk=t(f"perk.{b.perk}"), used=b.used, held=b.held,
                       left=b.left, quota=b.quota) for b in acc.perks if b.quota], "")
            section(t("home.customer.cases", n=len(acc.cases)),
                    [_case_row(t, c, home.now) for c in acc.cases], t("home.none"))
    return {"type": "home", "blocks": [b.to_dict() for b in blocks[:100]]}
