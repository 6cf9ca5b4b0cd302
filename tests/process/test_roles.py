"""`supportbot run --role web` and `--role worker` as two processes on one database: the
web process acks commands and runs no worker; the worker process posts what they queue,
woken across processes (SQLite: it watches for commits; PostgreSQL: LISTEN/NOTIFY), long
before its safety poll."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import aiohttp
from sqlalchemy import select

from storage.db import Database
from storage.tables import JobRow
from testkit.fake_slack import FakeSlack
from testkit.procs import BotProcess
from testkit.seed import ACME, seed_world
from testkit.slack_harness import RemoteBot

# the worker's safety poll: far longer than any wait below, so a card posted in time was
# posted because the worker was woken, not because it polled
SLOW_POLL = {"SUPPORTBOT_POLL_SECONDS": "60"}


def card_refs(fake: FakeSlack) -> list[str]:
    """The case refs of the case cards posted to the customer's channel, in order."""
    refs = []
    for body in fake.posts_to(ACME):
        header = next((b for b in body.get("blocks") or [] if b.get("type") == "header"), None)
        if header:
            refs.append(header["text"]["text"].split()[0])
    return refs


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def test_web_and_worker_processes_on_one_sqlite_file(fake: FakeSlack,
                                                            tmp_path: Path) -> None:
    await split_work(fake, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")


async def test_web_and_worker_processes_on_one_postgresql(fake: FakeSlack, tmp_path: Path,
                                                          pg_database: str) -> None:
    await split_work(fake, tmp_path, pg_database)


async def split_work(fake: FakeSlack, tmp_path: Path, database_url: str) -> None:
    """A case opened through the web process is acked there; its card comes from the
    worker process, which serves health and metrics but no platform callback."""
    await seed_world(database_url)
    # the built-in catalog: the S1 timers are minutes away, so nothing but a wake-up has the
    # worker look again within the test (the fast catalog's timers would)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text((resources.files("bot.domain") / "catalog.yaml").read_text("utf-8"),
                       "utf-8")
    # the role from the environment here, from the flag for the worker below
    web = BotProcess(database_url=database_url, api_url=fake.api_url, catalog=catalog,
                     log=tmp_path / "web.log", extra_env={"SUPPORTBOT_ROLE": "web"})
    # the worker only sends: it is given no signing secret
    worker = BotProcess(database_url=database_url, api_url=fake.api_url, catalog=catalog,
                        log=tmp_path / "worker.log", args=["--role", "worker"],
                        extra_env={**SLOW_POLL, "SLACK_SIGNING_SECRET": ""})
    remote = RemoteBot(web.url, fake)
    db = Database(database_url)
    await web.start()
    await remote.start()
    try:
        resp = await remote.command("support", "open S1 outage one", user="UCUST",
                                    channel=ACME)
        assert resp.status == 200
        assert "CS-1001" in await resp.text()
        # a worker in the web process would post the card at once (its jobs wake it)
        await asyncio.sleep(1.0)
        assert card_refs(fake) == []

        await worker.start()  # its first look finds the card queued before it started
        await fake.wait_for(lambda: card_refs(fake) == ["CS-1001"], limit=10)
        # the first case's jobs done (its Home refresh, up to 2 s on): the worker now
        # sleeps on its 60 s poll, with nothing due for minutes; the second case's jobs
        # reach it within the wait below only if it is woken
        await settled(db)
        resp = await remote.command("support", "open S1 outage two", user="UCUST",
                                    channel=ACME)
        assert resp.status == 200
        assert "CS-1002" in await resp.text()
        await fake.wait_for(lambda: card_refs(fake) == ["CS-1001", "CS-1002"], limit=10)

        # the worker serves health and metrics only, no platform callback
        assert (await get(worker.url + "/healthz"))[0] == 200
        assert (await get(worker.url + "/readyz"))[0] == 200
        status, text = await get(worker.url + "/metrics")
        assert status == 200 and "supportbot_jobs_done_total" in text
        async with aiohttp.ClientSession() as http, http.post(
                worker.url + "/slack/events", data=b"x") as refused:
            assert refused.status == 404
        # the second case's notices too (a worker stopped mid-call waits for it: the fake
        # Slack answers on this test's loop, which waits for the process to stop)
        await settled(db)
    finally:
        assert remote.http is not None
        await remote.http.close()
        worker.stop()
        web.stop()
        await db.close()
    assert "role worker" in worker.log.read_text()
    assert "role web" in web.log.read_text()


async def settled(db: Database) -> None:
    """Wait until no job is due within a minute (the worker's poll): what is due now and
    the Home refreshes (up to 2 s on) are done, the SLA timers minutes away."""
    for _ in range(100):
        soon = datetime.now(UTC) + timedelta(seconds=60)
        async with db.read() as s:
            if not (await s.scalars(select(JobRow.id).where(
                    JobRow.status == "pending", JobRow.due_at < soon))).first():
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the worker's jobs were not done in 10 s")
