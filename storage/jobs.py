"""Durable jobs: SLA timers and the outbox, claimed with a lease by any number of workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import JOBS_CHANNEL
from storage.sql import core, insert_for, prepared
from storage.tables import JobRow

PENDING, DONE, DEAD, CANCELLED = "pending", "done", "dead", "cancelled"


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    due_at: datetime
    payload: dict[str, Any]
    key: str
    attempts: int


async def enqueue(s: AsyncSession, kind: str, due_at: datetime, payload: dict[str, Any],
                  key: str, now: datetime) -> bool:
    """Add a job unless one with the same idempotency key exists; True when added."""
    seen: set[str] = s.info.setdefault("enqueued_keys", set())
    if key in seen:  # already added in this transaction (e.g. one Home refresh per batch)
        return False
    seen.add(key)
    values = dict(kind=kind, due_at=due_at, payload=payload, idempotency_key=key,
                  status=PENDING, attempts=0, created_at=now)
    batch: list[dict[str, Any]] | None = s.info.get("job_batch")
    if batch is not None:
        batch.append(values)  # written with the others when the batch ends
        return True
    stmt = prepared(s, "jobs.enqueue", lambda d: insert_for(d, core(JobRow))
                    .on_conflict_do_nothing(index_elements=["idempotency_key"])
                    .returning(core(JobRow).c.id))
    result = await s.execute(stmt, values)
    added = result.first() is not None
    if added:
        await _added(s)
    return added


@asynccontextmanager
async def batched(s: AsyncSession) -> AsyncIterator[None]:
    """Jobs enqueued inside the block are written together when it ends, in one statement
    (their keys still deduplicate: a job whose key exists is skipped, as `enqueue` skips it;
    inside, `enqueue` cannot tell and says True). Nested blocks write with the outermost.
    If the block raises, what it enqueued is dropped with the work it belonged to."""
    if s.info.get("job_batch") is not None:
        yield
        return
    s.info["job_batch"] = []
    try:
        yield
    finally:
        rows: list[dict[str, Any]] = s.info.pop("job_batch")
    if not rows:
        return
    await s.execute(prepared(s, "jobs.enqueue_many", lambda d: insert_for(d, core(JobRow))
                             .on_conflict_do_nothing(index_elements=["idempotency_key"])),
                    rows)
    await _added(s)


async def _added(s: AsyncSession) -> None:
    """Jobs were added in this transaction: wake the workers when it commits."""
    if s.get_bind().dialect.name == "postgresql" and not s.info.get("notified"):
        # transactional: delivered to other replicas' workers only when this commits;
        # one notification per transaction is enough to wake them
        await s.execute(text("SELECT pg_notify(:ch, '')"), {"ch": JOBS_CHANNEL})
        s.info["notified"] = True
    s.info["jobs_enqueued"] = True


async def cancel(s: AsyncSession, keys: list[str]) -> None:
    """Cancel pending jobs by key (a timer that a state change made pointless)."""
    if keys:
        await s.execute(update(JobRow).where(JobRow.idempotency_key.in_(keys),
                                             JobRow.status == PENDING)
                        .values(status=CANCELLED))


_JOBS = core(JobRow)
# built once, Core with bound parameters: the worker claims and finishes jobs all day (a
# monthly report run: a claim each time a report's chart comes back), and building these
# statements or running them through the ORM's bulk-update path cost more than the SQL
_READY = (select(_JOBS.c.id)
          .where(_JOBS.c.status == PENDING, _JOBS.c.due_at <= bindparam("claim_now"),
                 _JOBS.c.locked_until.is_(None) | (_JOBS.c.locked_until < bindparam("claim_now")))
          .order_by(_JOBS.c.due_at).limit(bindparam("claim_limit"))
          .with_for_update(skip_locked=True))
_CLAIM = (update(_JOBS).where(_JOBS.c.id.in_(_READY.scalar_subquery()))
          .values(locked_until=bindparam("claim_until"), locked_by=bindparam("claim_worker"),
                  attempts=_JOBS.c.attempts + 1)
          .returning(_JOBS.c.id, _JOBS.c.kind, _JOBS.c.due_at, _JOBS.c.payload,
                     _JOBS.c.idempotency_key, _JOBS.c.attempts))
_FINISH = (update(_JOBS)
           .where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.locked_by == bindparam("worker"),
                  _JOBS.c.status == PENDING)
           .values(status=DONE, done_at=bindparam("done_at"), locked_until=None,
                   result=bindparam("job_result")))  # None: JSON null, as before


async def claim(s: AsyncSession, now: datetime, worker: str, lease: timedelta,
                limit: int) -> list[Job]:
    """Lease up to `limit` due jobs. PostgreSQL skips rows other workers hold; SQLite's
    BEGIN IMMEDIATE already serializes claimers."""
    rows = (await s.execute(_CLAIM, {"claim_now": now, "claim_limit": limit,
                                     "claim_until": now + lease,
                                     "claim_worker": worker})).all()
    return sorted((Job(id=r[0], kind=r[1], due_at=_aware(r[2]), payload=r[3], key=r[4],
                       attempts=r[5]) for r in rows), key=lambda j: j.due_at)


def _aware(value: datetime) -> datetime:
    # aggregates such as MIN() come back without the column type's conversion on SQLite
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def finish(s: AsyncSession, job_id: int, worker: str, now: datetime,
                 result: dict[str, Any] | None = None) -> bool:
    """Mark a leased job done; False when the lease was lost to another worker."""
    r = await s.execute(_FINISH, {"job_id": job_id, "worker": worker, "done_at": now,
                                  "job_result": result})
    return bool(r.rowcount)  # type: ignore[attr-defined]


async def finish_many(s: AsyncSession, job_ids: list[int], worker: str, now: datetime,
                      results: dict[int, dict[str, Any]]) -> bool:
    """Mark several leased jobs done at once; False (nothing done) if any lease was lost."""
    owned = (await s.execute(select(JobRow.id).where(
        JobRow.id.in_(job_ids), JobRow.locked_by == worker, JobRow.status == PENDING))).all()
    if len(owned) != len(job_ids):
        return False
    for job_id in job_ids:
        await s.execute(update(JobRow).where(JobRow.id == job_id).values(
            status=DONE, done_at=now, locked_until=None, result=results.get(job_id)))
    return True


async def renew(s: AsyncSession, job: Job, worker: str, now: datetime,
                lease: timedelta) -> bool:
    """Extend the lease of this claim of the job (this worker, this attempt); False when the
    job was claimed again since (a lease ran out and a worker, maybe this one, took it up)
    or is finished."""
    r = await s.execute(update(JobRow).where(JobRow.id == job.id, JobRow.locked_by == worker,
                                             JobRow.attempts == job.attempts,
                                             JobRow.status == PENDING)
                        .values(locked_until=now + lease))
    return bool(r.rowcount)  # type: ignore[attr-defined]


async def retry(s: AsyncSession, job_id: int, worker: str, due_at: datetime, error: str,
                dead: bool = False, uncount: bool = False) -> None:
    """Release a leased job to run again at `due_at` (or give up on it). `uncount` gives the
    claim's attempt back (a wait for pacing is not a failed try)."""
    values: dict[str, Any] = dict(status=DEAD if dead else PENDING, due_at=due_at,
                                  locked_until=None, last_error=error[:2000])
    if uncount:
        values["attempts"] = JobRow.attempts - 1
    await s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.locked_by == worker)
                    .values(**values))
    s.info["jobs_enqueued"] = True


async def next_due(s: AsyncSession) -> datetime | None:
    """Earliest time a pending job becomes claimable (its due time or lease expiry)."""
    ready_at = case((JobRow.locked_until > JobRow.due_at, JobRow.locked_until),
                    else_=JobRow.due_at)
    due = await s.scalar(select(func.min(ready_at)).where(JobRow.status == PENDING))
    if due is None:
        return None
    if isinstance(due, str):  # SQLite returns the raw text of an aggregate
        due = datetime.fromisoformat(due)
    return _aware(due)


async def count(s: AsyncSession, status: str | None = None, kind: str | None = None) -> int:
    q = select(func.count()).select_from(JobRow)
    if status:
        q = q.where(JobRow.status == status)
    if kind:
        q = q.where(JobRow.kind == kind)
    return int(await s.scalar(q) or 0)


async def get_by_key(s: AsyncSession, key: str) -> JobRow | None:
    return await s.scalar(select(JobRow).where(JobRow.idempotency_key == key))
