"""Housekeeping jobs: keep the inbox of processed event ids and old notice digests from
growing without bound."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.services.base import AppContext
from bot.services.job import JobContext
from storage import jobs
from storage.repos import Digests, Inbox

PRUNE = "maintenance.prune"
KEEP = timedelta(days=7)  # Slack retries within minutes; replays are refused after 5 min


async def ensure(app: AppContext) -> None:
    now = app.clock()
    async with app.db.transaction() as s:
        await jobs.enqueue(s, PRUNE, now + timedelta(hours=1), {},
                           f"prune:{now:%Y-%m-%d}", now)


async def run_prune(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    now = ctx.clock()
    async with ctx.app.db.transaction() as s:
        deleted = await Inbox(s).prune(now - KEEP)
        digests = await Digests(s).prune(now - KEEP)
        tomorrow = now + timedelta(days=1)
        await jobs.enqueue(s, PRUNE, tomorrow, {}, f"prune:{tomorrow:%Y-%m-%d}", now)
    return {"deleted": deleted, "digests": digests}
