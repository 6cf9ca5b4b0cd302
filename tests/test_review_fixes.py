"""Races and rule gaps found in review: quotas under concurrency, pending requests in plan
checks, upgrade-then-downgrade perks, double confirmations, who may do what."""

from __future__ import annotations

import asyncio

import pytest

from bot.services.base import AppContext
from storage.repos import Audit, PlanChanges
from testkit.chat import ACME_CH, ADMIN, BIZ_CH, CUSTOMER, NOWHERE_CH, TAM, Chat


async def test_concurrent_requests_never_exceed_the_quota(chat: Chat) -> None:
    replies = await asyncio.gather(*(chat(CUSTOMER, ACME_CH, f"/support escort 2026-12-1{i} 3")
                                      for i in range(4)))
    accepted = [r for r in replies if "sent to your TAM" in r.text]
    assert len(accepted) == 1
    assert all("Not enough Escort days left" in r.text for r in replies if r not in accepted)
    plan = (await chat(CUSTOMER, ACME_CH, "/support plan")).text
    assert "0 used, 3 pending, 0 left of 3" in plan


async def test_pending_requests_count_in_downgrade_and_unsubscribe_checks(chat: Chat) -> None:
    await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10 2")
    reply = await chat(ADMIN, NOWHERE_CH, "/tam plan acme downgrade business confirm")
    assert "would leave Escort days overdrawn" in reply.text and "2 used" in reply.text
    reply = await chat(ADMIN, NOWHERE_CH, "/tam plan acme unsubscribe confirm")
    assert "cannot be unsubscribed mid-term" in reply.text


async def test_upgrade_then_downgrade_grants_no_perks(chat: Chat) -> None:
    await chat(ADMIN, NOWHERE_CH, "/tam account add devx developer annual start=2026-01-01")
    await chat(ADMIN, NOWHERE_CH, "/tam plan devx upgrade enterprise confirm")
    await chat(ADMIN, "CDEVX", "/tam link devx")
    await chat(ADMIN, NOWHERE_CH, "/tam plan devx downgrade business confirm")
    reply = await chat(CUSTOMER, "CDEVX", "/support escort 2026-12-10 1")
    assert "not available this plan year" in reply.text


async def test_a_request_from_an_earlier_plan_year_cannot_be_approved(chat: Chat) -> None:
    await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10 1")
    await chat(ADMIN, NOWHERE_CH, "/tam account renew acme")
    reply = await chat(TAM, ACME_CH, "/tam approve PR-1001")
    assert "cannot be approved any more" in reply.text


async def test_double_confirmation_applies_a_plan_change_once(chat: Chat,
                                                             ctx: AppContext) -> None:
    replies = await asyncio.gather(*(chat(ADMIN, NOWHERE_CH, "/tam plan bizco unsubscribe confirm")
                                     for _ in range(3)))
    assert sum("unsubscribed" in r.text or "退订" in r.text for r in replies) >= 1
    async with ctx.db.transaction() as s:
        assert len(await PlanChanges(s).for_account("bizco")) == 1


async def test_the_group_and_tam_hear_about_a_plan_change(chat: Chat, ctx: AppContext) -> None:
    from sqlalchemy import select

    from storage.tables import JobRow

    await chat(ADMIN, NOWHERE_CH, "/tam plan acme downgrade business confirm")
    async with ctx.db.transaction() as s:
        payloads = [j.payload for j in (await s.scalars(
            select(JobRow).where(JobRow.idempotency_key.like("msg:plan:acme:%")))).all()]
    assert sorted(p.get("channel") or p.get("user") for p in payloads) == [ACME_CH, TAM]
    assert all("now Business (was Enterprise)" in p["text"] for p in payloads)
    plan = (await chat(CUSTOMER, ACME_CH, "/support plan")).text
    assert "Business plan" in plan


async def test_advisory_confirmed_twice_is_sent_once(chat: Chat) -> None:
    line = '/tam advisory virus high "Worm X" "Patch" accounts=acme confirm'
    first = await chat(TAM, NOWHERE_CH, line)
    second = await chat(TAM, NOWHERE_CH, line)
    assert "AD-1001 is on its way" in first.text
    assert "already sent as AD-1001" in second.text


async def test_staff_cannot_acknowledge_for_the_customer(chat: Chat) -> None:
    await chat(TAM, NOWHERE_CH, '/tam advisory virus high "Worm X" "Patch" accounts=acme confirm')
    assert "for the customer's team" in (await chat(TAM, ACME_CH,
                                                   "/support acknowledge AD-1001")).text
    assert "There is no advisory AD-1009" in (await chat(TAM, NOWHERE_CH,
                                                        "/tam advisory status AD-1009")).text


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


async def test_customer_home_follows_the_current_binding(chat: Chat, ctx: AppContext) -> None:
    from bot.services import home

    await chat(CUSTOMER, BIZ_CH, "/support plan")
    before = await home.build(ctx, "T1", CUSTOMER)
    assert [a.account.key for a in before.accounts] == ["bizco"]  # type: ignore[union-attr]
    await chat(ADMIN, NOWHERE_CH, "/tam account add other2 enterprise annual")
    await chat(ADMIN, BIZ_CH, "/tam link other2 force")
    after = await home.build(ctx, "T1", CUSTOMER)
    assert after.accounts == []  # type: ignore[union-attr]
