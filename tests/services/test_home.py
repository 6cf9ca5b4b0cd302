"""App Home: neutral dashboards scoped by role and binding, refreshed on change."""

from __future__ import annotations

from bot.domain.model import Lang
from bot.services import home
from bot.services.base import AppContext
from bot.services.home import CustomerHome, StaffHome
from bot.worker import Worker
from testkit.chat import (
    ACME_CH,
    ADMIN,
    BIZ_CH,
    CUSTOMER,
    NOWHERE_CH,
    OTHER_CUSTOMER,
    TAM,
    Chat,
)
from testkit.fakes import Clock, RecordingMessenger


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


async def test_customer_home_follows_the_current_binding(chat: Chat, ctx: AppContext) -> None:
    from bot.services import home

    await chat(CUSTOMER, BIZ_CH, "/support plan")
    before = await home.build(ctx, "T1", CUSTOMER)
    assert [a.account.key for a in before.accounts] == ["bizco"]  # type: ignore[union-attr]
    await chat(ADMIN, NOWHERE_CH, "/tam account add other2 enterprise annual")
    await chat(ADMIN, BIZ_CH, "/tam link other2 force")
    after = await home.build(ctx, "T1", CUSTOMER)
    assert after.accounts == []  # type: ignore[union-attr]
