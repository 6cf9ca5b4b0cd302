"""App Home: neutral dashboards, pure Block Kit builders, publish on open and on change."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from bot.adapters.slack.app import make_client
from bot.adapters.slack.messenger import SlackMessenger
from bot.adapters.slack.views import MAX_BLOCKS, home_view
from bot.domain.model import Account, Case, CaseStatus, Lang, Severity, Term, Tier
from bot.domain.sla import ClockState
from bot.services import home
from bot.services.base import AppContext
from bot.services.home import CaseLine, CustomerAccount, CustomerHome, PendingRequest, StaffHome
from bot.worker import Worker
from handlers.core import Router
from testkit.chat import ACME_CH, ADMIN, BIZ_CH, CUSTOMER, OTHER_CUSTOMER, TAM, Chat, seed
from testkit.fake_slack import FakeSlack
from testkit.fakes import Clock, RecordingMessenger
from testkit.slack_harness import SECRET, TOKEN, BotServer

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


async def test_dashboards_are_scoped(chat: Chat, ctx: AppContext, clock: Clock) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S1 acme down")
    await chat(OTHER_CUSTOMER, BIZ_CH, "/support open S3 biz slow")
    await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-10 1")
    clock.advance(minutes=11)
    tam = await home.build(ctx, "T1", TAM)
    assert isinstance(tam, StaffHome)
    assert [a.key for a in tam.accounts] == ["acme"]
    assert [c.case.ref for c in tam.breaches] == ["CS-1001"]
    assert [r.ref for r in tam.pending] == ["PR-1001"]
    admin = await home.build(ctx, "T1", ADMIN)
    assert isinstance(admin, StaffHome) and {c.case.ref for c in admin.cases} == {
        "CS-1001", "CS-1002"}
    customer = await home.build(ctx, "T1", CUSTOMER)
    assert isinstance(customer, CustomerHome)
    assert [a.account.key for a in customer.accounts] == ["acme"]
    assert [c.case.ref for c in customer.accounts[0].cases] == ["CS-1001"]
    other = await home.build(ctx, "T1", OTHER_CUSTOMER)
    assert isinstance(other, CustomerHome)
    assert [c.case.ref for a in other.accounts for c in a.cases] == ["CS-1002"]
    assert other.lang is Lang.ZH


async def test_home_is_refreshed_when_what_it_shows_changes(
        chat: Chat, ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    await home.opened(ctx, "T1", TAM)
    await home.opened(ctx, "T1", OTHER_CUSTOMER)
    await chat(CUSTOMER, ACME_CH, "/support open S2 api down")
    worker = Worker(ctx, messenger, name="w")
    clock.advance(seconds=2)  # refreshes run when their 2-second bucket closes
    await worker.run_once()
    assert [u for u, _ in messenger.homes] == [TAM]  # the bizco customer does not see acme
    clock.advance(seconds=3)
    await chat(TAM, ACME_CH, "/tam ack CS-1001")
    clock.advance(seconds=2)
    await worker.run_once()
    latest = messenger.homes[-1][1]
    waiting = [sec for sec in latest.sections
               if sec.title == "Waiting for a first response, most urgent first"]
    assert [sec.text for sec in waiting] == ["nothing here"]  # the acked case left the list


async def test_app_home_opened_publishes_the_view(ctx: AppContext, router: Router,
                                                   fake: FakeSlack, clock: Clock) -> None:
    settings = replace(ctx.settings, slack_api_url=fake.api_url, slack_bot_token=TOKEN,
                       slack_signing_secret=SECRET)
    sctx = replace(ctx, settings=settings)
    await seed(Chat(sctx, router))
    await Chat(sctx, router)(CUSTOMER, ACME_CH, "/support open S2 api down")
    bot = BotServer(sctx, router, fake)
    await bot.start()
    try:
        await bot.event({"type": "app_home_opened", "user": TAM, "tab": "home",
                         "channel": "DTAM"}, "EvHome")
        published = await fake.wait_for(lambda: fake.of("views.publish"))
        assert published[0]["user_id"] == TAM
        assert "CS-1001" in json.dumps(published[0]["view"])
        # and the worker's messenger publishes refreshes through the same API
        worker = Worker(sctx, SlackMessenger(make_client(settings, retries=False)), name="h")
        await Chat(sctx, router)(CUSTOMER, ACME_CH, "/support open S3 second")
        clock.advance(seconds=2)
        await worker.run_once()
        await fake.wait_for(lambda: len(fake.of("views.publish")) >= 2)
        assert "CS-1002" in json.dumps(fake.of("views.publish")[-1]["view"])
    finally:
        await bot.close()

