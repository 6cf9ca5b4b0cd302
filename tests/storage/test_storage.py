"""Repositories and the job table on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from bot.domain.model import Account, Lang, LedgerEntry, Role, StaffMember, Term, Tier
from storage import jobs
from storage.db import BACKGROUND, Database
from storage.repos import ANY_TEAM, Accounts, Bindings, Inbox, PerkLedger, Staff, Usage
from storage.tables import InboxRow

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def acme() -> Account:
    return Account(key="acme", name="Acme", tier=Tier.ENTERPRISE, term=Term.ANNUAL,
                   start=date(2026, 1, 1), end=date(2027, 1, 1), region="cn-north-4",
                   timezone="Asia/Shanghai", lang=Lang.ZH, perk_tier=Tier.BUSINESS)


async def test_accounts_and_bindings_round_trip(db: Database) -> None:
    async with db.transaction() as s:
        await Accounts(s).add(acme(), T0)
        await Bindings(s).bind("T1", "C1", "acme", "U1", T0)
    async with db.transaction() as s:
        assert await Accounts(s).get("acme") == acme()
        assert await Bindings(s).account_for("C1") == acme()
        assert await Bindings(s).account_for("C2") is None
        assert await Bindings(s).channels_of("acme") == ["C1"]


async def test_staff_wildcard_team_and_language_preference(db: Database) -> None:
    async with db.transaction() as s:
        await Staff(s).upsert(StaffMember(ANY_TEAM, "U1", Role.TAM), "cli", T0)
        assert (await Staff(s).get("T9", "U1")).role is Role.TAM  # type: ignore[union-attr]
        assert await Staff(s).set_lang("T9", "U1", Lang.ZH, T0) is None
        assert (await Staff(s).get("T9", "U1")).lang is Lang.ZH  # type: ignore[union-attr]
        assert await Staff(s).set_lang("T9", "UX", Lang.ZH, T0) is None
        assert await Staff(s).get("T9", "UX") is None  # a preference grants no role


async def test_enqueue_is_idempotent_by_key(db: Database) -> None:
    async with db.transaction() as s:
        assert await jobs.enqueue(s, "msg.post", T0, {"a": 1}, "k1", T0)
        assert not await jobs.enqueue(s, "msg.post", T0, {"a": 2}, "k1", T0)
    async with db.transaction() as s:
        assert await jobs.count(s) == 1
        row = await jobs.get_by_key(s, "k1")
        assert row is not None and row.payload == {"a": 1}


async def test_claim_lease_expiry_and_lost_lease(db: Database) -> None:
    async with db.transaction() as s:
        for i in range(3):
            await jobs.enqueue(s, "msg.post", T0 + timedelta(seconds=i), {}, f"k{i}", T0)
    async with db.transaction() as s:
        assert await jobs.claim(s, T0 - timedelta(seconds=1), "w1", timedelta(seconds=30),
                                10) == []  # nothing due yet
        got = await jobs.claim(s, T0 + timedelta(seconds=5), "w1", timedelta(seconds=30), 2)
    assert [j.key for j in got] == ["k0", "k1"] and all(j.attempts == 1 for j in got)
    async with db.transaction() as s:
        # leased rows are not handed out again until the lease runs out
        again = await jobs.claim(s, T0 + timedelta(seconds=6), "w2", timedelta(seconds=30), 10)
        assert [j.key for j in again] == ["k2"]
        assert await jobs.next_due(s) == T0 + timedelta(seconds=35)
    async with db.transaction() as s:
        late = await jobs.claim(s, T0 + timedelta(seconds=40), "w2", timedelta(seconds=30), 10)
    assert sorted(j.key for j in late) == ["k0", "k1", "k2"]
    assert {j.attempts for j in late if j.key != "k2"} == {2}
    async with db.transaction() as s:
        # w1 lost its lease on k0 to w2: its completion must not count
        assert not await jobs.finish(s, got[0].id, "w1", T0 + timedelta(seconds=41))
        assert await jobs.finish(s, got[0].id, "w2", T0 + timedelta(seconds=41))
        assert await jobs.count(s, status=jobs.DONE) == 1


async def test_concurrent_claimers_get_disjoint_jobs(db: Database) -> None:
    async with db.transaction() as s:
        for i in range(60):
            await jobs.enqueue(s, "msg.post", T0, {}, f"k{i}", T0)

    async def claimer(name: str) -> list[str]:
        keys: list[str] = []
        while True:
            async with db.transaction() as s:
                got = await jobs.claim(s, T0, name, timedelta(seconds=60), 7)
            if not got:
                return keys
            keys += [j.key for j in got]

    results = await asyncio.gather(*(claimer(f"w{i}") for i in range(4)))
    claimed = [k for keys in results for k in keys]
    assert sorted(claimed) == sorted(f"k{i}" for i in range(60))  # each exactly once


async def test_cancel_only_touches_pending(db: Database) -> None:
    async with db.transaction() as s:
        await jobs.enqueue(s, "sla.warn", T0, {}, "a", T0)
        await jobs.enqueue(s, "sla.breach", T0, {}, "b", T0)
        got = await jobs.claim(s, T0, "w", timedelta(seconds=30), 1)
        await jobs.finish(s, got[0].id, "w", T0)
        await jobs.cancel(s, ["a", "b"])
        assert await jobs.count(s, status=jobs.DONE) == 1
        assert await jobs.count(s, status=jobs.CANCELLED) == 1


async def test_inbox_and_usage(db: Database) -> None:
    async with db.transaction() as s:
        await Accounts(s).add(acme(), T0)
        assert await Inbox(s).first_time("Ev1", T0)
        assert not await Inbox(s).first_time("Ev1", T0)
        assert await Usage(s).set("acme", "2026-11", 500, "U1", T0) is None
        assert await Usage(s).set("acme", "2026-11", 700, "U1", T0) == 500
        assert await Usage(s).get("acme", "2026-11") == 700


async def test_perk_ledger_totals_per_plan_year(db: Database) -> None:
    async with db.transaction() as s:
        await Accounts(s).add(acme(), T0)
        ledger = PerkLedger(s)
        year, older = date(2026, 1, 1), date(2025, 1, 1)
        await ledger.entry("acme", "escort", year, LedgerEntry.HOLD, 2, 1, T0)
        await ledger.entry("acme", "escort", year, LedgerEntry.RELEASE, 2, 1, T0)
        await ledger.entry("acme", "escort", year, LedgerEntry.CONSUME, 2, 1, T0)
        await ledger.entry("acme", "escort", year, LedgerEntry.HOLD, 1, 2, T0)
        await ledger.entry("acme", "escort", older, LedgerEntry.CONSUME, 3, 3, T0)
        assert await ledger.totals("acme", year) == ({"escort": 1}, {"escort": 2})


async def test_a_pacing_wait_gives_the_attempt_back(db: Database) -> None:
    async with db.transaction() as s:
        await jobs.enqueue(s, "msg.post", T0, {}, "paced", T0)
        (job,) = await jobs.claim(s, T0, "w", timedelta(seconds=30), 1)
        await jobs.retry(s, job.id, "w", T0 + timedelta(seconds=5), "paced", uncount=True)
    async with db.transaction() as s:
        (again,) = await jobs.claim(s, T0 + timedelta(seconds=6), "w", timedelta(seconds=30), 1)
    assert job.attempts == 1 and again.attempts == 1  # not 2: waiting is not failing


async def test_reader_connections_cannot_write(db: Database) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    if not db.is_sqlite:
        pytest.skip(reason="PostgreSQL reads share the writers' pool")
    with pytest.raises(OperationalError):
        async with db.read() as s:
            await s.execute(text("DELETE FROM inbox"))


async def test_a_rolled_back_savepoint_forgets_the_jobs_it_enqueued(db: Database) -> None:
    """A use case inside a command is a savepoint: when it fails, its jobs are gone, and the
    same job enqueued later in the command must be added, not skipped as added already."""
    async with db.transaction() as s:
        with pytest.raises(RuntimeError):
            async with db.transaction() as inner:
                assert await jobs.enqueue(inner, "msg.post", T0, {"try": 1}, "k", T0)
                raise RuntimeError("the use case failed after queueing")
        async with db.transaction() as inner:
            assert await jobs.enqueue(inner, "msg.post", T0, {"try": 2}, "k", T0)
        # what a savepoint that stands noted stays noted: no second row in the same command
        assert not await jobs.enqueue(s, "msg.post", T0, {"try": 3}, "k", T0)
    async with db.read() as s:
        row = await jobs.get_by_key(s, "k")
        assert row is not None and row.payload == {"try": 2}


async def test_jobs_queued_in_a_savepoint_wake_the_worker_when_the_command_commits(
        db: Database) -> None:
    db.jobs_changed.clear()
    async with db.transaction():
        async with db.transaction() as inner:
            await jobs.enqueue(inner, "msg.post", T0, {}, "k", T0)
        assert not db.jobs_changed.is_set()  # not yet visible to the worker's claim
    assert db.jobs_changed.is_set()


async def test_a_conflict_in_a_savepoint_undoes_only_the_savepoint(db: Database) -> None:
    """A duplicate caught by a use case (a replayed event, a double click) rolls back its own
    savepoint; the command's earlier and later work commits, on both databases."""
    async with db.transaction() as s:
        assert await Inbox(s).first_time("before", T0)
        await s.flush()
        s.expunge_all()  # the duplicate must reach the database, not the identity map
        with pytest.raises(IntegrityError):
            async with db.transaction() as inner:
                await Inbox(inner).first_time("mine", T0)
                inner.add(InboxRow(event_id="before", received_at=T0))
        assert await Inbox(s).first_time("after", T0)
    async with db.read() as s:
        assert [await Inbox(s).seen(e) for e in ("before", "mine", "after")] == \
            [True, False, True]


async def test_on_sqlite_a_command_waiting_for_the_writer_goes_before_the_worker(
        db: Database) -> None:
    """SQLite has one writer: a worker transaction queued first still lets a command that
    queued after it write first (PostgreSQL has no such queue)."""
    if not db.is_sqlite:
        pytest.skip(reason="the writer queue is SQLite's; PostgreSQL has many writers")
    order: list[str] = []
    release, holding = asyncio.Event(), asyncio.Event()

    async def write(name: str, background: bool, hold: asyncio.Event | None = None) -> None:
        BACKGROUND.set(background)
        async with db.transaction() as s:
            await Inbox(s).first_time(name, T0)
            order.append(name)
            if hold is not None:
                holding.set()
                await hold.wait()

    first = asyncio.create_task(write("command-1", False, release))
    await holding.wait()
    worker = asyncio.create_task(write("worker", True))
    await asyncio.sleep(0.05)  # the worker's transaction is queued
    command = asyncio.create_task(write("command-2", False))
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(first, worker, command)
    assert order == ["command-1", "command-2", "worker"]


async def test_on_sqlite_another_process_commit_wakes_the_worker(db: Database) -> None:
    """A worker apart from the commands (another process; here another engine on the same
    file, with its own wake-up event) hears of their commits by watching the file; its own
    claims that find nothing and its reads do not wake it, and the watch ends with its
    block."""
    if not db.is_sqlite:
        pytest.skip(reason="PostgreSQL workers LISTEN for the commands' NOTIFY")
    web = Database(db.url)
    try:
        async with db.commits_watched(interval=0.01):
            db.jobs_changed.clear()
            async with web.transaction() as s:
                await jobs.enqueue(s, "msg.post", T0, {}, "from-web", T0)
            await asyncio.wait_for(db.jobs_changed.wait(), 10)

            db.jobs_changed.clear()
            async with db.transaction() as s:  # nothing due yet: the claim changes nothing
                assert await jobs.claim(s, T0 - timedelta(days=1), "w",
                                        timedelta(seconds=30), 10) == []
            async with db.read() as s:
                assert await jobs.next_due(s) == T0
            await asyncio.sleep(0.1)  # ten looks
            assert not db.jobs_changed.is_set()
        async with web.transaction() as s:
            await jobs.enqueue(s, "msg.post", T0, {}, "after", T0)
        await asyncio.sleep(0.05)
        assert not db.jobs_changed.is_set()
    finally:
        await web.close()
