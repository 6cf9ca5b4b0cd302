"""Which handler runs which job kind: every kind the bot queues, registered here, in one place.

Every handler has the one signature `async def run(ctx: JobContext, job: Job) -> dict | None`
(see `bot.services.job`). A kind may also say how the worker schedules it:

- `atomic`: the handler's effects and the job's completion commit in one transaction
  (`ctx.tx`); several due together run in one transaction (SLA timers).
- `first`: started ahead of the other jobs claimed with it, and known while in flight by
  `tag(job)`, so that a job claimed with it can wait for it (`ctx.settled(tag)`): a notice
  linking to a case card waits for the card being posted.

`startup` functions queue the recurring jobs (idempotently) when a worker starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bot.services import (
    advisories,
    cases,
    digests,
    home,
    incidents,
    maintenance,
    outbox,
    reports,
)
from bot.services.base import AppContext
from bot.services.job import Job, JobHandler


@dataclass(frozen=True)
class JobKind:
    name: str
    run: JobHandler
    atomic: bool = False
    first: bool = False
    tag: Callable[[Job], str] | None = None
    # atomic kinds run together: take the rows they all need first, in one order
    lock: Callable[[AsyncSession, list[Job]], Awaitable[None]] | None = None


class Registry:
    """Job kind -> how to run it."""

    def __init__(self) -> None:
        self._kinds: dict[str, JobKind] = {}
        self.startup: list[Callable[[AppContext], Awaitable[None]]] = []

    def add(self, name: str, run: JobHandler, *, atomic: bool = False, first: bool = False,
            tag: Callable[[Job], str] | None = None,
            lock: Callable[[AsyncSession, list[Job]], Awaitable[None]] | None = None) -> None:
        if name in self._kinds:
            raise ValueError(f"job kind {name} is registered twice")
        self._kinds[name] = JobKind(name, run, atomic=atomic, first=first, tag=tag, lock=lock)

    def on_start(self, ensure: Callable[[AppContext], Awaitable[None]]) -> None:
        """Run `ensure(app)` when a worker starts (it queues a recurring job)."""
        self.startup.append(ensure)

    def get(self, name: str) -> JobKind | None:
        return self._kinds.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    @property
    def kinds(self) -> list[str]:
        return sorted(self._kinds)


def standard() -> Registry:
    """The bot's job kinds."""
    r = Registry()
    r.add(cases.SLA_WARN, cases.run_timer, atomic=True, lock=cases.lock_timers)
    r.add(cases.SLA_BREACH, cases.run_timer, atomic=True, lock=cases.lock_timers)
    # joins digests as the timers do: the same locks, in the same order
    r.add(cases.NEW_CASE_NOTICE, cases.run_new_case_notice, atomic=True,
          lock=cases.lock_timers)
    r.add(outbox.CARD_SYNC, outbox.relay_card, first=True, tag=outbox.card_job_tag)
    r.add(outbox.MSG_POST, outbox.relay_post)
    r.add(digests.SYNC, digests.relay)
    r.add(advisories.POST, advisories.run_post)
    r.add(advisories.PROGRESS, advisories.run_progress)
    r.add(advisories.REMIND, advisories.run_remind)
    r.add(incidents.POST, incidents.BROADCAST.run_post)
    r.add(incidents.PROGRESS, incidents.BROADCAST.run_progress)
    r.add(home.REFRESH, home.run_refresh)
    r.add(reports.POST, reports.run_post)
    r.add(reports.SCHEDULE, reports.run_schedule)
    r.add(reports.EMAIL, reports.run_email)
    r.add(maintenance.PRUNE, maintenance.run_prune)
    r.on_start(reports.ensure_schedule)
    r.on_start(maintenance.ensure)
    return r
