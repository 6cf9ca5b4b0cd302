"""The router: help generated from the registrations, authorization with audited denials,
specific answers to bad input, the reply language, neutral mentions (both databases)."""

from __future__ import annotations

import re

import pytest

from bot.adapters.slack.views import neutral_text
from bot.domain.model import Lang
from bot.i18n import Translator
from bot.services.base import AppContext
from handlers.core import Router, Visibility
from storage import jobs
from storage.repos import Accounts, Audit, Staff
from testkit.chat import (
    ACME_CH,
    ADMIN,
    BIZ_CH,
    CUSTOMER,
    ENGINEER,
    NOWHERE_CH,
    TAM,
    TEAM,
    Chat,
)


async def test_support_help_is_generated_from_the_router(chat: Chat, router: Router) -> None:
    text = (await chat(CUSTOMER, ACME_CH, "/support help")).text
    for cmd in router.commands:
        if cmd.root == "support" and not cmd.hidden:
            assert router.usage(cmd) in text
        elif cmd.root == "support":  # reached by buttons and forms: not offered to type
            assert router.usage(cmd) not in text


async def test_tam_help_hides_admin_commands_from_an_engineer(chat: Chat) -> None:
    text = (await chat(ENGINEER, ACME_CH, "/tam help")).text
    assert "/tam ack <ref>" in text
    assert "/tam account add" not in text
    admin_text = (await chat(ADMIN, ACME_CH, "/tam help")).text
    assert "/tam account add" in admin_text


async def test_customer_cannot_run_tam_commands_and_denial_is_audited(
        chat: Chat, ctx: AppContext) -> None:
    reply = await chat(CUSTOMER, ACME_CH, "/tam account add evil enterprise annual")
    assert "for support staff" in reply.text
    async with ctx.db.transaction() as s:
        assert await Accounts(s).get("evil") is None
        denials = await Audit(s).by_action("denied:tam account")
    assert [d.actor for d in denials] == [CUSTOMER]


async def test_engineer_cannot_run_admin_commands(chat: Chat, ctx: AppContext) -> None:
    reply = await chat(ENGINEER, ACME_CH, f"/tam staff add <user:{ENGINEER}> admin")
    assert "needs the admin role" in reply.text
    async with ctx.db.transaction() as s:
        member = await Staff(s).get(TEAM, ENGINEER)
    assert member is not None and member.role.value == "engineer"


@pytest.mark.parametrize(("line", "expected"), [
    ("/tam account add x1 platinum annual", "“platinum” is not a tier"),
    ("/tam account add x1 enterprise yearly", "“yearly” is not a term"),
    ("/tam account add x1 enterprise annual start=2026-13-01", "“2026-13-01” is not a date"),
    ("/tam account add x1 enterprise annual lang=fr", "“fr” is not a language"),
    ("/tam account add x1 enterprise annual region=mars-1", "“mars-1” is not a region"),
    ("/tam account add x1 enterprise annual color=red", "Unknown option “color”"),
    ("/tam account add X! enterprise annual", "cannot be an account id"),
    ("/tam account add acme enterprise annual", "already exists"),
    ("/tam account add x1 enterprise", "takes 3 argument"),
    ('/tam account add x1 enterprise annual name="unclosed', "a quote is not closed"),
    ("/tam account assign nope <user:UTAM>", "no account “nope”"),
    ("/tam account assign bizco <user:UTAM>", "Enterprise only"),
    ("/tam account assign acme <user:UNOBODY>", "not a TAM or admin"),
    ("/tam account assign acme somebody", "is not a user"),
    ("/tam staff add <user:UXYZ> boss", "“boss” is not a role"),
    ("/tam frobnicate", "Unknown command <code>frobnicate</code>. Type <code>/tam help</code>"),
])
async def test_bad_input_gets_a_specific_answer_and_changes_nothing(
        chat: Chat, ctx: AppContext, line: str, expected: str) -> None:
    async with ctx.db.transaction() as s:
        before = (await Accounts(s).list(), await jobs.count(s))
    reply = await chat(ADMIN, NOWHERE_CH, line)
    assert expected in reply.text
    assert reply.visibility is Visibility.EPHEMERAL
    async with ctx.db.transaction() as s:
        assert (await Accounts(s).list(), await jobs.count(s)) == before


async def test_staff_language_setting_chooses_staff_reply_language(chat: Chat) -> None:
    assert "now in English" not in (await chat(TAM, ACME_CH, "/tam language zh")).text
    zh = Translator(Lang.ZH)
    assert zh("help.tam.title") in (await chat(TAM, ACME_CH, "/tam help")).text
    # customers of an English account still read English in the same group
    assert "Enterprise plan" in (await chat(CUSTOMER, ACME_CH, "/support plan")).text
    assert "“fr” is not a language" in (await chat(ENGINEER, ACME_CH, "/tam language fr")).text
    await chat(ADMIN, NOWHERE_CH, "/tam staff add <user:UZHENG> engineer lang=zh")
    assert zh("help.tam.title") in (await chat("UZHENG", ACME_CH, "/tam help")).text


async def test_customer_asking_tam_help_is_told_it_is_for_staff(chat: Chat) -> None:
    reply = await chat(CUSTOMER, ACME_CH, "/tam help")
    assert "for support staff" in reply.text and "/tam ack" not in reply.text


async def test_env_admin_language_is_a_preference_not_a_staff_row(
        chat: Chat, ctx: AppContext) -> None:
    await chat(ADMIN, ACME_CH, "/tam language zh")
    async with ctx.db.transaction() as s:
        assert await Staff(s).get(TEAM, ADMIN) is None  # removable via SUPPORTBOT_ADMINS
    assert Translator(Lang.ZH)("help.tam.title") in (await chat(ADMIN, ACME_CH,
                                                                "/tam help")).text


async def test_mentions_in_slack_escaped_form(chat: Chat, ctx: AppContext) -> None:
    # Slack sends mentions escaped; its adapter hands the router a neutral mention
    typed = neutral_text("/tam staff add <@U0ABCDEF12|alice> engineer")
    assert typed == "/tam staff add <user:U0ABCDEF12> engineer"
    reply = await chat(ADMIN, NOWHERE_CH, typed)
    assert "<user:U0ABCDEF12> is now engineer" in reply.text


@pytest.mark.parametrize("line", [
    "/tam account tag acme software=nginx", "/tam account usage acme 2026-11 100",
    "/tam report acme 2026-10", "/tam approve PR-1001"])
async def test_a_tam_acts_only_on_their_accounts(chat: Chat, ctx: AppContext,
                                                 line: str) -> None:
    await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10 1")
    await chat(ADMIN, NOWHERE_CH, "/tam staff add <user:UTAM2> tam")
    reply = await chat("UTAM2", NOWHERE_CH, line)
    assert reply.refused and ("managed by its TAM" in reply.text or
                              "account you do not manage" in reply.text)
    async with ctx.db.transaction() as s:
        assert [a.actor for a in await Audit(s).by_action("denied:account.tags")
                + await Audit(s).by_action("denied:account.usage")
                + await Audit(s).by_action("denied:report.request")
                + await Audit(s).by_action("denied:perk.decide")] == ["UTAM2"]



async def test_a_typo_never_points_at_a_command_only_buttons_and_forms_run(
        chat: Chat, router: Router) -> None:
    """`card ack`, `card close` and `open-form` are what the card's buttons and the form
    run: help does not list them, so an answer to a typo must not offer them either (a
    customer typing `cards` for `cases` was told to try `card`, then `card ack`)."""
    hidden = {" ".join(c.path) for c in router.commands if c.hidden} | {"card"}
    for line in ("/support cards", "/support crad", "/support card", "/support open-from"):
        reply = await chat(CUSTOMER, ACME_CH, line)
        offered = set(re.findall(r"Did you mean <code>([^<]*)</code>", reply.text))
        assert reply.refused and not offered & hidden, (line, reply.text)
        assert "ack, close" not in reply.text, (line, reply.text)
    reply = await chat(CUSTOMER, ACME_CH, "/support cases2")
    assert "Did you mean <code>cases</code>?" in reply.text


async def test_chinese_command_words_run_the_english_subcommands(
        chat: Chat, ctx: AppContext) -> None:
    from storage.repos import Cases

    opened = await chat(CUSTOMER, BIZ_CH, "/support 开单 S3 结账接口报错")
    assert "CS-1001" in opened.text and not opened.refused
    plan = await chat(CUSTOMER, BIZ_CH, "/support 套餐")
    assert plan.text == (await chat(CUSTOMER, BIZ_CH, "/support plan")).text
    cases = await chat(CUSTOMER, BIZ_CH, "/support 工单")
    assert "CS-1001" in cases.text and not cases.refused
    # help in Chinese names the words, with full-width punctuation
    helped = (await chat(CUSTOMER, BIZ_CH, "/support 帮助")).text
    assert "也可以使用中文命令词：帮助（help）、开单（open）、套餐（plan）" in helped
    assert helped == (await chat(CUSTOMER, BIZ_CH, "/support help")).text
    acked = await chat(ADMIN, BIZ_CH, "/tam 受理 CS-1001")
    assert not acked.refused, acked.text
    async with ctx.db.read() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.first_response_at is not None
    # a word that is not in the table is an unknown subcommand, as before; nothing done
    unknown = await chat(CUSTOMER, BIZ_CH, "/support 删除 CS-1001")
    assert unknown.refused and "删除" in unknown.text
