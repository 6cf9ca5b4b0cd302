"""Faults: connection resets, a breach storm, the SQLite file locked by another process,
PostgreSQL restarted under a running bot, and SIGKILL during a broadcast and a report."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from bot.adapters.slack.app import make_client
from bot.adapters.slack.messenger import SlackMessenger
from bot.services.base import AppContext
from bot.worker import Worker
from handlers.core import Router
from storage.repos import Cases
from testkit.chat import ACME_CH, CUSTOMER, Chat, seed
from testkit.fake_slack import FakeSlack
from testkit.fakes import Clock, RecordingMessenger, notice_refs
from testkit.procs import BotProcess
from testkit.seed import ACME, fast_catalog, seed_groups, seed_world
from testkit.slack_harness import BotServer, RemoteBot


def duty_breaches(fake: FakeSlack) -> list[str]:
    """The cases listed as breached in the duty channel's messages as they read now (a
    notice alone, or a digest's lines)."""
    return [ref.group() for text in fake.reads_now("CDUTY") for line in text.splitlines()
            if ":rotating_light:" in line and (ref := re.search(r"\bCS-\d+\b", line))]


async def test_connection_resets_delay_but_never_lose_or_double(
        sctx: AppContext, router: Router, fake: FakeSlack, clock: Clock) -> None:
    worker = Worker(sctx, SlackMessenger(make_client(sctx.settings, retries=False)), name="r")
    await worker.run_once()
    fake.fail("chat.postMessage", -1, times=2, channel=ACME_CH)
    await Chat(sctx, router)(CUSTOMER, ACME_CH, "/support open S2 reset test")
    for _ in range(6):
        await worker.run_once()
        clock.advance(seconds=5)
    cards = [b for b in fake.posts_to(ACME_CH) if b.get("blocks") and
             "card ack" in str(b["blocks"])]
    assert len(cards) == 1
    assert [c.status for c in fake.calls if c.status == -1] == [-1, -1]


async def test_a_breach_storm_sends_each_notice_once(ctx: AppContext, router: Router,
                                                     messenger: RecordingMessenger,
                                                     clock: Clock) -> None:
    chat = Chat(ctx, router)
    await seed(chat)
    for i in range(150):
        await chat(CUSTOMER, ACME_CH, f"/support open S1 storm {i}")
    clock.advance(minutes=11)
    workers = [Worker(ctx, messenger, name=f"w{i}", batch=40) for i in range(3)]
    for _ in range(6):
        await asyncio.gather(*(w.run_once() for w in workers))
        clock.advance(seconds=2)
    # one digest per recipient, updated in place, listing each case once
    refs = Counter(f"CS-{1001 + i}" for i in range(150))
    assert notice_refs(messenger)["CDUTY"] == refs


async def test_sqlite_locked_by_another_process_then_the_command_completes(
        sctx: AppContext, router: Router, fake: FakeSlack, tmp_path: Path) -> None:
    if not sctx.db.is_sqlite:
        pytest.skip(reason="a file lock is a SQLite matter")
    db_file = sctx.db.url.split("///", 1)[1]
    # a plain child that holds the lock; the test reads its "locked" line synchronously
    holder = subprocess.Popen([sys.executable, "-c", (  # noqa: ASYNC220
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({db_file!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(2.5)\n"
        "c.execute('ROLLBACK')\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    bot = BotServer(sctx, router, fake)
    await bot.start()
    try:
        resp = await bot.command("support", "open S3 while locked", user=CUSTOMER,
                                 channel=ACME_CH)
        assert resp.status == 200  # acked in time (empty), answered once the lock is gone
        status, _ = await bot.get("/healthz")
        assert status == 200
        body = await resp.text()
        reply = body or (await fake.wait_for(lambda: fake.responses, limit=30))[0]["text"]
        assert "CS-1001" in str(reply)
    finally:
        await bot.close()
        holder.wait(timeout=10)
    async with sctx.db.transaction() as s:
        assert await Cases(s).count() == 1


@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None,
                    reason="needs pg_ctlcluster to restart the local PostgreSQL")
async def test_postgresql_restart_under_a_running_bot(fake: FakeSlack, tmp_path: Path,
                                                      pg_database: str) -> None:
    await seed_world(pg_database)
    bot = BotProcess(database_url=pg_database, api_url=fake.api_url,
                     catalog=fast_catalog(tmp_path), log=tmp_path / "bot.log")
    await bot.start()
    remote = RemoteBot(bot.url, fake)
    await remote.start()
    try:
        assert (await remote.command("support", "open S1 before", user="UCUST",
                                     channel=ACME)).status == 200
        version = sorted(os.listdir("/etc/postgresql"))[0]
        stop = await asyncio.create_subprocess_exec(
            "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast")
        await stop.wait()
        try:
            async with aiohttp.ClientSession() as http, \
                    http.get(bot.url + "/readyz") as resp:
                assert resp.status == 503  # the truth: the database is not reachable
            async with aiohttp.ClientSession() as http, \
                    http.get(bot.url + "/healthz") as resp:
                assert resp.status == 200  # the process itself is alive
        finally:
            start = await asyncio.create_subprocess_exec(
                "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start")
            await start.wait()
        for _ in range(100):
            async with aiohttp.ClientSession() as http, \
                    http.get(bot.url + "/readyz") as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.1)
        assert (await remote.command("support", "open S1 after", user="UCUST",
                                     channel=ACME)).status == 200
        # both cases breach (4 s targets) exactly once: the worker recovered by itself
        await fake.wait_for(lambda: set(duty_breaches(fake)) >= {"CS-1001", "CS-1002"},
                            limit=40)
        await asyncio.sleep(1)
        assert sorted(duty_breaches(fake)) == ["CS-1001", "CS-1002"]  # once each
    finally:
        assert remote.http is not None
        await remote.http.close()
        bot.stop()


async def test_sigkill_during_a_broadcast_and_a_report_then_restart(
        fake: FakeSlack, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await seed_world(url)
    await seed_groups(url, 30)
    bot = BotProcess(database_url=url, api_url=fake.api_url, catalog=fast_catalog(tmp_path),
                     log=tmp_path / "bot.log",
                     extra_env={"SUPPORTBOT_CHANNEL_INTERVAL": "0.2"})
    await bot.start()
    remote = RemoteBot(bot.url, fake)
    await remote.start()
    try:
        await remote.command("tam", "staff add <user:UTAM> tam", user="UADMIN", channel="CX")
        resp = await remote.command("tam", 'advisory attack critical "DDoS wave" "Enable '
                                    'scrubbing" confirm', user="UADMIN", channel="CX")
        assert "on its way to 31 groups" in await resp.text()
        await remote.command("tam", "report acme 2026-10", user="UADMIN", channel="CX")
        await fake.wait_for(lambda: len([b for b in fake.of("chat.postMessage")
                                         if "DDoS wave" in str(b.get("text"))]) >= 5)
        bot.kill()
        await bot.start()
        await fake.wait_for(lambda: len({b["channel"] for b in fake.of("chat.postMessage")
                                         if "DDoS wave" in str(b.get("text"))}) == 31, limit=60)
        await fake.wait_for(lambda: [b for b in fake.posts_to(ACME)
                                     if "Monthly service report" in str(b.get("text"))],
                            limit=30)
        await asyncio.sleep(1.5)
    finally:
        assert remote.http is not None
        await remote.http.close()
        bot.stop()
    per_channel: dict[str, int] = {}
    for b in fake.of("chat.postMessage"):
        if "DDoS wave" in str(b.get("text")):
            per_channel[b["channel"]] = per_channel.get(b["channel"], 0) + 1
    assert set(per_channel.values()) == {1}
    reports = [b for b in fake.posts_to(ACME) if "Monthly service report" in str(b.get("text"))]
    assert len(reports) == 1
