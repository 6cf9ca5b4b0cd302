"""What every job handler gets: one signature, `async def run(ctx: JobContext, job: Job)`.

A handler returns the job's result (stored with it) or raises: `NotReady` (try again in a
second), `Later` (a wait for pacing, not a failed try), `DeliveryError` (the platform said
no; a permanent one is not retried) or anything else (retried with backoff).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.charts import ChartRenderer
from bot.messages import Message
from bot.pacing import Later, Pacer
from bot.services.base import AppContext
from bot.services.messenger import DeliveryError, Messenger, Posted
from storage import jobs as job_rows
from storage.jobs import Job

__all__ = ["InFlight", "Job", "JobContext", "JobHandler", "Later", "LeaseLost", "NotReady"]

log = logging.getLogger(__name__)


class NotReady(Exception):
    """The job depends on something not there yet (e.g. the case card); try again soon."""


class LeaseLost(Exception):
    """The job was claimed again while this run was still going (its lease ran out): this
    run stops and leaves the job alone, the newer claim does the work."""


class InFlight:
    """What one worker's jobs may need to know of each other while they run: jobs in
    flight by tag (a notice waits for its case's card being posted) and named locks (two
    syncs of one card never interleave)."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def track(self, tag: str, task: asyncio.Task[None]) -> None:
        self._tasks[tag] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._tasks.get(tag) is done:
                del self._tasks[tag]

        task.add_done_callback(forget)

    async def settled(self, tag: str) -> None:
        """Wait until the job tagged `tag` that this worker is running (if any) is done."""
        task = self._tasks.get(tag)
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait({task})

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())


@dataclass(frozen=True)
class JobContext:
    """The app, the platform (raw, and as paced once-only delivery) and the clock.

    `started` is when the worker took the job up. An atomic job (an SLA timer) also gets
    `session`: the transaction that completes the job, so its effects commit with it.
    `charts` renders report charts (the worker's process pool; by default in-process).
    """

    app: AppContext
    messenger: Messenger
    started: datetime
    pacer: Pacer = field(default_factory=Pacer)
    inflight: InFlight = field(default_factory=InFlight)
    session: AsyncSession | None = None
    worker: str | None = None  # the claiming worker's name and its lease, for `keep_lease`
    lease: timedelta | None = None
    charts: ChartRenderer = field(default_factory=lambda: ChartRenderer(0))

    def clock(self) -> datetime:
        return self.app.clock()

    @property
    def tx(self) -> AsyncSession:
        """The transaction an atomic job runs in."""
        if self.session is None:
            raise RuntimeError("this job kind is not registered as atomic: no transaction")
        return self.session

    async def deliver(self, key: str, channel: str, message: Message, *, recover: bool,
                      thread_ts: str | None = None) -> Posted:
        """Post once, at the channel's pace. With `recover` (a retry, whose earlier try may
        have posted before a crash) look first for a message carrying the same key."""
        try:
            if recover:
                # looked for before the channel's slot is taken: a message found takes none,
                # and the post follows its slot at once
                found = await self.messenger.find(channel, key, thread_ts=thread_ts)
                if found is not None:
                    log.info("%s was already posted as %s; not posting again", key, found.ts)
                    return found
            await self.pacer.slot(channel)
            return await self.messenger.post(channel, message, thread_ts=thread_ts, key=key)
        except DeliveryError as exc:
            if exc.retry_after:  # the workspace limit is shared: every channel waits
                self.pacer.pause(exc.retry_after, channel if exc.per_channel else None)
            raise

    async def settled(self, tag: str) -> None:
        await self.inflight.settled(tag)

    async def keep_lease(self, job: Job) -> None:
        """Before an effect that cannot be looked for afterwards (an email), make sure this
        claim is still the job's latest and extend its lease; raise `LeaseLost` when the job
        was claimed again meanwhile (slow preparation outlived the lease), so that only one
        run has the effect."""
        if self.worker is None or self.lease is None:
            return
        async with self.app.db.transaction() as s:
            if not await job_rows.renew(s, job, self.worker, self.clock(), self.lease):
                raise LeaseLost(f"job {job.id} was claimed again while attempt {job.attempts} "
                                "was preparing")

    def lock(self, name: str) -> asyncio.Lock:
        return self.inflight.lock(name)


JobHandler = Callable[[JobContext, Job], Awaitable[dict[str, Any] | None]]
