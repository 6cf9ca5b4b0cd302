"""Durable jobs: SLA timers and the outbox, claimed with a lease by any number of workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import sql
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
    result = await sql.run(s, stmt, values)
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
    await sql.run_many(s, prepared(s, "jobs.enqueue_many", lambda d: insert_for(d, core(JobRow))
                                   .on_conflict_do_nothing(index_elements=["idempotency_key"])),
                       rows)
    await _added(s)


async def _added(s: AsyncSession) -> None:
    """Jobs were added in this transaction: wake the workers when it commits (this
    process's through `Database.jobs_changed`; on PostgreSQL every replica's through the
    NOTIFY that the jobs table's insert trigger sends, delivered at commit)."""
    s.info["jobs_enqueued"] = True


async def cancel(s: AsyncSession, keys: list[str]) -> None:
    """Cancel pending jobs by key (a timer that a state change made pointless)."""
    if keys:
        await s.execute(update(JobRow).where(JobRow.idempotency_key.in_(keys),
                                             JobRow.status == PENDING)
                        .values(status=CANCELLED))


async def claim(s: AsyncSession, now: datetime, worker: str, lease: timedelta,
                limit: int) -> list[Job]:
    """Lease up to `limit` due jobs. PostgreSQL skips rows other workers hold; SQLite's
    BEGIN IMMEDIATE already serializes claimers."""
    rows = (await sql.run(s, _CLAIM, {"now": now, "limit": limit, "until": now + lease,
                                      "worker": worker})).all()
    return sorted((Job(id=r[0], kind=r[1], due_at=_aware(r[2]), payload=r[3], key=r[4],
                       attempts=r[5]) for r in rows), key=lambda j: j.due_at)


# the worker's statements, built once (see storage.sql.run)
_READY = (select(JobRow.id)
          .where(JobRow.status == PENDING, JobRow.due_at <= bindparam("now"),
                 (JobRow.locked_until.is_(None)) | (JobRow.locked_until < bindparam("now")))
          .order_by(JobRow.due_at).limit(bindparam("limit"))
          .with_for_update(skip_locked=True))
_CLAIM = (update(JobRow).where(JobRow.id.in_(_READY.scalar_subquery()))
          .values(locked_until=bindparam("until"), locked_by=bindparam("worker"),
                  attempts=JobRow.attempts + 1)
          .returning(JobRow.id, JobRow.kind, JobRow.due_at, JobRow.payload,
                     JobRow.idempotency_key, JobRow.attempts))
_FINISH = (update(JobRow).where(JobRow.id == bindparam("job"),
                                JobRow.locked_by == bindparam("worker"),
                                JobRow.status == PENDING)
           .values(status=DONE, done_at=bindparam("now"), locked_until=None,
                   result=bindparam("outcome", type_=JobRow.result.type)))
_RENEW = (update(JobRow).where(JobRow.id == bindparam("job"),
                               JobRow.locked_by == bindparam("worker"),
                               JobRow.attempts == bindparam("tries"), JobRow.status == PENDING)
          .values(locked_until=bindparam("until")))
_RETRY_VALUES = dict(status=bindparam("state"), due_at=bindparam("due", type_=JobRow.due_at.type),
                     locked_until=None, last_error=bindparam("error"))
_RETRY = (update(JobRow).where(JobRow.id == bindparam("job"),
                               JobRow.locked_by == bindparam("worker")).values(**_RETRY_VALUES))
_RETRY_UNCOUNTED = _RETRY.values(attempts=JobRow.attempts - 1)
_NEXT_DUE = select(func.min(case((JobRow.locked_until > JobRow.due_at, JobRow.locked_until),
                                 else_=JobRow.due_at))).where(JobRow.status == PENDING)


def _aware(value: datetime) -> datetime:
    # aggregates such as MIN() come back without the column type's conversion on SQLite
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def finish(s: AsyncSession, job_id: int, worker: str, now: datetime,
                 result: dict[str, Any] | None = None) -> bool:
    """Mark a leased job done; False when the lease was lost to another worker."""
    r = await sql.run(s, _FINISH, {"job": job_id, "worker": worker, "now": now,
                                   "outcome": result})
    return bool(r.rowcount)


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
    r = await sql.run(s, _RENEW, {"job": job.id, "worker": worker, "tries": job.attempts,
                                  "until": now + lease})
    return bool(r.rowcount)


async def retry(s: AsyncSession, job_id: int, worker: str, due_at: datetime, error: str,
                dead: bool = False, uncount: bool = False) -> None:
    """Release a leased job to run again at `due_at` (or give up on it). `uncount` gives the
    claim's attempt back (a wait for pacing is not a failed try)."""
    await sql.run(s, _RETRY_UNCOUNTED if uncount else _RETRY,
                  {"job": job_id, "worker": worker, "state": DEAD if dead else PENDING,
                   "due": due_at, "error": error[:2000]})
    s.info["jobs_enqueued"] = True


async def next_due(s: AsyncSession) -> datetime | None:
    """Earliest time a pending job becomes claimable (its due time or lease expiry)."""
    due = (await sql.run(s, _NEXT_DUE)).scalar()
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
