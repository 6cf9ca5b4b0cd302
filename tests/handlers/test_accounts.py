"""Accounts and groups through the router: `/support plan`, `/tam link` and its refusals,
the welcome through the outbox (both databases)."""

from __future__ import annotations

from bot.domain.model import Lang
from bot.i18n import Translator
from bot.services.base import AppContext
from handlers.core import Visibility
from storage import jobs
from storage.repos import Audit, Bindings
from testkit.chat import (
    ACME_CH,
    ADMIN,
    BIZ_CH,
    CUSTOMER,
    NOWHERE_CH,
    TAM,
    Chat,
)


async def test_support_plan_shows_enterprise_entitlements_and_quotas(chat: Chat) -> None:
    reply = await chat(CUSTOMER, ACME_CH, "/support plan")
    assert reply.visibility is Visibility.EPHEMERAL
    text = reply.text
    assert "<b>Acme Corp</b> — Enterprise plan (annual), 2026-01-01 → 2026-12-31" in text
    assert "dedicated TAM" in text and f"<user:{TAM}>" in text
    assert "S1 core-down < 10 min" in text and "S5 guidance < 16 h" in text
    assert "• Escort days: 0 used, 0 pending, 3 left of 3" in text
    assert "• Availability check: 0 used, 0 pending, 1 left of 1" in text
    assert "monthly service report" in text
    assert "adds:" not in text  # nothing above enterprise


async def test_support_plan_in_chinese_for_a_zh_account(chat: Chat) -> None:
    text = (await chat(CUSTOMER, BIZ_CH, "/support plan")).text
    zh = Translator(Lang.ZH)
    assert zh("tier.business") in text
    assert zh("perk.escort") in text and "1" in text
    assert "Escort days" not in text
    assert zh("tier.enterprise") in text  # what the next tier adds


async def test_link_refuses_a_tier_without_im_group_and_changes_nothing(
        chat: Chat, ctx: AppContext) -> None:
    reply = await chat(TAM, "CDEV", "/tam link devco")
    assert "Developer tier" in reply.text and "does not include IM group support" in reply.text
    assert "tickets" in reply.text and "hotline" in reply.text
    async with ctx.db.transaction() as s:
        assert await Bindings(s).account_for("CDEV") is None
        denials = await Audit(s).by_action("denied:link")
    assert denials and denials[-1].actor == TAM


async def test_link_posts_a_welcome_through_the_outbox(chat: Chat, ctx: AppContext) -> None:
    async with ctx.db.transaction() as s:
        assert await jobs.count(s, kind="msg.post") == 2  # one welcome per linked group
        assert (await Bindings(s).account_for(ACME_CH)).key == "acme"  # type: ignore[union-attr]


async def test_unbound_channel_plan_points_to_tickets_and_hotline(chat: Chat) -> None:
    text = (await chat(CUSTOMER, NOWHERE_CH, "/support plan")).text
    assert "not a support group" in text and "hotline" in text


async def test_relinking_a_bound_group_to_another_account_is_refused(
        chat: Chat, ctx: AppContext) -> None:
    await chat(ADMIN, NOWHERE_CH, "/tam account add other enterprise annual")
    reply = await chat(ADMIN, ACME_CH, "/tam link other")
    assert "already the support group of acme" in reply.text and "force" in reply.text
    async with ctx.db.transaction() as s:
        assert await Bindings(s).bound_account_key(ACME_CH) == "acme"
    assert "Only an admin" in (await chat(TAM, ACME_CH, "/tam link other force")).text
    assert "now the support group of other" in (await chat(ADMIN, ACME_CH,
                                                          "/tam link other force")).text


async def test_a_tam_links_only_their_own_or_unassigned_accounts(chat: Chat) -> None:
    await chat(ADMIN, NOWHERE_CH, "/tam staff add <user:UTAM2> tam")
    assert "has another TAM" in (await chat("UTAM2", "CNEW", "/tam link acme")).text
