"""The timer loop and outbox relay: sleeps until the next due job, claims it with a lease, runs it.

Several workers (one per process, across replicas) share the `jobs` table safely: PostgreSQL
hands each due row to one claimer (`FOR UPDATE SKIP LOCKED`), SQLite serializes claimers
with `BEGIN IMMEDIATE`. A crash leaves the lease to expire and another worker retries. Effects
stay single: timer effects commit with the job's completion; a message carries its job's
idempotency key in Slack metadata, and a retried job first looks for the message it may
already have posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from bot import metrics
from bot.messages import Button, Message
from bot.services import advisories, cases, failures, home, maintenance, outbox, reports
from bot.services.base import AppContext
from bot.services.cards import card_message
from bot.services.messenger import DeliveryError, Messenger, Posted
from storage import jobs
from storage.db import JOBS_CHANNEL
from storage.repos import Accounts, Cases

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
CARD_WAIT_ATTEMPTS = 5  # after this many tries a notice goes out without its card link

JobHandler = Callable[["Worker", jobs.Job, datetime], Awaitable[dict[str, Any] | None]]


class LeaseLost(Exception):
    """Another worker took the job over (our lease expired); roll back our effects."""


class Later(Exception):
    """Not now: come back after `delay` seconds (pacing); not counted as a failure."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"paced: retry in {delay:.1f}s")
        self.delay = delay


class NotReady(Exception):
    """The job depends on something not there yet (e.g. the case card); try again soon."""


class Worker:
    def __init__(self, app: AppContext, messenger: Messenger, *, lease: float | None = None,
                 batch: int = 50, poll: float | None = None, name: str | None = None) -> None:
        self.app = app
        self.messenger = messenger
        self.lease = timedelta(seconds=lease or app.settings.worker_lease_seconds)
        self.batch = batch
        self.poll = poll if poll is not None else app.settings.worker_poll_seconds
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stop = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._cards: dict[int, asyncio.Task[None]] = {}  # case id -> its card job in flight
        self._card_locks: dict[int, asyncio.Lock] = {}
        self._tat: dict[str, float] = {}  # channel -> when its next message may go
        self._paused_until = 0.0
        self.interval = app.settings.channel_interval_seconds
        self.burst = max(1, app.settings.channel_burst)
        self.rate = app.settings.workspace_rate
        self._workspace_tat = 0.0
        self.processed = 0

    def stop(self) -> None:
        self._stop.set()
        self.app.db.jobs_changed.set()

    async def run(self) -> None:
        """Run until `stop()`: claim what is due, run each job as its own task (a slow Slack
        call never holds up a timer), sleep until the next due time, a wake-up or a finish."""
        listener = None
        try:
            await reports.ensure_schedule(self.app)
            await maintenance.ensure(self.app)
        except Exception:  # the database may be starting: the loop below retries its work
            log.warning("could not queue the recurring jobs yet", exc_info=True)
        if not self.app.db.is_sqlite:
            listener = asyncio.create_task(self._listen_pg())
        try:
            while not self._stop.is_set():
                # cleared before looking, so a commit from now on wakes the wait below
                self.app.db.jobs_changed.clear()
                try:
                    free = self.batch - len(self._inflight)
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

    def _start(self, claimed: list[jobs.Job]) -> None:
        timers = [j for j in claimed if j.kind in (cases.SLA_WARN, cases.SLA_BREACH)]
        if len(timers) > 1:
            # due timers fire together in one transaction: one commit instead of many
            task = asyncio.create_task(self._fire_batch(timers))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            claimed = [j for j in claimed if j not in timers]
        # card jobs first: a thread reply or card link in the same batch waits for its card
        for job in sorted(claimed, key=lambda j: j.kind != outbox.CARD_SYNC):
            task = asyncio.create_task(self._run(job))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            if job.kind == outbox.CARD_SYNC:
                case_id = int(job.payload["case_id"])
                self._cards[case_id] = task
                task.add_done_callback(self._forget_card(case_id))

    def _forget_card(self, case_id: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._cards.pop(case_id, None)
        return forget

    async def _sleep_for(self) -> float:
        async with self.app.db.transaction() as s:
            due = await jobs.next_due(s)
        if due is None:
            return self.poll
        wait = (due - self.app.clock()).total_seconds()
        return max(0.0, min(wait, self.poll))

    async def _run(self, job: jobs.Job) -> None:
        started = self.app.clock()
        if job.kind in (cases.SLA_WARN, cases.SLA_BREACH):
            await self._fire(job, started)
            return
        try:
            result = await self.handle(job)
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
                # one line; a missing scope's reason names the scope Slack says is needed
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

    async def _fire_batch(self, batch: list[jobs.Job]) -> None:
        """Fire several timers in one transaction; on any trouble fire them one by one."""
        started = self.app.clock()
        try:
            async with self.app.db.transaction() as s:
                results = {}
                for job in batch:
                    results[job.id] = {"outcome": await cases.fire_timer(
                        s, self.app, job.kind, job.payload, started)}
                if not await jobs.finish_many(s, [j.id for j in batch], self.name,
                                              self.app.clock(), results):
                    raise LeaseLost(f"one of jobs {[j.id for j in batch]}")
        except Exception:
            log.info("firing %d timers together failed; firing them one by one", len(batch),
                     exc_info=True)
            for job in batch:
                await self._fire(job, started)
            return
        self.processed += len(batch)
        for job in batch:
            metrics.JOBS_DONE.labels(kind=job.kind).inc()
            metrics.TIMER_LAG.observe(max(0.0, (started - job.due_at).total_seconds()))
        self.fired(batch, started)

    def fired(self, batch: list[jobs.Job], started: datetime) -> None:
        """Hook for measurements (benchmarks): these timers fired at `started`."""

    async def _fire(self, job: jobs.Job, started: datetime) -> None:
        """An SLA timer: its effects (flags, notices in the outbox, audit) and the job's
        completion commit together, so a crash either did all of it or none."""
        try:
            async with self.app.db.transaction() as s:
                outcome = await cases.fire_timer(s, self.app, job.kind, job.payload, started)
                if not await jobs.finish(s, job.id, self.name, self.app.clock(),
                                         {"outcome": outcome}):
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

    async def handle(self, job: jobs.Job) -> dict[str, Any] | None:
        now = self.app.clock()
        if job.kind == outbox.MSG_POST:
            return await self._post(job)
        if job.kind == outbox.CARD_SYNC:
            return await self._sync_card(job)
        if job.kind == advisories.POST:
            return await advisories.run_post(self, self.app, job)
        if job.kind == advisories.PROGRESS:
            return await advisories.run_progress(self, self.app, job)
        if job.kind == advisories.REMIND:
            return await advisories.run_remind(self.app, job)
        if job.kind == maintenance.PRUNE:
            return await maintenance.run_prune(self.app, job)
        if job.kind == home.REFRESH:
            return await home.run_refresh(self.app, self.messenger, job)
        if job.kind == reports.POST:
            return await reports.run_post(self, self.app, job)
        if job.kind == reports.SCHEDULE:
            return await reports.run_schedule(self.app, job)
        handler: JobHandler | None = self.app.extras.get(f"job:{job.kind}")
        if handler is None:
            raise DeliveryError(f"no handler for job kind {job.kind}", permanent=True)
        return await handler(self, job, now)

    async def deliver(self, key: str, channel: str, message: Message, *, recover: bool,
                      thread_ts: str | None = None) -> Posted:
        """Post once. With `recover` (a retry, whose earlier try may have posted before a
        crash) look first for a message carrying the same key."""
        async with self._paced(channel):
            if recover:
                found = await self.messenger.find(channel, key, thread_ts=thread_ts)
                if found is not None:
                    log.info("%s was already posted as %s; not posting again", key, found.ts)
                    return found
            return await self.messenger.post(channel, message, thread_ts=thread_ts, key=key)

    @contextlib.asynccontextmanager
    async def _paced(self, channel: str) -> AsyncIterator[None]:
        """Slack's per-channel pace (about one message per interval, short bursts allowed),
        as a reservation per channel (GCRA), and a pause for everyone after a 429: the
        workspace limit is shared by all channels. A wait longer than a third of the lease
        puts the job back instead, so no lease runs out while a message waits its turn."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        tat = max(self._tat.get(channel, now), now)  # theoretical arrival time
        wait = max(0.0, tat - (self.burst - 1) * self.interval - now,
                   self._paused_until - now)
        if self.rate > 0:  # the workspace-wide pace, when one is configured
            wait = max(wait, self._workspace_tat - now)
        if wait > self.lease.total_seconds() / 3:
            raise Later(wait)
        self._tat[channel] = max(tat, now + wait) + self.interval  # the slot is ours
        if self.rate > 0:
            self._workspace_tat = max(self._workspace_tat, now + wait) + 1.0 / self.rate
        if wait > 0:
            # a stop ends the wait: the job goes back and keeps its turn for the next start
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=wait)
                raise Later(wait)
        try:
            yield
        except DeliveryError as exc:
            if exc.retry_after:
                self._paused_until = max(self._paused_until, loop.time() + exc.retry_after)
            raise

    async def _post(self, job: jobs.Job) -> dict[str, Any]:
        p = job.payload
        expires = p.get("expires_at")
        if expires is not None and self.app.clock() >= datetime.fromisoformat(str(expires)):
            # it would say something no longer true (time left before a passed deadline)
            log.info("message %s expired before it could be posted; dropped", job.key)
            return {"outcome": "expired"}
        text = str(p["text"])
        thread_ts = None
        case_id = p.get("thread_case_id") or p.get("link_case_id")
        if case_id is not None:
            card_task = self._cards.get(int(case_id))
            if card_task is not None:  # the card is being posted right now: wait for it
                await asyncio.wait({card_task})
            async with self.app.db.transaction() as s:
                case = await Cases(s).get(int(case_id))
            if case is None:
                raise DeliveryError("case vanished", permanent=True)
            if case.card_ts is None and job.attempts < CARD_WAIT_ATTEMPTS:
                raise NotReady(f"card of {case.ref} not posted yet")
            if case.card_ts is not None:
                if "thread_case_id" in p:
                    thread_ts = case.card_ts
                else:
                    link = self.messenger.link(case.channel_id, case.card_ts)
                    text += "\n" + str(p.get("link_text", "{link}")).format(link=link)
            # else: the card could not be posted; staff still get the notice, without a link
        buttons = [Button.from_dict(b) for b in p.get("buttons") or []] or None
        if "user" in p:
            channel = await self.messenger.dm_channel(str(p["user"]))
        else:
            channel = str(p["channel"])
        posted = await self.deliver(job.key, channel, Message.of(text, buttons or ()),
                                    recover=job.attempts > 1, thread_ts=thread_ts)
        return {"channel": posted.channel, "ts": posted.ts}

    async def _sync_card(self, job: jobs.Job) -> dict[str, Any]:
        case_id = int(job.payload["case_id"])
        lock = self._card_locks.setdefault(case_id, asyncio.Lock())
        async with lock:
            async with self.app.db.transaction() as s:
                case = await Cases(s).get(case_id)
                account = await Accounts(s).get(case.account_key) if case else None
            if case is None or account is None:
                raise DeliveryError("case vanished", permanent=True)
            if case.version > int(job.payload["version"]) and case.card_ts is not None:
                return {"outcome": "superseded"}  # a newer sync renders the latest state
            card = card_message(case, account.lang)
            if case.card_ts is None:
                # one key per case (not per version): an earlier sync job of this case may
                # have posted the card and died before storing its ts; find it, don't repost
                posted = await self.deliver(f"card:{case.id}", case.channel_id, card,
                                            recover=job.attempts > 1 or case.version > 1)
                async with self.app.db.transaction() as s:
                    await Cases(s).set_card_ts(case.id, posted.ts)
                return {"ts": posted.ts}
            await self.messenger.update(case.channel_id, case.card_ts, card)
            return {"ts": case.card_ts}

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
