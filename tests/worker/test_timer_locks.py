"""Timers firing together take their cases' locks before any effect, so a command that
acknowledges one of those cases meanwhile cannot deadlock with them (PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import text

from bot.services import home
from bot.services.base import AppContext
from bot.worker import Worker
from storage import jobs
from storage.repos import Cases
from testkit.chat import ACME_CH, CUSTOMER, Chat
from testkit.db import PG_URL
from testkit.fakes import Clock, RecordingMessenger

pytestmark = pytest.mark.skipif(not PG_URL, reason="row locks are PostgreSQL's (SQLite has "
                                                   "one writer); TEST_DATABASE_URL is not set")


class Recorder(Worker):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[int] = []

    def fired(self, batch: list[jobs.Job], started: datetime) -> None:
        self.batches.append(len(batch))


async def waiting_on_a_lock(ctx: AppContext) -> bool:
    async with ctx.db.engine.connect() as conn:
        n = await conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"))
    return bool(n)


async def test_a_timer_batch_and_an_acknowledgement_take_locks_in_one_order(
        chat: Chat, ctx: AppContext, clock: Clock, messenger: RecordingMessenger) -> None:
    if ctx.db.is_sqlite:
        pytest.skip(reason="row locks are PostgreSQL's; SQLite has one writer")
    worker = Recorder(ctx, messenger, name="w")
    await chat(CUSTOMER, ACME_CH, "/support open S1 core down")  # CS-1001: 10 min
    await chat(CUSTOMER, ACME_CH, "/support open S2 checkout slow")  # CS-1002: 30 min
    await worker.run_once()  # the cards; the timers stay pending
    async with ctx.db.read() as s:
        first, second = await Cases(s).get(1), await Cases(s).get(2)
    assert first is not None and second is not None
    # nine tenths of CS-1002's target: past its near-breach point, after CS-1001's deadline.
    # Due together, in this order: CS-1001's warning (late) and breach, which queues the
    # account's Home refresh, then CS-1002's warning, which needs CS-1002's row
    clock.now = second.due_at - (second.due_at - second.opened_at) / 10
    assert first.due_at < clock.now
    worker.batches.clear()

    holding, release = asyncio.Event(), asyncio.Event()

    async def acknowledgement() -> None:
        """What `/tam ack CS-1002` does, in its order: lock the case, then queue the
        account's Home refresh; held open in between while the timers start."""
        async with ctx.db.transaction() as s:
            await Cases(s).get(2, for_update=True)
            holding.set()
            await release.wait()
            await home.touch(s, "acme", clock.now)

    command = asyncio.create_task(acknowledgement())
    await holding.wait()
    timers = asyncio.create_task(worker.run_once())
    for _ in range(200):  # the batch is now waiting for case 2's lock
        if await waiting_on_a_lock(ctx):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the timer batch never waited for the held case")
    release.set()
    await asyncio.wait_for(command, timeout=30)  # no deadlock error on the command's side
    await asyncio.wait_for(timers, timeout=30)
    # fired together, not one by one after PostgreSQL broke a deadlock by failing the batch
    assert worker.batches == [3]
