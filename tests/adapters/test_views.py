"""Slack views: the pure Block Kit builders for the neutral staff and customer Homes, and
neutral text that users typed, as Slack and the console render it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from bot.adapters.console import render
from bot.adapters.slack.listeners import reply_body
from bot.adapters.slack.views import (
    MAX_BLOCKS,
    home_view,
    message_blocks,
    neutral_text,
    slack_text,
)
from bot.domain.model import Account, Case, CaseStatus, Lang, Severity, Term, Tier
from bot.domain.sla import ClockState
from bot.messages import Button, Message, Section
from bot.services import home
from bot.services.base import AppContext
from bot.services.cards import card_message
from bot.services.home import CaseLine, CustomerAccount, CustomerHome, PendingRequest, StaffHome
from handlers.core import Kind, Request, Router
from storage.repos import Cases
from testkit.chat import ACME_CH, CUSTOMER, NOWHERE_CH, TAM, TEAM, Chat

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
ACME = Account(key="acme", name="Acme", tier=Tier.ENTERPRISE, term=Term.ANNUAL,
               start=date(2026, 1, 1), end=date(2027, 1, 1), region="cn-north-4",
               timezone="Asia/Shanghai", lang=Lang.EN)


def a_case(n: int, minutes_left: int, breached: bool = False) -> Case:
    return Case(id=n, ref=f"CS-{1000 + n}", account_key="acme", team_id="T1", channel_id="C",
                opener_user_id="U", severity=Severity.S2, requested_severity=Severity.S2,
                summary=f"summary {n}", description="", region=None, software=None,
                status=CaseStatus.OPEN, opened_at=NOW - timedelta(minutes=30),
                due_at=NOW + timedelta(minutes=minutes_left), target_label="30m",
                sla_generation=1, breached=breached)


def texts(view: dict[str, object]) -> str:
    return json.dumps(view, ensure_ascii=False)


def test_staff_home_builder_lists_urgent_work_with_buttons() -> None:
    data = StaffHome("UTAM", Lang.EN, NOW, accounts=[ACME], cases=[
        CaseLine("acme", a_case(1, -5, True), ClockState.BREACHED),
        CaseLine("acme", a_case(2, 4), ClockState.NEAR)],
        pending=[PendingRequest("PR-1001", "acme", "escort", "2026-12-10", 2)])
    view = home_view(home.home_message(data))
    assert view["type"] == "home"
    body = texts(view)
    assert "Your accounts (1)" in body and "Breached, waiting for a first response (1)" in body
    assert ":rotating_light: *CS-1001*" in body and "overdue by 5m" in body
    assert ":warning: *CS-1002*" in body and "4m left" in body
    assert "/tam approve PR-1001" in body and "run_command_ask" in body


def test_customer_home_builder_in_chinese_and_block_limit() -> None:
    data = CustomerHome("UCUST", Lang.ZH, NOW, accounts=[CustomerAccount(
        replace(ACME, lang=Lang.ZH), [CaseLine("acme", a_case(i, 60), ClockState.RUNNING)
                                      for i in range(1, 200)], [])])
    view = home_view(home.home_message(data))
    assert "未结案例（199）" in texts(view) and "企业级" in texts(view)
    assert len(view["blocks"]) <= 100  # type: ignore[arg-type]
    for block in view["blocks"]:  # type: ignore[union-attr]
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    assert MAX_BLOCKS == 50


async def test_a_time_token_typed_out_of_range_is_shown_as_typed(
        chat: Chat, ctx: AppContext, router: Router) -> None:
    """Times are the one token whose value a renderer computes with: a customer typing
    `<t:999999999999>` (year 33658) into the form made every rendering of the case raise,
    in Slack and in the console: its card, its group's case list, the TAM's Home."""
    typed = "db down since <t:999999999999>, retried <t:-99999999999>"
    reply = await router.dispatch(Request(
        root="support", text="open-form", team_id=TEAM, channel_id=ACME_CH, user_id=CUSTOMER,
        kind=Kind.FORM, fields={"severity": "S2", "summary": typed}), ctx)
    assert not reply.refused, reply.text
    listing = (await chat(CUSTOMER, ACME_CH, "/support cases")).text
    # Slack is sent the typed text escaped, which it shows as typed
    escaped = typed.replace("<", "&lt;").replace(">", "&gt;")
    assert escaped in slack_text(listing) and typed in render(listing)
    async with ctx.db.read() as s:
        case = await Cases(s).get(1)
    assert case is not None
    card = card_message(case, Lang.EN)
    assert escaped in json.dumps(message_blocks(card)) and typed in render(card.text)
    # a time the bot writes still renders as a time
    assert "<!date^1764295200^" in slack_text(f"due <t:1764295200> ({typed})")


async def test_a_button_whose_command_does_not_fit_slack_is_left_out_not_cut(
        chat: Chat) -> None:
    """Slack keeps 2,000 characters of a button's value. An advisory's Send button carries
    the whole advisory (a body may have 2,500): cut, its value no longer parsed and the click
    did nothing at all. Left out, the reply still says what to type to send it."""
    body = "Upgrade OpenSSL on every nginx host. " * 60
    reply = await chat(TAM, NOWHERE_CH, f'/tam advisory vulnerability high "OpenSSL" "{body}"')
    assert reply.buttons and "To send it:" in reply.text
    blocks = reply_body(reply)["blocks"]
    values = [e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert values == []
    short = await chat(TAM, NOWHERE_CH, '/tam advisory vulnerability high "OpenSSL" "Upgrade."')
    values = [e["value"] for b in reply_body(short)["blocks"] if b["type"] == "actions"
              for e in b["elements"]]
    assert [Button.from_dict(json.loads(v)).label for v in values] == ["Send"]


def test_typed_slack_syntax_becomes_neutral_text_and_is_escaped_on_the_way_back() -> None:
    """Slack escapes `&`, `<` and `>` in what a user types and wraps links and channels in
    angle brackets; stored text carries none of that, and literal text sent back to Slack is
    escaped, so a usage line's `<severity>` never becomes a broken link."""
    typed = ("ping <@U0ABC|bob>: see <https://status.example/x|status> in <#C01|ops>, "
             "p99 &lt; 1 s &amp;&amp; errors &gt; 0 <!here>")
    text = neutral_text(typed)
    assert text == ("ping <user:U0ABC>: see status (https://status.example/x) in #ops, "
                    "p99 < 1 s && errors > 0 @here")
    assert slack_text(text) == ("ping <@U0ABC>: see status (https://status.example/x) in #ops, "
                                "p99 &lt; 1 s &amp;&amp; errors &gt; 0 @here")
    assert slack_text("<b>Usage</b>: /support open <severity>") == (
        "*Usage*: /support open &lt;severity&gt;")
    # a header is plain_text, which Slack shows as written
    header = message_blocks(Message("x", title="A < B", sections=(Section(text="x"),)))[0]
    assert header["text"]["text"] == "A < B"
