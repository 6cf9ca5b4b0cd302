"""One message to many groups: the machinery advisories and incident posts share.

A broadcast is a row (its sender, total and progress message) with one delivery row per
group. Each group's post is its own outbox job, paced per channel by the worker and
idempotent by key (a retry looks for its own message first); a group the bot cannot reach
is marked failed, never retried forever; the sender's DM shows sent / total / failed as it
goes (progress updates coalesced a few seconds apart, and a final one). What differs by
feature (the tables, the message a group reads, the progress wording) is a `Broadcast`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import DeliveryStatus, Lang
from bot.i18n import Translator
from bot.messages import Message
from bot.services import home
from bot.services.base import AppContext
from bot.services.job import JobContext
from bot.services.messenger import DeliveryError
from storage import jobs
from storage.repos import Staff

PROGRESS_EVERY = 2  # seconds between progress message updates


class DeliveryRecord(Protocol):
    """One broadcast message to one group, as a store returns it."""

    @property
    def account_key(self) -> str: ...
    @property
    def channel_id(self) -> str: ...
    @property
    def status(self) -> DeliveryStatus: ...
    @property
    def error(self) -> str | None: ...


@dataclass(frozen=True)
class Head:
    """Who sent a broadcast, to how many groups, and where their progress message is;
    `ref` and `kind` name it in the progress message (`AD-1001`; `INC-1001`, `update`)."""

    ref: str
    team_id: str
    created_by: str
    total: int
    progress_channel: str | None
    progress_ts: str | None
    kind: str = ""


class Store(Protocol):
    """A feature's broadcast tables, on one session."""

    async def head(self, broadcast_id: int) -> Head | None: ...
    async def delivery(self, broadcast_id: int, channel_id: str) -> DeliveryRecord | None: ...
    async def failed(self, broadcast_id: int, limit: int) -> list[DeliveryRecord]: ...
    async def counts(self, broadcast_id: int) -> dict[str, int]: ...
    async def settle(self, broadcast_id: int, channel_id: str, status: DeliveryStatus,
                     at: datetime, ts: str | None = None,
                     error: str | None = None) -> str | None: ...
    async def set_progress(self, broadcast_id: int, channel: str, ts: str) -> None: ...


class Broadcast(ABC):
    """How one feature's broadcasts are stored, worded and keyed.

    `prefix` starts every job key (`adv:1:C1`, `adv:1:progress`), `id_field` names the
    broadcast's id in job payloads; both are part of jobs already queued, so they never
    change for a feature."""

    prefix: str
    id_field: str
    post_kind: str
    progress_kind: str
    touch_home = False  # the accounts' App Home shows these deliveries

    @abstractmethod
    def store(self, s: AsyncSession) -> Store: ...

    @abstractmethod
    async def message(self, s: AsyncSession, broadcast_id: int,
                      delivery: DeliveryRecord) -> Message | None:
        """What the delivery's group reads (None: the broadcast vanished)."""

    @abstractmethod
    def progress_text(self, t: Translator, head: Head, counts: dict[str, int], done: bool,
                      failed: list[DeliveryRecord]) -> str: ...

    # --- queueing, in the transaction that creates the broadcast

    async def queue(self, s: AsyncSession, broadcast_id: int, channels: Iterable[str],
                    now: datetime) -> None:
        """One post job per group, and the sender's first progress message."""
        for channel in channels:
            await jobs.enqueue(s, self.post_kind, now,
                               {self.id_field: broadcast_id, "channel": channel},
                               f"{self.prefix}:{broadcast_id}:{channel}", now)
        await jobs.enqueue(s, self.progress_kind, now, {self.id_field: broadcast_id},
                           f"{self.prefix}:{broadcast_id}:progress:start", now)

    # --- job handlers

    async def run_post(self, ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
        """Post to one group; a group the bot cannot reach is marked failed."""
        app = ctx.app
        broadcast_id, channel = int(job.payload[self.id_field]), str(job.payload["channel"])
        async with app.db.transaction() as s:
            delivery = await self.store(s).delivery(broadcast_id, channel)
            message = await self.message(s, broadcast_id, delivery) if delivery else None
        if delivery is None or message is None:
            raise DeliveryError(f"{self.prefix} broadcast vanished", permanent=True)
        if delivery.status != DeliveryStatus.PENDING:
            return {"outcome": delivery.status}
        try:
            posted = await ctx.deliver(job.key, channel, message, recover=job.attempts > 1)
        except DeliveryError as exc:
            if not exc.permanent:
                raise
            await self.settle(app, broadcast_id, channel, DeliveryStatus.FAILED,
                              error=exc.reason)
            return {"outcome": DeliveryStatus.FAILED, "error": exc.reason}
        await self.settle(app, broadcast_id, channel, DeliveryStatus.SENT, ts=posted.ts)
        return {"outcome": DeliveryStatus.SENT, "ts": posted.ts}

    async def settle(self, app: AppContext, broadcast_id: int, channel: str,
                     status: DeliveryStatus, ts: str | None = None,
                     error: str | None = None) -> None:
        now = app.clock()
        async with app.db.transaction() as s:
            store = self.store(s)
            key = await store.settle(broadcast_id, channel, status, now, ts=ts, error=error)
            counts = await store.counts(broadcast_id)
            if key and self.touch_home:
                await home.touch(s, key, now)
            # progress updates are coalesced: one job per few seconds, and a final one
            settled = counts[DeliveryStatus.SENT] + counts[DeliveryStatus.FAILED]
            done = settled >= sum(counts.values())
            bucket = "final" if done else str(int(now.timestamp()) // PROGRESS_EVERY)
            await jobs.enqueue(s, self.progress_kind, now, {self.id_field: broadcast_id},
                               f"{self.prefix}:{broadcast_id}:progress:{bucket}", now)

    async def run_progress(self, ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
        """Post or update the sender's progress message: sent / total / failed."""
        app = ctx.app
        broadcast_id = int(job.payload[self.id_field])
        async with app.db.transaction() as s:
            store = self.store(s)
            head = await store.head(broadcast_id)
            if head is None:
                raise DeliveryError(f"{self.prefix} broadcast vanished", permanent=True)
            counts = await store.counts(broadcast_id)
            failed = await store.failed(broadcast_id, limit=20)
            member = await Staff(s).get(head.team_id, head.created_by)
        t = Translator(member.lang if member else Lang.EN)
        done = counts[DeliveryStatus.SENT] + counts[DeliveryStatus.FAILED] >= head.total
        if not done:
            # deliveries settling concurrently may each miss that they were the last: look
            # again shortly, until the final count is shown
            now = app.clock()
            later = now + timedelta(seconds=PROGRESS_EVERY)
            async with app.db.transaction() as s:
                await jobs.enqueue(s, self.progress_kind, later, {self.id_field: broadcast_id},
                                   f"{self.prefix}:{broadcast_id}:progress:"
                                   f"{int(later.timestamp()) // PROGRESS_EVERY}", now)
        text = self.progress_text(t, head, counts, done, failed)
        if head.progress_ts is None or head.progress_channel is None:
            channel = await ctx.messenger.dm_channel(head.created_by)
            posted = await ctx.deliver(f"{self.prefix}:{broadcast_id}:progress", channel,
                                       Message(text), recover=True)
            async with app.db.transaction() as s:
                await self.store(s).set_progress(broadcast_id, posted.channel, posted.ts)
            return {"ts": posted.ts}
        await ctx.messenger.update(head.progress_channel, head.progress_ts, Message(text))
        return {"ts": head.progress_ts}
