"""Entitlements, perks and plan changes through the router and the worker (both databases)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.services.base import AppContext
from bot.worker import Worker
from storage.repos import Accounts, Audit, Cases, PlanChanges
from testkit.chat import (
    ACME_CH,
    ADMIN,
    BIZ_CH,
    CUSTOMER,
    ENGINEER,
    NOWHERE_CH,
    OTHER_CUSTOMER,
    TAM,
    Chat,
)
from testkit.fakes import Clock, RecordingMessenger


async def test_escort_request_approval_and_window_shortens_s2(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    reply = await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10 2")
    assert "Request <b>PR-1001</b>" in reply.text
    assert "(2026-12-10 → 2026-12-11, 2 days)" in reply.text
    assert "warning" not in reply.text  # 12 business days ahead
    await worker.run_once()
    dm = [s for s in messenger.sent if s.kind == "dm" and s.target == TAM][-1]
    assert "Perk request <b>PR-1001</b> from Acme Corp" in dm.text
    assert [b.command for b in dm.buttons] == ["/tam approve PR-1001", "/tam reject PR-1001"]
    assert dm.buttons[1].ask
    assert any("waiting for approval" in t for t in messenger.texts("post", ACME_CH))
    plan = (await chat(CUSTOMER, ACME_CH, "/support plan")).text
    assert "Escort days: 0 used, 2 pending, 1 left of 3" in plan

    assert "needs the tam role" in (await chat(ENGINEER, ACME_CH, "/tam approve PR-1001")).text
    assert "approved" in (await chat(TAM, ACME_CH, "/tam approve PR-1001")).text
    assert "already approved" in (await chat(TAM, ACME_CH, "/tam approve PR-1001")).text
    await worker.run_once()
    assert any("<mark:ok> <b>PR-1001</b> approved" in t
               for t in messenger.texts("post", ACME_CH))
    plan = (await chat(CUSTOMER, ACME_CH, "/support plan")).text
    assert "Escort days: 2 used, 0 pending, 1 left of 3" in plan

    clock.now = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, escort day 1
    reply = await chat(CUSTOMER, ACME_CH, "/support open S2 flash sale checkout failing")
    assert "< 10 min" in reply.text
    reply = await chat(CUSTOMER, ACME_CH, "/support open S3 slow reports")
    assert "< 3 h" in reply.text
    clock.now = datetime(2026, 12, 11, 16, 0, tzinfo=UTC)  # 00:00 on the 12th in Shanghai
    assert "< 30 min" in (await chat(CUSTOMER, ACME_CH, "/support open S2 after")).text
    async with ctx.db.transaction() as s:
        assert (await Cases(s).get(1)).escort  # type: ignore[union-attr]


async def test_short_notice_escort_warns_and_review_too_soon_is_refused(
        chat: Chat, ctx: AppContext) -> None:
    reply = await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-01")
    assert "PR-1001" in reply.text and "Less than 10 business days" in reply.text
    assert "2026-12-08" in reply.text  # the recommended earliest start
    reply = await chat(CUSTOMER, ACME_CH, "/support review availability 2026-11-26")
    assert "at least 3 business days ahead" in reply.text and "2026-11-27" in reply.text
    reply = await chat(CUSTOMER, ACME_CH, "/support review monitoring 2026-11-27")
    assert "PR-1002" in reply.text


@pytest.mark.parametrize(("line", "expected"), [
    ("/support escort 2026-02-30", "“2026-02-30” is not a date"),
    ("/support escort 2026-12-10 two", "“two” is not a number of days"),
    ("/support escort 2026-12-10 4", "at most 3 days"),
    ("/support escort 2026-11-20", "is not in the future"),
    ("/support escort 2026-12-31 2", "within this plan year"),
    ("/support escort", "takes 1 to 2 arguments"),
    ("/support review uptime 2026-12-10", "“uptime” is not a review"),
    ("/support cancel PR-9", "not a request id"),
    ("/support cancel PR-1009", "No such perk request"),
])
async def test_perk_request_bad_input(chat: Chat, ctx: AppContext, line: str,
                                      expected: str) -> None:
    assert expected in (await chat(CUSTOMER, ACME_CH, line)).text
    async with ctx.db.transaction() as s:
        assert await Audit(s).by_action("perk.request") == []


async def test_business_escort_is_one_day_and_reviews_are_not_offered(chat: Chat) -> None:
    text = (await chat(CUSTOMER, BIZ_CH, "/support escort 2026-12-10 2")).text
    assert "最多" in text or "1" in text  # zh account: at most 1 day per request
    text = (await chat(CUSTOMER, BIZ_CH, "/support review availability 2026-12-10")).text
    assert "企业级" in text  # not part of business; comes with enterprise


async def test_reject_needs_reason_releases_quota_and_tells_group(
        chat: Chat, worker: Worker, messenger: RecordingMessenger) -> None:
    await chat(CUSTOMER, ACME_CH, "/support review availability 2026-12-15")
    assert "reason the customer will read" in (await chat(TAM, ACME_CH,
                                                          "/tam reject PR-1001")).text
    reply = await chat(TAM, ACME_CH, "/tam reject PR-1001 the date falls in a change freeze")
    assert "rejected" in reply.text
    await worker.run_once()
    assert any("not approved" in t and "change freeze" in t
               for t in messenger.texts("post", ACME_CH))
    plan = (await chat(CUSTOMER, ACME_CH, "/support plan")).text
    assert "Availability check: 0 used, 0 pending, 1 left of 1" in plan
    listing = (await chat(CUSTOMER, ACME_CH, "/support requests")).text
    assert "<b>PR-1001</b>" in listing and "rejected — the date falls in a change freeze" in listing


async def test_cancel_releases_and_other_tenants_cannot_touch_requests(
        chat: Chat, ctx: AppContext) -> None:
    await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10 1")
    assert "没有该增值服务申请" in (await chat(OTHER_CUSTOMER, BIZ_CH,  # bizco reads Chinese
                                           "/support cancel PR-1001")).text
    # a TAM of another account may not decide; the denial is audited
    await chat(ADMIN, NOWHERE_CH, "/tam staff add <user:UTAM2> tam")
    await chat(ADMIN, NOWHERE_CH, "/tam account add zeta enterprise annual start=2026-01-01")
    await chat(ADMIN, NOWHERE_CH, "/tam account assign zeta <user:UTAM2>")
    assert "account you do not manage" in (await chat("UTAM2", ACME_CH,
                                                      "/tam approve PR-1001")).text
    async with ctx.db.transaction() as s:
        assert [a.actor for a in await Audit(s).by_action("denied:perk.decide")] == ["UTAM2"]
    assert "withdrawn" in (await chat(CUSTOMER, ACME_CH, "/support cancel PR-1001")).text
    assert "left of 3" in (await chat(CUSTOMER, ACME_CH, "/support plan")).text
    assert "3 left of 3" in (await chat(CUSTOMER, ACME_CH, "/support plan")).text


async def test_downgrade_refused_naming_the_perk_and_unsubscribe_refused_after_use(
        chat: Chat, ctx: AppContext) -> None:
    await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10 2")
    await chat(TAM, ACME_CH, "/tam approve PR-1001")
    reply = await chat(ADMIN, NOWHERE_CH, "/tam plan acme downgrade business")
    assert "Refused: downgrading to Business would leave Escort days overdrawn" in reply.text
    assert "2 used" in reply.text and "quota is 1" in reply.text
    reply = await chat(ADMIN, NOWHERE_CH, "/tam plan acme unsubscribe confirm")
    assert "Escort days has been used this plan year" in reply.text
    async with ctx.db.transaction() as s:
        assert (await Accounts(s).get("acme")).tier.value == "enterprise"  # type: ignore[union-attr]
        assert await PlanChanges(s).for_account("acme") == []


async def test_upgrade_quote_then_confirm_keeps_bought_perks(
        chat: Chat, ctx: AppContext, clock: Clock) -> None:
    assert "recorded as USD 200,000.00" in (await chat(
        TAM, NOWHERE_CH, "/tam account usage bizco 2026-11 200000")).text
    quote = await chat(ADMIN, NOWHERE_CH, "/tam plan bizco upgrade enterprise")
    # 2026-11-24: 38 of 365 days left; business 108,000 x 38/365 = 11,243.8 cents;
    # enterprise 16,200,000 x 38/365 = 1,686,575.3 cents
    assert "USD 112.44" in quote.text and "USD 16,865.75" in quote.text
    assert "Charge now: USD 16,753.31" in quote.text
    # November: 23 days business (1,162,000 x 23/30), 7 days enterprise (455,000 x 7/30)
    assert "USD 8,908.67" in quote.text and "USD 1,061.67" in quote.text
    assert quote.buttons and quote.buttons[0].command.endswith("upgrade enterprise confirm")
    async with ctx.db.transaction() as s:
        assert (await Accounts(s).get("bizco")).tier.value == "business"  # type: ignore[union-attr]
    done = await chat(ADMIN, NOWHERE_CH, quote.buttons[0].command)
    assert "upgraded" in done.text or "升级" in done.text
    async with ctx.db.transaction() as s:
        account = await Accounts(s).get("bizco")
        changes = await PlanChanges(s).for_account("bizco")
    assert account is not None and account.tier.value == "enterprise"
    assert [(c.kind, c.due_now) for c in changes] == [("upgrade", 1_675_331)]
    plan = (await chat(CUSTOMER, BIZ_CH, "/support plan")).text
    assert "1" in plan and "企业级" in plan  # the bought business quota (1 escort day) stays
    # new cases follow the new tier: enterprise S1 10 min (business too) — check S5 16 h
    assert "16" in (await chat(CUSTOMER, BIZ_CH, "/support open S5 question")).text


async def test_tier_change_limit(chat: Chat) -> None:
    await chat(ADMIN, NOWHERE_CH, "/tam plan bizco upgrade enterprise confirm")
    await chat(ADMIN, NOWHERE_CH, "/tam plan bizco downgrade business confirm")
    reply = await chat(ADMIN, NOWHERE_CH, "/tam plan bizco upgrade enterprise")
    assert "2" in reply.text and ("limit" in reply.text or "上限" in reply.text
                                  or "次" in reply.text)


async def test_open_cases_keep_their_targets_after_a_change(chat: Chat, ctx: AppContext,
                                                            clock: Clock) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S2 before the change")
    await chat(ADMIN, NOWHERE_CH, "/tam plan acme downgrade business confirm")
    async with ctx.db.transaction() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.due_at == clock.now + timedelta(minutes=30)


@pytest.mark.parametrize(("line", "expected"), [
    ("/tam plan acme sidegrade business", "Say what to change"),
    ("/tam plan acme upgrade gold", "“gold” is not a tier"),
    ("/tam plan acme upgrade enterprise", "already on the Enterprise tier"),
    ("/tam plan nope unsubscribe", "no account “nope”"),
    ("/tam plan acme downgrade business consumption=lots", "“lots” is not an amount"),
    ("/tam account usage acme 2026-13 5", "“2026-13” is not a month"),
    ("/tam account usage acme 2026-11 -5", "“-5” is not an amount"),
])
async def test_plan_change_bad_input(chat: Chat, line: str, expected: str) -> None:
    assert expected in (await chat(ADMIN, NOWHERE_CH, line)).text


async def test_unsubscribe_ends_intake(chat: Chat, ctx: AppContext) -> None:
    reply = await chat(ADMIN, NOWHERE_CH, "/tam plan acme unsubscribe")
    assert "Refund now: USD" in reply.text
    await chat(ADMIN, NOWHERE_CH, "/tam plan acme unsubscribe confirm")
    text = (await chat(CUSTOMER, ACME_CH, "/support open S2 x")).text
    assert "support plan ended on 2026-11-24" in text


async def test_scope_answers_from_the_table(chat: Chat) -> None:
    text = (await chat(CUSTOMER, ACME_CH, "/support scope Nginx")).text
    assert "<b>Nginx</b> (web servers)" in text and "community >= 1.8" in text
    assert "includes this" in text and "writing code" in text
    text = (await chat(CUSTOMER, ACME_CH, "/support scope redis")).text
    assert "“redis” is not in the third-party software support list" in text
    assert "MySQL" in text and "IIS" in text
    zh = (await chat(CUSTOMER, BIZ_CH, "/support scope mysql")).text
    assert "5.x 官方发行版" in zh
    assert "starts with the Developer tier" not in zh


async def test_renewal_starts_a_new_plan_year_with_fresh_quotas(chat: Chat,
                                                               clock: Clock) -> None:
    await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10 3")
    await chat(TAM, ACME_CH, "/tam approve PR-1001")
    assert "3 used, 0 pending, 0 left of 3" in (await chat(CUSTOMER, ACME_CH,
                                                          "/support plan")).text
    reply = await chat(ADMIN, NOWHERE_CH, "/tam account renew acme")
    assert "2027-01-01 → 2027-12-31" in reply.text
    plan = (await chat(CUSTOMER, ACME_CH, "/support plan")).text
    assert "(2027-01-01 → 2027-12-31)" in plan and "0 used, 0 pending, 3 left of 3" in plan
    assert "“weekly” is not a term" in (await chat(ADMIN, NOWHERE_CH,
                                                  "/tam account renew acme weekly")).text


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
    assert "would leave Escort days overdrawn (0 used and 2 pending this plan year" in reply.text
    reply = await chat(ADMIN, NOWHERE_CH, "/tam plan acme unsubscribe confirm")
    # a request still waiting for approval is pending, not "used"
    assert reply.text == ("Refused: a request for Escort days is pending this plan year, so the "
                          "current plan order cannot be unsubscribed mid-term. Withdraw it first "
                          "(<code>/support cancel</code>) or have it rejected.")
    assert "has been used" not in reply.text
    assert "PR-1002" in (await chat(CUSTOMER, BIZ_CH, "/support escort 2026-12-10 1")).text
    await chat(ADMIN, NOWHERE_CH, "/tam language zh")
    reply = await chat(ADMIN, NOWHERE_CH, "/tam plan bizco unsubscribe")
    assert reply.text.startswith("已拒绝：本计划年度有一项"
                                 "云上保障护航服务（基础版）天数申请正在等待审批")
    assert "已使用" not in reply.text


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
