"""The timer loop and outbox relay: sleeps until the next due job, claims it with a lease, runs
the handler its kind is registered with (`bot.jobs`), and retries or gives up by one policy.

Several workers (one per process, across replicas) share the `jobs` table safely: PostgreSQL
hands each due row to one claimer (`FOR UPDATE SKIP LOCKED`), SQLite serializes claimers
with `BEGIN IMMEDIATE`. A crash leaves the lease to expire and another worker retries. Effects
stay single: atomic jobs (SLA timers) commit their effects with the job's completion; a
message carries its job's idempotency key in the platform's metadata, and a retried job
first looks for the message it may already have posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot import metrics
from bot.charts import ChartRenderer
from bot.jobs import JobKind, Registry, standard
from bot.pacing import Later, Pacer
from bot.services import failures
from bot.services.base import AppContext
from bot.services.job import InFlight, JobContext, LeaseLost, NotReady
from bot.services.messenger import DeliveryError, Messenger
from storage import jobs
from storage.db import BACKGROUND, JOBS_CHANNEL

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
PACED_BATCHES = 4  # jobs in flight, asleep for their channel's pace included, in batches


class Worker:
    def __init__(self, app: AppContext, messenger: Messenger, *, registry: Registry | None = None,
                 lease: float | None = None, batch: int = 50, poll: float | None = None,
                 name: str | None = None) -> None:
        self.app = app
        self.messenger = messenger
        self.registry = registry if registry is not None else standard()
        self.lease = timedelta(seconds=lease or app.settings.worker_lease_seconds)
        self.batch = batch
        self.poll = poll if poll is not None else app.settings.worker_poll_seconds
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stop = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._running = InFlight()  # what this worker's jobs know of each other
        # a wait longer than a third of the lease puts the job back instead, so no lease
        # runs out while a message waits its turn; a stop ends any wait
        self.pacer = Pacer(app.settings.channel_interval_seconds, app.settings.channel_burst,
                           app.settings.workspace_rate,
                           max_wait=self.lease.total_seconds() / 3, stop=self._stop,
                           successor=True)
        # report charts render in processes of their own, started with the first chart
        self.charts = ChartRenderer(app.settings.chart_workers)
        self.processed = 0

    def stop(self) -> None:
        self._stop.set()
        self.app.db.jobs_changed.set()

    async def run(self) -> None:
        """Run until `stop()`: claim what is due, run each job as its own task (a slow
        platform call never holds up a timer), sleep until the next due time, a wake-up or
        a finish."""
        listener = None
        # this task's and its jobs' transactions let commands go first (SQLite's one writer)
        BACKGROUND.set(True)
        try:
            for ensure in self.registry.startup:
                await ensure(self.app)
        except Exception:  # the database may be starting: the loop below retries its work
            log.warning("could not queue the recurring jobs yet", exc_info=True)
        if not self.app.db.is_sqlite:
            listener = asyncio.create_task(self._listen_pg())
        try:
            while not self._stop.is_set():
                # cleared before looking, so a commit from now on wakes the wait below
                self.app.db.jobs_changed.clear()
                try:
                    free = self._free()
                    if free > 0:
                        self._start(await self._claim(free))
                    delay = await self._sleep_for() if free > 0 else self.poll
                except Exception:
                    # the database went away (restart, lock): keep the loop alive and retry
                    log.exception("worker cycle failed; retrying")
                    metrics.WORKER_ERRORS.inc()
                    delay = min(self.poll, 1.0)
                if self._stop.is_set():
                    break
                waker = asyncio.ensure_future(self.app.db.jobs_changed.wait())
                await asyncio.wait({waker, *self._inflight}, timeout=delay,
                                   return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
        finally:
            if self._inflight:
                # shorter than the caller's 10 s: let this cleanup finish before it gives up
                await asyncio.wait(self._inflight, timeout=8)
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            await self.close()

    async def close(self) -> None:
        """Shut down what the worker started (the chart processes). `run()` does this when
        it stops; a caller of `run_once()` calls it when done."""
        await self.charts.aclose()

    def _free(self) -> int:
        """How many jobs to claim now: the batch less the jobs running, not counting those
        only asleep until their channel's slot (reserved, within a third of the lease): a
        burst of notices to a few paced channels must not keep every other channel's
        messages (new cases' cards) waiting. Never more than `PACED_BATCHES` batches in
        flight in all."""
        running = len(self._inflight)
        return min(self.batch - (running - self.pacer.waiting),
                   PACED_BATCHES * self.batch - running)

    async def run_once(self) -> int:
        """Claim and run every job due now, waiting for each; return how many ran."""
        total = 0
        while True:
            claimed = await self._claim(self.batch)
            if not claimed:
                return total
            self._start(claimed)
            await asyncio.gather(*self._inflight)
            total += len(claimed)

    async def _claim(self, limit: int) -> list[jobs.Job]:
        async with self.app.db.transaction() as s:
            return await jobs.claim(s, self.app.clock(), self.name, self.lease, limit)

    def _kind(self, job: jobs.Job) -> JobKind | None:
        return self.registry.get(job.kind)

    def _spawn(self, run: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(run)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    def _start(self, claimed: list[jobs.Job]) -> None:
        atomic = [j for j in claimed if (k := self._kind(j)) is not None and k.atomic]
        if len(atomic) > 1:
            # due timers fire together in one transaction: one commit instead of many
            self._spawn(self._run_atomic_batch(atomic))
            claimed = [j for j in claimed if j not in atomic]
        # kinds that run first (cards) before the rest: a thread reply or card link in the
        # same batch waits for its card
        for job in sorted(claimed, key=lambda j: not ((k := self._kind(j)) and k.first)):
            task = self._spawn(self._run(job))
            kind = self._kind(job)
            if kind is not None and kind.tag is not None:
                self._running.track(kind.tag(job), task)

    async def _sleep_for(self) -> float:
        # a read: on SQLite it neither takes the write lock nor queues behind commands
        async with self.app.db.read() as s:
            due = await jobs.next_due(s)
        if due is None:
            return self.poll
        wait = (due - self.app.clock()).total_seconds()
        return max(0.0, min(wait, self.poll))

    def _context(self, started: datetime) -> JobContext:
        return JobContext(self.app, self.messenger, started, self.pacer, self._running,
                          worker=self.name, lease=self.lease, charts=self.charts)

    async def _run(self, job: jobs.Job) -> None:
        started = self.app.clock()
        kind = self._kind(job)
        if kind is not None and kind.atomic:
            await self._run_atomic(kind, job, started)
            return
        try:
            if kind is None:
                raise DeliveryError(f"no handler for job kind {job.kind}", permanent=True)
            result = await kind.run(self._context(started), job)
        except LeaseLost as exc:
            log.warning("%s; this run stops and leaves it to the newer claim", exc)
            return
        except NotReady as exc:
            await self._retry(job, started + timedelta(seconds=1), str(exc))
            return
        except Later as exc:
            await self._retry(job, started + timedelta(seconds=exc.delay), str(exc),
                              counted=False)
            return
        except DeliveryError as exc:
            metrics.DELIVERY_FAILURES.labels(kind=job.kind,
                                             permanent=str(exc.permanent).lower()).inc()
            if exc.permanent:
                # one line; a missing scope's reason names the scope the platform needs
                log.warning("job %s (%s) failed permanently: %s", job.id, job.kind, exc.reason)
                await self._retry(job, started, exc.reason, dead=True, needed=exc.needed)
                return
            backoff = max(exc.retry_after or 0.0, self._backoff(job.attempts))
            log.info("job %s (%s) will retry in %.1fs: %s", job.id, job.kind, backoff,
                     exc.reason)
            await self._retry(job, started + timedelta(seconds=backoff), exc.reason)
            return
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            await self._retry(job, started + timedelta(seconds=self._backoff(job.attempts)),
                              f"{type(exc).__name__}: {exc}")
            return
        async with self.app.db.transaction() as s:
            await jobs.finish(s, job.id, self.name, self.app.clock(), result)
        self.processed += 1
        metrics.JOBS_DONE.labels(kind=job.kind).inc()

    async def _run_atomic_batch(self, batch: list[jobs.Job]) -> None:
        """Run several atomic jobs in one transaction; on any trouble run them one by one."""
        started = self.app.clock()
        try:
            async with self.app.db.transaction() as s:
                ctx = replace(self._context(started), session=s)
                lockers: dict[int, tuple[Any, list[jobs.Job]]] = {}
                for job in batch:
                    kind = self._kind(job)
                    if kind is not None and kind.lock is not None:
                        lockers.setdefault(id(kind.lock), (kind.lock, []))[1].append(job)
                for lock, locked in lockers.values():
                    await lock(s, locked)
                results = {}
                for job in batch:
                    kind = self._kind(job)
                    assert kind is not None
                    results[job.id] = await kind.run(ctx, job) or {}
                if not await jobs.finish_many(s, [j.id for j in batch], self.name,
                                              self.app.clock(), results):
                    raise LeaseLost(f"one of jobs {[j.id for j in batch]}")
        except Exception:
            log.info("firing %d timers together failed; firing them one by one", len(batch),
                     exc_info=True)
            for job in batch:
                kind = self._kind(job)
                assert kind is not None
                await self._run_atomic(kind, job, started)
            return
        self.processed += len(batch)
        for job in batch:
            metrics.JOBS_DONE.labels(kind=job.kind).inc()
            metrics.TIMER_LAG.observe(max(0.0, (started - job.due_at).total_seconds()))
        self.fired(batch, started)

    def fired(self, batch: list[jobs.Job], started: datetime) -> None:
        """Hook for measurements (benchmarks): these timers fired at `started`."""

    async def _run_atomic(self, kind: JobKind, job: jobs.Job, started: datetime) -> None:
        """An atomic job (an SLA timer): its effects (flags, notices in the outbox, audit)
        and the job's completion commit together, so a crash either did all of it or none."""
        try:
            async with self.app.db.transaction() as s:
                result = await kind.run(replace(self._context(started), session=s), job)
                if not await jobs.finish(s, job.id, self.name, self.app.clock(), result):
                    raise LeaseLost(f"job {job.id}")
        except LeaseLost:
            log.warning("lease on job %s lost before it finished; another worker has it",
                        job.id)
            return
        except Exception as exc:
            log.exception("timer job %s failed", job.id)
            await self._retry(job, started + timedelta(seconds=self._backoff(job.attempts)),
                              f"{type(exc).__name__}: {exc}")
            return
        self.processed += 1
        metrics.JOBS_DONE.labels(kind=job.kind).inc()
        metrics.TIMER_LAG.observe(max(0.0, (started - job.due_at).total_seconds()))
        self.fired([job], started)

    async def _retry(self, job: jobs.Job, due: datetime, error: str, *,
                     dead: bool = False, counted: bool = True,
                     needed: str | None = None) -> None:
        """Put the job back for `due`, or give up on it (dead): staff are told in the same
        transaction, so a job never dies silently."""
        dead = dead or (counted and job.attempts >= MAX_ATTEMPTS)
        async with self.app.db.transaction() as s:
            await jobs.retry(s, job.id, self.name, due, error, dead=dead, uncount=not counted)
            if dead and not failures.is_notice(job.key):
                await failures.tell_staff(s, self.app, self.app.clock(),
                                          once=f"job:{job.id}", msg_id="notice.job_failed",
                                          needed=needed, kind=job.kind, id=job.id,
                                          n=job.attempts,
                                          error=(error.splitlines() or [''])[0][:300])

    @staticmethod
    def _backoff(attempts: int) -> float:
        return float(min(300, 2 ** max(0, attempts - 1)))

    async def _listen_pg(self) -> None:
        """LISTEN for jobs enqueued by other replicas; the safety poll covers any gap."""
        while not self._stop.is_set():
            try:
                async with self.app.db.engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection

                    def wake(*_: object) -> None:
                        self.app.db.jobs_changed.set()

                    await driver.add_listener(JOBS_CHANNEL, wake)
                    try:
                        while not self._stop.is_set() and not driver.is_closed():
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(self._stop.wait(), timeout=1.0)
                    finally:
                        with contextlib.suppress(Exception):
                            await driver.remove_listener(JOBS_CHANNEL, wake)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)


@asynccontextmanager
async def worker_running(ctx: AppContext, messenger: Messenger) -> AsyncIterator[Worker]:
    worker = Worker(ctx, messenger)
    task = asyncio.create_task(worker.run(), name="worker")
    try:
        yield worker
    finally:
        worker.stop()
        try:
            await asyncio.wait_for(task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            # jobs still in flight keep their leases; another start picks them up
            log.warning("worker did not stop within 10 s; leaving its jobs to their leases")
