"""The worker: delivery failures delay a notice but never lose or double it, workers share
timers, it sleeps until the next due job, and late SLA timers send only what still holds
(both databases)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.services.base import AppContext
from bot.services.messenger import DeliveryError
from bot.worker import Worker
from storage import jobs
from storage.repos import Audit, Cases
from storage.tables import DigestItemRow
from testkit.chat import ACME_CH, CUSTOMER, TAM, Chat
from testkit.fakes import Clock, RecordingMessenger, drain, notice_refs, notices


@pytest.mark.parametrize("failure", [
    DeliveryError("chat.postMessage: rate limited", retry_after=3),
    DeliveryError("chat.postMessage: internal_error"),
])
async def test_slack_failure_delays_a_notice_but_never_loses_or_doubles_it(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock, failure: DeliveryError) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S1 down")
    await drain(worker)
    clock.advance(minutes=8, seconds=1)
    await drain(worker)  # the near-breach warning goes out first
    clock.advance(minutes=2)
    messenger.failures = [failure] * 3  # the card update, then both notices
    await drain(worker)  # breach fires; the card update and both notices fail once
    assert notices(messenger, "SLA breach") == []
    async with ctx.db.transaction() as s:
        assert await jobs.count(s, status=jobs.PENDING, kind="digest.sync") == 2
    clock.advance(seconds=3)
    await drain(worker)
    assert sorted(notices(messenger, "SLA breach")) == [("dm", TAM), ("post", "CDUTY")]
    clock.advance(minutes=10)
    await drain(worker)
    assert len(notices(messenger, "SLA breach")) == 2


async def test_permanent_failure_is_not_retried(chat: Chat, ctx: AppContext, worker: Worker,
                                                messenger: RecordingMessenger) -> None:
    messenger.failures = [DeliveryError("channel_not_found", permanent=True)]
    await chat(CUSTOMER, ACME_CH, "/support open S3 x")
    await drain(worker)
    async with ctx.db.transaction() as s:
        assert await jobs.count(s, status=jobs.DEAD) == 1


async def test_two_workers_share_timers_and_send_each_notice_once(
        chat: Chat, ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    for i in range(12):
        await chat(CUSTOMER, ACME_CH, f"/support open S1 outage {i}")
    w1, w2 = Worker(ctx, messenger, name="w1", batch=5), Worker(ctx, messenger, name="w2",
                                                                 batch=5)
    clock.advance(minutes=11)
    for _ in range(3):
        await asyncio.gather(w1.run_once(), w2.run_once())
        clock.advance(seconds=2)  # a notice whose card the other worker posted waits 1 s
    refs = {f"CS-{1001 + i}": 1 for i in range(12)}
    assert notice_refs(messenger) == {TAM: refs, "CDUTY": refs}  # digests, each case once
    # each case's new-case notice joined the TAM's and the duty channel's digest once; the
    # digests show each case's breach, its most urgent notice, in its place
    async with ctx.db.read() as s:
        kinds = Counter((await s.execute(select(DigestItemRow.kind))).scalars())
    assert kinds == Counter({"new": 24, "breach": 24})
    assert (w1.processed > 0 and w2.processed > 0) or ctx.db.is_sqlite


async def test_worker_sleeps_until_the_next_due_time(ctx: AppContext, chat: Chat,
                                                     worker: Worker, clock: Clock) -> None:
    opened = clock.now
    await chat(CUSTOMER, ACME_CH, "/support open S2 x")
    await drain(worker)
    clock.advance(seconds=3)  # the App Home refresh waits for its 2-second bucket to close
    await drain(worker)
    async with ctx.db.transaction() as s:
        due = await jobs.next_due(s)
    assert due == opened + timedelta(minutes=24)
    assert await worker._sleep_for() == pytest.approx(ctx.settings.worker_poll_seconds)


@pytest.mark.parametrize("down_for", [timedelta(minutes=30, seconds=3), timedelta(days=4)])
async def test_timers_fired_late_send_only_the_breach_notice(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock, down_for: timedelta) -> None:
    """The bot was down through the near-breach time and the deadline: both timers fire
    at once when it comes back; only the breach notice goes out, none claims time left."""
    await chat(CUSTOMER, ACME_CH, "/support open S2 checkout API returns 500")
    await drain(worker)
    clock.advance(seconds=int(down_for.total_seconds()))
    await drain(worker)
    await drain(worker)
    assert sorted(notices(messenger, "SLA breach: CS-1001")) == [("dm", TAM), ("post", "CDUTY")]
    assert notices(messenger, "Near breach") == []
    assert not [t for t in messenger.texts() if " left" in t]
    async with ctx.db.transaction() as s:
        case = await Cases(s).get(1)
        assert case is not None and case.breached and case.warned
        acts = [a.action for a in await Audit(s).for_case(1)]
    assert "case.near_breach" not in acts and "case.breach" in acts


async def test_a_late_warning_timer_alone_is_dropped(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    """The breach timer already fired; the warning's job ran only afterwards (a retry, say):
    it sends nothing."""
    await chat(CUSTOMER, ACME_CH, "/support open S2 x")
    await drain(worker)
    async with ctx.db.transaction() as s:  # hold the warning back past the deadline
        await jobs.cancel(s, ["sla:1:g1:warn"])
    clock.advance(minutes=31)
    await drain(worker)
    assert len(notices(messenger, "SLA breach: CS-1001")) == 2
    async with ctx.db.transaction() as s:
        await jobs.enqueue(s, "sla.warn", clock.now, {"case_id": 1, "generation": 1},
                           "sla:1:g1:warn-late", clock.now)
    clock.advance(days=4)
    await drain(worker)
    assert notices(messenger, "Near breach") == []
    assert not [t for t in messenger.texts() if " left" in t]


async def test_a_warning_still_queued_at_the_deadline_is_not_posted(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    """The warning fired in time but Slack could not take it before the deadline: it is
    dropped, and the breach notice follows."""
    await chat(CUSTOMER, ACME_CH, "/support open S2 x")
    await drain(worker)
    clock.advance(minutes=24, seconds=1)
    messenger.failures = [DeliveryError("chat.postMessage: internal_error")] * 2
    await drain(worker)  # the warning fires; both of its notices fail once
    assert notices(messenger, "Near breach") == []
    clock.advance(minutes=6)  # past the deadline before the retries
    await drain(worker)
    await drain(worker)
    assert notices(messenger, "Near breach") == []
    assert sorted(notices(messenger, "SLA breach: CS-1001")) == [("dm", TAM), ("post", "CDUTY")]
    async with ctx.db.transaction() as s:
        assert await jobs.count(s, status=jobs.DEAD) == 0
