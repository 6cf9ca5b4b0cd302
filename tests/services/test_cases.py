"""Cases and SLA clocks through the router and the worker, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.domain.model import CaseStatus
from bot.messages import time_token
from bot.services.base import AppContext
from bot.worker import Worker
from storage import jobs
from storage.repos import Audit, Bindings, Cases
from storage.tables import PerkRequestRow
from testkit.chat import ACME_CH, BIZ_CH, CUSTOMER, ENGINEER, OTHER_CUSTOMER, TAM, Chat
from testkit.fakes import Clock, RecordingMessenger, drain, notices


async def test_open_posts_card_and_tells_staff_then_warns_and_breaches_once(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    opened_at = clock.now
    reply = await chat(CUSTOMER, ACME_CH, "/support open S2 checkout API returns 500")
    assert "Case <b>CS-1001</b> opened as S2" in reply.text and "< 30 min" in reply.text
    await drain(worker)
    cards = [s for s in messenger.sent if s.card is not None]
    assert len(cards) == 1 and cards[0].target == ACME_CH
    assert cards[0].message.title == "CS-1001 · S2"
    assert cards[0].field("Due") == time_token(opened_at + timedelta(minutes=30))
    assert sorted(notices(messenger, "New case CS-1001")) == [("dm", TAM), ("post", "CDUTY")]
    # nothing about staff matters reaches the customer group
    assert not [s for s in messenger.sent if s.target == ACME_CH and "New case" in s.text]

    clock.advance(minutes=23)  # before 80 % of 30 min
    await drain(worker)
    assert notices(messenger, "Near breach") == []
    clock.advance(minutes=1, seconds=1)  # 24m01s: past the warning
    await drain(worker)
    await drain(worker)
    assert sorted(notices(messenger, "Near breach: CS-1001")) == [("dm", TAM), ("post", "CDUTY")]

    clock.advance(minutes=6)  # 30m01s
    await drain(worker)
    await drain(worker)
    breach = notices(messenger, "SLA breach: CS-1001")
    assert sorted(breach) == [("dm", TAM), ("post", "CDUTY")]
    assert any("Case card: https://example.test/" in t for t in messenger.texts("dm", TAM))
    updates = [s for s in messenger.sent if s.kind == "update"]
    assert updates and updates[-1].card is not None
    assert "SLA breached" in (updates[-1].field("Status") or "")
    clock.advance(hours=2)
    await drain(worker)
    assert len(notices(messenger, "SLA breach")) == 2 and len(notices(messenger, "Near")) == 2


async def test_first_response_stops_the_clock(chat: Chat, ctx: AppContext, worker: Worker,
                                              messenger: RecordingMessenger,
                                              clock: Clock) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S1 all logins fail")
    await drain(worker)
    clock.advance(minutes=2)
    assert "recorded (within target)" in (await chat(TAM, ACME_CH, "/tam ack CS-1001")).text
    assert "already had" in (await chat(ENGINEER, ACME_CH, "/tam ack cs-1001")).text
    clock.advance(hours=1)
    await drain(worker)
    assert notices(messenger, "Near breach") == [] and notices(messenger, "SLA breach") == []
    async with ctx.db.transaction() as s:
        case = await Cases(s).get(1)
        assert case is not None and case.status is CaseStatus.ACKNOWLEDGED
        assert case.first_response_by == TAM
        assert await jobs.count(s, status=jobs.CANCELLED) == 2
        acts = [a.action for a in await Audit(s).for_case(1)]
    assert acts == ["case.open", "case.first_response"]


async def test_customer_reply_does_not_count_as_first_response(
        chat: Chat, ctx: AppContext) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S3 slow disk")
    reply = await chat(CUSTOMER, ACME_CH, "/tam ack CS-1001")
    assert "for support staff" in reply.text
    async with ctx.db.transaction() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.first_response_at is None


async def test_regrade_recomputes_from_opening_and_supersedes_timers(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    opened = clock.now
    await chat(CUSTOMER, ACME_CH, "/support open S4 report export is slow")
    await drain(worker)
    clock.advance(minutes=20)
    reply = await chat(ENGINEER, ACME_CH, "/tam severity CS-1001 prod-down")
    assert "re-graded to S2" in reply.text and "< 30 min" in reply.text
    async with ctx.db.transaction() as s:
        case = await Cases(s).get(1)
        audit = [a for a in await Audit(s).for_case(1) if a.action == "case.regrade"]
    assert case is not None and case.due_at == opened + timedelta(minutes=30)
    assert case.sla_generation == 2
    assert audit[0].before["severity"] == "S4" and audit[0].after["severity"] == "S2"
    # the old S4 timers (8 h) are cancelled; the S2 breach fires at opened + 30 min
    clock.advance(minutes=10, seconds=1)
    await drain(worker)
    await drain(worker)
    assert sorted(notices(messenger, "SLA breach: CS-1001")) == [("dm", TAM), ("post", "CDUTY")]
    assert any("re-graded CS-1001 from S4 to S2" in t for t in messenger.texts("post", ACME_CH))
    clock.advance(hours=9)
    await drain(worker)
    assert len(notices(messenger, "SLA breach")) == 2


async def test_regrade_to_same_severity_is_refused(chat: Chat) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S3 x")
    assert "already S3" in (await chat(TAM, ACME_CH, "/tam severity CS-1001 S3")).text


async def test_escort_window_gives_s2_a_ten_minute_target(
        chat: Chat, ctx: AppContext, clock: Clock) -> None:
    async with ctx.db.transaction() as s:
        s.add(PerkRequestRow(account_key="bizco", perk="escort", start_date=date(2026, 11, 24),
                             amount=1, plan_year_start=date(2026, 1, 1), status="approved",
                             channel_id=BIZ_CH, requested_by=CUSTOMER, requested_at=clock.now))
    reply = await chat(CUSTOMER, BIZ_CH, "/support open S2 大促期间下单失败")
    assert "10" in reply.text
    async with ctx.db.transaction() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.escort and case.due_at == clock.now + timedelta(minutes=10)
    reply = await chat(CUSTOMER, BIZ_CH, "/support open S3 报表慢")
    async with ctx.db.transaction() as s:
        case = await Cases(s).get(2)
    assert case is not None and not case.escort and case.target_label == "3h"


async def test_developer_s1_is_filed_as_s2_and_customer_told(
        chat: Chat, ctx: AppContext, clock: Clock) -> None:
    # a developer account can only reach a group through a later downgrade; bind directly
    async with ctx.db.transaction() as s:
        await Bindings(s).bind("T1", "CDEV", "devco", "test", clock.now)
    reply = await chat(CUSTOMER, "CDEV", "/support open S1 everything down")
    assert "does not include IM group support" in reply.text
    async with ctx.db.transaction() as s:
        assert await Cases(s).count() == 0


async def test_region_outside_service_area_opens_with_notice(
        chat: Chat, ctx: AppContext) -> None:
    from bot.services import cases
    from bot.services.base import resolve_actor

    actor = await resolve_actor(ctx, "T1", CUSTOMER)
    opened = await cases.open_case(ctx, actor, ACME_CH, __import__(
        "bot.domain.model", fromlist=["Severity"]).Severity.S3, "latency", region="eu-paris")
    assert ("case.region_excluded", {"region": "eu-paris"}) in opened.notices


async def test_unbound_channel_gets_reason_and_alternatives(chat: Chat, ctx: AppContext) -> None:
    reply = await chat(CUSTOMER, "CRANDOM", "/support open S2 help")
    assert "not a support group" in reply.text and "hotline" in reply.text
    async with ctx.db.transaction() as s:
        assert await Cases(s).count() == 0


async def test_customer_of_another_account_cannot_see_or_close_a_case(
        chat: Chat, ctx: AppContext) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S2 secret acme outage")
    for line in ("/support case CS-1001", "/support close CS-1001"):
        reply = await chat(OTHER_CUSTOMER, BIZ_CH, line)
        assert "secret" not in reply.text
        assert reply.text in ("No such case in this group.", "此群中没有该案例。") or \
            "CS-1001" not in reply.text
    async with ctx.db.transaction() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.status is CaseStatus.OPEN
    assert "secret acme outage" in (await chat(CUSTOMER, ACME_CH, "/support case CS-1001")).text


async def test_cases_and_sla_views(chat: Chat, clock: Clock) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S2 api down")
    await chat(CUSTOMER, ACME_CH, "/support open S5 how to tune nginx")
    clock.advance(minutes=40)
    listing = (await chat(CUSTOMER, ACME_CH, "/support cases")).text
    assert "Open cases of Acme Corp (2)" in listing
    assert "<b>CS-1001</b> [S2] api down" in listing and "overdue by 10m" in listing
    assert "<b>CS-1002</b> [S5]" in listing and "15h 20m left" in listing
    sla = (await chat(CUSTOMER, ACME_CH, "/support sla")).text
    assert "CS-1001" in sla and "<t:" in sla
    breaches = (await chat(TAM, ACME_CH, "/tam breaches")).text
    assert "acme:" in breaches and "CS-1001" in breaches and "CS-1002" not in breaches


async def test_customer_closes_own_case_and_staff_resolves(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S3 one")
    await chat(CUSTOMER, ACME_CH, "/support open S3 two")
    await drain(worker)
    assert "CS-1001 closed" in (await chat(CUSTOMER, ACME_CH, "/support close CS-1001")).text
    assert "CS-1002 resolved" in (await chat(TAM, ACME_CH, "/tam resolve CS-1002")).text
    assert "already" in (await chat(TAM, ACME_CH, "/tam resolve CS-1002")).text
    clock.advance(hours=4)
    await drain(worker)
    await drain(worker)
    assert notices(messenger, "SLA breach") == []
    assert any("CS-1001 was closed by" in t for t in messenger.texts("post", ACME_CH))


def test_clock_starts_on_a_working_tuesday() -> None:
    assert Clock().now == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


async def test_breach_stays_marked_on_the_card_after_a_late_answer(
        chat: Chat, worker: Worker, messenger: RecordingMessenger, clock: Clock) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S1 down")
    await drain(worker)
    clock.advance(minutes=11)
    await drain(worker)
    await chat(TAM, ACME_CH, "/tam ack CS-1001")
    await drain(worker)
    last = [s for s in messenger.sent if s.card is not None][-1]
    assert last.card is not None and last.field("First response") is not None
    assert "SLA breached" in last.text and "in progress" in last.text


async def test_breaches_view_is_scoped_to_the_tams_accounts(
        chat: Chat, clock: Clock) -> None:
    from testkit.chat import ADMIN, NOWHERE_CH

    await chat(CUSTOMER, ACME_CH, "/support open S1 acme down")
    await chat(CUSTOMER, BIZ_CH, "/support open S1 biz down")
    await chat(ADMIN, NOWHERE_CH, "/tam staff add <user:UTAM2> tam")
    clock.advance(minutes=11)
    mine = (await chat(TAM, ACME_CH, "/tam breaches")).text
    assert "CS-1001" in mine and "CS-1002" not in mine
    everything = (await chat(ADMIN, ACME_CH, "/tam breaches")).text
    assert "CS-1001" in everything and "CS-1002" in everything
    assert "No breached" in (await chat("UTAM2", ACME_CH, "/tam breaches")).text


async def test_duplicate_thread_reply_event_is_processed_once(
        chat: Chat, ctx: AppContext) -> None:
    from bot.services import cases
    from bot.services.base import resolve_actor

    await chat(CUSTOMER, ACME_CH, "/support open S3 x")
    actor = await resolve_actor(ctx, "T1", TAM)
    assert await cases.first_response(ctx, actor, 1, via="thread", event_id="Ev9")
    assert await cases.first_response(ctx, actor, 1, via="thread", event_id="Ev9") is None
    async with ctx.db.transaction() as s:
        acts = [a.action for a in await Audit(s).for_case(1)]
    assert acts.count("case.first_response") == 1
