"""The worker as a registry: dispatch by job kind with one handler signature, one retry policy
(backoff, Retry-After, pacing waits, not-ready waits, giving up visibly), atomic jobs whose
effects commit with their completion, and jobs that wait for another one in flight."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from bot.jobs import Registry, standard
from bot.pacing import Later, Pacer
from bot.services import advisories, cases, home, maintenance, outbox, reports
from bot.services.base import AppContext
from bot.services.job import Job, JobContext, NotReady
from bot.services.messenger import DeliveryError
from bot.worker import MAX_ATTEMPTS, Worker
from storage import jobs
from storage.tables import JobRow
from testkit.fakes import Clock, RecordingMessenger


async def enqueue(ctx: AppContext, kind: str, key: str, payload: dict[str, Any] | None = None,
                  delay: timedelta = timedelta(0)) -> None:
    now = ctx.clock()
    async with ctx.db.transaction() as s:
        assert await jobs.enqueue(s, kind, now + delay, payload or {}, key, now)


async def row(ctx: AppContext, key: str) -> JobRow:
    async with ctx.db.transaction() as s:
        found = await jobs.get_by_key(s, key)
    assert found is not None
    return found


def with_kind(name: str, run: Any, **how: Any) -> Registry:
    """The bot's registry plus one test kind (its failure notices still get delivered)."""
    r = standard()
    r.add(name, run, **how)
    return r


def test_every_kind_the_bot_queues_has_a_handler() -> None:
    r = standard()
    for kind in (cases.SLA_WARN, cases.SLA_BREACH, outbox.MSG_POST, outbox.CARD_SYNC,
                 advisories.POST, advisories.PROGRESS, advisories.REMIND, home.REFRESH,
                 reports.POST, reports.SCHEDULE, maintenance.PRUNE):
        assert kind in r
    with pytest.raises(ValueError, match="twice"):
        r.add(outbox.MSG_POST, outbox.relay_post)


async def test_a_job_runs_its_kinds_handler_with_the_context_and_its_result_is_kept(
        ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    seen: list[tuple[JobContext, Job]] = []

    async def echo(jctx: JobContext, job: Job) -> dict[str, Any]:
        seen.append((jctx, job))
        return {"echo": job.payload["word"]}

    worker = Worker(ctx, messenger, registry=with_kind("test.echo", echo), name="w")
    await enqueue(ctx, "test.echo", "echo:1", {"word": "hello"})
    assert await worker.run_once() == 1
    [(jctx, job)] = seen
    assert jctx.app is ctx and jctx.messenger is messenger and jctx.started == clock.now
    assert jctx.session is None and job.kind == "test.echo" and job.attempts == 1
    done = await row(ctx, "echo:1")
    assert done.status == jobs.DONE and done.result == {"echo": "hello"}
    assert worker.processed == 1


async def test_an_unknown_kind_fails_permanently_and_staff_are_told(
        ctx: AppContext, messenger: RecordingMessenger) -> None:
    worker = Worker(ctx, messenger, name="w")
    await enqueue(ctx, "no.such.kind", "mystery")
    await worker.run_once()
    await worker.run_once()  # delivers the notice queued with the verdict
    dead = await row(ctx, "mystery")
    assert dead.status == jobs.DEAD and dead.attempts == 1
    assert "no handler for job kind no.such.kind" in (dead.last_error or "")
    [notice] = messenger.texts("post", "CDUTY")
    assert "no.such.kind" in notice and f"job {dead.id}" in notice and "1 attempt" in notice


async def test_a_failing_job_backs_off_doubling_then_gives_up_visibly(
        ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    async def broken(jctx: JobContext, job: Job) -> None:
        raise RuntimeError(f"boom {job.attempts}")

    worker = Worker(ctx, messenger, registry=with_kind("test.broken", broken), name="w")
    await enqueue(ctx, "test.broken", "broken")
    waits = []
    for attempt in range(1, MAX_ATTEMPTS):
        started = clock.now
        await worker.run_once()
        job = await row(ctx, "broken")
        assert job.status == jobs.PENDING and job.attempts == attempt
        assert job.last_error == f"RuntimeError: boom {attempt}"
        waits.append((job.due_at - started).total_seconds())
        clock.now = job.due_at
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert messenger.texts("post", "CDUTY") == []
    await worker.run_once()
    await worker.run_once()
    job = await row(ctx, "broken")
    assert job.status == jobs.DEAD and job.attempts == MAX_ATTEMPTS
    [notice] = messenger.texts("post", "CDUTY")
    assert "test.broken" in notice and f"{MAX_ATTEMPTS} attempts" in notice
    assert f"boom {MAX_ATTEMPTS}" in notice


async def test_retry_after_wins_over_a_shorter_backoff_and_pauses_delivery(
        ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    worker = Worker(ctx, messenger, name="w")
    messenger.failures = [DeliveryError("chat.postMessage: ratelimited", retry_after=30)]
    async with ctx.db.transaction() as s:
        await outbox.post(s, clock.now, channel="C1", text="hello", key="hello")
    await worker.run_once()
    job = await row(ctx, "msg:hello")
    assert job.status == jobs.PENDING and job.due_at == clock.now + timedelta(seconds=30)
    assert job.last_error == "chat.postMessage: ratelimited"
    # every channel now waits out the 429, not only the one that met it: longer than a
    # job may hold its lease, so another channel's message would go back for later too
    with pytest.raises(Later) as caught:
        worker.pacer.reserve("C2")
    assert caught.value.delay > 25


async def test_a_pacing_wait_and_a_missing_dependency_retry_soon_without_counting(
        ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    async def paced(jctx: JobContext, job: Job) -> None:
        raise Later(7.5)

    async def early(jctx: JobContext, job: Job) -> None:
        raise NotReady("the card is not there yet")

    registry = with_kind("test.paced", paced)
    registry.add("test.early", early)
    worker = Worker(ctx, messenger, registry=registry, name="w")
    await enqueue(ctx, "test.paced", "paced")
    await enqueue(ctx, "test.early", "early")
    await worker.run_once()
    waited = await row(ctx, "paced")
    assert waited.status == jobs.PENDING and waited.attempts == 0  # a wait is not a try
    assert waited.due_at == clock.now + timedelta(seconds=7.5)
    not_ready = await row(ctx, "early")
    assert not_ready.status == jobs.PENDING and not_ready.attempts == 1
    assert not_ready.due_at == clock.now + timedelta(seconds=1)


async def test_a_permanent_delivery_error_is_not_retried(
        ctx: AppContext, messenger: RecordingMessenger) -> None:
    worker = Worker(ctx, messenger, name="w")
    messenger.failures = [DeliveryError("channel_not_found", permanent=True)]
    async with ctx.db.transaction() as s:
        await outbox.post(s, ctx.clock(), channel="CGONE", text="hello", key="gone")
    await worker.run_once()
    await worker.run_once()
    assert (await row(ctx, "msg:gone")).status == jobs.DEAD
    [notice] = messenger.texts("post", "CDUTY")
    assert "channel_not_found" in notice


async def test_atomic_jobs_commit_their_effects_with_their_completion(
        ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    sessions: list[object] = []

    async def effect(jctx: JobContext, job: Job) -> dict[str, Any]:
        sessions.append(jctx.tx)
        await jobs.enqueue(jctx.tx, "test.effect", clock.now + timedelta(days=1), {},
                           f"effect:{job.key}", clock.now)
        if job.payload.get("fail"):
            raise RuntimeError("effect failed")
        return {"outcome": "done"}

    worker = Worker(ctx, messenger, registry=with_kind("test.atomic", effect, atomic=True),
                    name="w")
    await enqueue(ctx, "test.atomic", "a1")
    await enqueue(ctx, "test.atomic", "a2")
    await worker.run_once()
    # due together: one transaction for both
    assert len(sessions) == 2 and sessions[0] is sessions[1]
    for key in ("a1", "a2"):
        assert (await row(ctx, key)).result == {"outcome": "done"}
        assert (await row(ctx, f"effect:{key}")).status == jobs.PENDING

    await enqueue(ctx, "test.atomic", "bad", {"fail": True})
    await worker.run_once()
    assert (await row(ctx, "bad")).status == jobs.PENDING  # back for a retry
    async with ctx.db.transaction() as s:
        assert await jobs.get_by_key(s, "effect:bad") is None  # its effect rolled back


async def test_a_job_claimed_with_a_first_job_can_wait_for_it(
        ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    order: list[str] = []

    async def slow_first(jctx: JobContext, job: Job) -> None:
        await asyncio.sleep(0.05)
        order.append("first")

    async def waits(jctx: JobContext, job: Job) -> None:
        await jctx.settled(f"dep:{job.payload['dep']}")
        order.append("after")

    registry = with_kind("test.first", slow_first, first=True,
                         tag=lambda job: f"dep:{job.payload['dep']}")
    registry.add("test.waits", waits)
    worker = Worker(ctx, messenger, registry=registry, name="w")
    # the waiting job is due earlier and claimed first; it still finishes after the other
    await enqueue(ctx, "test.waits", "w", {"dep": 1}, delay=timedelta(seconds=-1))
    await enqueue(ctx, "test.first", "f", {"dep": 1})
    assert await worker.run_once() == 2
    assert order == ["first", "after"]
    # nothing in flight: nothing to wait for
    await JobContext(ctx, messenger, clock.now).settled("dep:1")


async def test_messages_asleep_for_a_paced_channel_leave_the_batch_to_other_channels(
        ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    """A burst of notices to one channel (the duty channel in an outage) waits for that
    channel's pace; a message to another channel (a new case's card) claimed after them
    goes out meanwhile, not after the burst has trickled out of a full batch."""
    sent: list[str] = []

    async def send(jctx: JobContext, job: Job) -> None:
        channel = str(job.payload["channel"])
        await jctx.pacer.slot(channel)
        sent.append(channel)

    worker = Worker(ctx, messenger, registry=with_kind("test.send", send), name="w", batch=2)
    worker.pacer = Pacer(0.5, 1, max_wait=10.0)
    for i in range(5):
        await enqueue(ctx, "test.send", f"slow{i}", {"channel": "CSLOW"},
                      delay=timedelta(milliseconds=i))
    await enqueue(ctx, "test.send", "fast", {"channel": "CFAST"},
                  delay=timedelta(milliseconds=10))
    clock.advance(seconds=1)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            if "CFAST" in sent:
                break
            await asyncio.sleep(0.05)
        # with the batch full of sleepers it would go out after four of them
        assert "CFAST" in sent and sent.index("CFAST") <= 2, sent
    finally:
        worker.stop()
        await task
