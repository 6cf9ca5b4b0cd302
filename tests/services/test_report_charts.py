"""Report charts rendered by the worker's process pool: the same chart as in-process, a chart
whose process dies leaves the report posted once without it (logged, staff told, never
retried into a second post), and the worker shuts its chart processes down when it stops."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.charts import ChartRenderer
from bot.services.base import AppContext
from bot.worker import Worker
from storage import jobs
from storage.tables import CaseRow
from testkit.charts import always_crash
from testkit.chat import ACME_CH, NOWHERE_CH, TAM, Chat
from testkit.fakes import Clock, RecordingMessenger

M = timedelta(minutes=1)
OCT = datetime(2026, 10, 5, 2, tzinfo=UTC)


@pytest.fixture
async def chat(chat: Chat, ctx: AppContext) -> Chat:
    """The seeded world with three of acme's October cases."""
    async with ctx.db.transaction() as s:
        s.add_all([CaseRow(id=n, ref=f"CS-{1000 + n}", account_key="acme", team_id="T1",
                           channel_id="C", opener_user_id="U", severity=sev,
                           requested_severity=sev, summary=f"case {n}", description="",
                           region=None, software=None, status="acknowledged",
                           opened_at=OCT + n * M, due_at=OCT + (n + 10) * M, warn_at=OCT,
                           target_label="x", sla_generation=1, escort=False,
                           first_response_at=OCT + (n + first) * M, first_response_by="UTAM",
                           resolved_at=None, warned=False, breached=False, version=1)
                   for n, sev, first in ((1, "S1", 5), (2, "S1", 20), (3, "S2", 3))])
    return chat


def pooled(ctx: AppContext, workers: int) -> AppContext:
    return replace(ctx, settings=replace(ctx.settings, chart_workers=workers))


def reports_posted(messenger: RecordingMessenger) -> list[str]:
    return [s.text for s in messenger.sent
            if s.target == ACME_CH and "Monthly service report" in s.text]


async def test_the_pool_uploads_the_chart_the_bot_process_would(
        chat: Chat, ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    pool_worker = Worker(pooled(ctx, 2), messenger, name="pool")
    try:
        assert "being prepared" in (await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")).text
        await pool_worker.run_once()
        assert pool_worker.charts.started  # it rendered in its processes
    finally:
        await pool_worker.close()
    clock.advance(seconds=1)  # a second request for the same month
    await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
    await Worker(pooled(ctx, 0), messenger, name="inproc").run_once()
    assert len(reports_posted(messenger)) == 2
    (_, name, by_pool, _), (_, _, in_process, _) = messenger.uploads
    assert name == "service-report-acme-2026-10.png"
    assert by_pool == in_process and by_pool.startswith(b"\x89PNG\r\n\x1a\n")


async def test_a_chart_whose_process_dies_leaves_the_report_posted_once(
        chat: Chat, ctx: AppContext, messenger: RecordingMessenger,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    worker = Worker(ctx, messenger, name="w")
    worker.charts = ChartRenderer(1, render=always_crash)
    try:
        await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
        await worker.run_once()
        await worker.run_once()  # nothing is left to retry
    finally:
        await worker.close()
    assert len(reports_posted(messenger)) == 1 and messenger.uploads == []
    (notice,) = [s.text for s in messenger.sent if s.target == "CDUTY"]
    assert "The 2026-10 report of acme was posted without its chart" in notice
    assert "died twice" in notice
    lines = [r for r in caplog.records if "could not be rendered" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING and lines[0].exc_info is None
    async with ctx.db.transaction() as s:
        assert await jobs.count(s, status=jobs.DONE, kind="report.post") == 1
        assert await jobs.count(s, status=jobs.PENDING, kind="report.post") == 0
    assert multiprocessing.active_children() == []


async def test_the_worker_stops_its_chart_processes_when_it_stops(
        chat: Chat, ctx: AppContext, messenger: RecordingMessenger) -> None:
    worker = Worker(pooled(ctx, 1), messenger, name="w", poll=0.05)
    task = asyncio.create_task(worker.run())
    try:
        await chat(TAM, NOWHERE_CH, "/tam report acme 2026-10")
        ctx.db.jobs_changed.set()
        for _ in range(1200):  # at most a minute, on a loaded machine
            if messenger.uploads:
                break
            await asyncio.sleep(0.05)
        assert messenger.uploads and worker.charts.started
        assert multiprocessing.active_children() != []
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=30)
    assert not worker.charts.started
    assert multiprocessing.active_children() == []
