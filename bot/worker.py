"""The timer loop and outbox relay: sleeps until the next due job, claims it with a lease, runs it.

Several workers (one per process, across replicas) share the `jobs` table safely: PostgreSQL
hands each due row to one claimer (`FOR UPDATE SKIP LOCKED`), SQLite serializes claimers
with `BEGIN IMMEDIATE`. A crash leaves the lease to expire and another worker retries; the
effects are idempotent (case flags, idempotency keys, the stored card `ts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

from bot import metrics
from bot.domain.model import Lang
from bot.i18n import Translator
from bot.services import cases, outbox
from bot.services.base import AppContext
from bot.services.cards import CaseCard
from bot.services.messenger import Button, DeliveryError, Messenger
from storage import jobs
from storage.db import JOBS_CHANNEL
from storage.repos import Accounts, Cases

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12


class LeaseLost(Exception):
    """Another worker took the job over (our lease expired); roll back our effects."""


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
        self._card_locks: dict[int, asyncio.Lock] = {}
        self.processed = 0

    def stop(self) -> None:
        self._stop.set()
        self.app.db.jobs_changed.set()

    async def run(self) -> None:
        """Run until `stop()`: claim, run, then sleep until the next due time or a wake-up."""
        listener = None
        if not self.app.db.is_sqlite:
            listener = asyncio.create_task(self._listen_pg())
        try:
            while not self._stop.is_set():
                try:
                    await self.run_once()
                    delay = await self._sleep_for()
                except Exception:
                    # the database went away (restart, lock): keep the loop alive and retry
                    log.exception("worker cycle failed; retrying")
                    metrics.WORKER_ERRORS.inc()
                    delay = min(self.poll, 1.0)
                if self._stop.is_set():
                    break
                self.app.db.jobs_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.app.db.jobs_changed.wait(), timeout=delay)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _sleep_for(self) -> float:
        async with self.app.db.transaction() as s:
            due = await jobs.next_due(s)
        if due is None:
            return self.poll
        wait = (due - self.app.clock()).total_seconds()
        return max(0.0, min(wait, self.poll))

    async def run_once(self) -> int:
        """Claim and run every job due now; return how many ran."""
        total = 0
        while True:
            now = self.app.clock()
            async with self.app.db.transaction() as s:
                claimed = await jobs.claim(s, now, self.name, self.lease, self.batch)
            if not claimed:
                return total
            # cards first: thread replies and card links in the same batch need their `ts`
            cards = [j for j in claimed if j.kind == outbox.CARD_SYNC]
            await asyncio.gather(*(self._run(job) for job in cards))
            await asyncio.gather(*(self._run(job) for job in claimed
                                   if job.kind != outbox.CARD_SYNC))
            total += len(claimed)
            if len(claimed) < self.batch:
                return total

    async def _run(self, job: jobs.Job) -> None:
        started = self.app.clock()
        if job.kind in (cases.SLA_WARN, cases.SLA_BREACH):
            await self._fire(job, started)
            return
        try:
            result = await self.handle(job)
        except NotReady as exc:
            await self._retry(job, started + timedelta(seconds=1), str(exc), count=False)
            return
        except DeliveryError as exc:
            metrics.DELIVERY_FAILURES.labels(kind=job.kind,
                                             permanent=str(exc.permanent).lower()).inc()
            if exc.permanent:
                log.warning("job %s (%s) failed permanently: %s", job.id, job.kind, exc.reason)
                await self._retry(job, started, exc.reason, dead=True)
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

    async def _retry(self, job: jobs.Job, due: datetime, error: str, *, dead: bool = False,
                     count: bool = True) -> None:
        dead = dead or (count and job.attempts >= MAX_ATTEMPTS)
        async with self.app.db.transaction() as s:
            await jobs.retry(s, job.id, self.name, due, error, dead=dead)

    @staticmethod
    def _backoff(attempts: int) -> float:
        return float(min(300, 2 ** max(0, attempts - 1)))

    async def handle(self, job: jobs.Job) -> dict[str, Any] | None:
        now = self.app.clock()
        if job.kind == outbox.MSG_POST:
            return await self._post(job.payload)
        if job.kind == outbox.CARD_SYNC:
            return await self._sync_card(job.payload)
        handler = self.app.extras.get(f"job:{job.kind}")
        if handler is None:
            raise DeliveryError(f"no handler for job kind {job.kind}", permanent=True)
        result: dict[str, Any] | None = await handler(self, job, now)
        return result

    async def _post(self, p: dict[str, Any]) -> dict[str, Any]:
        text = str(p["text"])
        thread_ts = None
        if "thread_case_id" in p or "link_case_id" in p:
            async with self.app.db.transaction() as s:
                case = await Cases(s).get(int(p.get("thread_case_id") or p["link_case_id"]))
            if case is None:
                raise DeliveryError("case vanished", permanent=True)
            if case.card_ts is None:
                raise NotReady(f"card of {case.ref} not posted yet")
            if "thread_case_id" in p:
                thread_ts = case.card_ts
            else:
                text += "\n" + Translator(Lang.EN)("notice.card_link", link=self.messenger.link(
                    case.channel_id, case.card_ts))
        buttons = [Button.from_dict(b) for b in p.get("buttons") or []] or None
        if "user" in p:
            posted = await self.messenger.dm(str(p["user"]), text, buttons=buttons)
        else:
            posted = await self.messenger.post(str(p["channel"]), text, thread_ts=thread_ts,
                                               buttons=buttons)
        return {"channel": posted.channel, "ts": posted.ts}

    async def _sync_card(self, p: dict[str, Any]) -> dict[str, Any]:
        case_id = int(p["case_id"])
        lock = self._card_locks.setdefault(case_id, asyncio.Lock())
        async with lock:
            async with self.app.db.transaction() as s:
                case = await Cases(s).get(case_id)
                account = await Accounts(s).get(case.account_key) if case else None
            if case is None or account is None:
                raise DeliveryError("case vanished", permanent=True)
            if case.version > int(p["version"]) and case.card_ts is not None:
                return {"outcome": "superseded"}  # a newer sync renders the latest state
            card = CaseCard.of(case, account.lang)
            if case.card_ts is None:
                posted = await self.messenger.post(case.channel_id, card.text(), card=card)
                async with self.app.db.transaction() as s:
                    await Cases(s).set_card_ts(case.id, posted.ts)
                return {"ts": posted.ts}
            await self.messenger.update(case.channel_id, case.card_ts, card.text(), card=card)
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
