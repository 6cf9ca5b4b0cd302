"""The worst minute: a regional outage. Hundreds of bound groups open S1 cases within a few
seconds, then the same cases near-breach and breach together.

The bot runs in its own process(es) (`supportbot run`, requests spread over the replicas)
against the fake Slack enforcing one message per second per channel (short bursts allowed,
as Slack does) and a workspace rate. The storm's second half moves the SLA clocks of every
case forward in the database (as `bench/timers.py` does): the near-breach timers fall due at
one moment T and the breaches 10 s later, as when the targets of cases opened together run
out together.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select, text, update

from bench.common import SECRET, Server, drop_pg_database, new_pg_database, quantiles, spawn
from bot.domain.model import Lang, Role, StaffMember
from storage.db import JOBS_CHANNEL, Database
from storage.jobs import PENDING
from storage.repos import Staff
from storage.tables import AccountRow, CaseRow, JobRow
from testkit.fake_slack import FakeSlack

DUTY = "CDUTY"
WARN_TO_BREACH = timedelta(seconds=10)


@dataclass
class StormResult:
    backend: str
    replicas: int
    groups: int
    latencies: list[float]
    empty_acks: int
    fallbacks: int
    cpu_ms_per_command: float
    cards_s: float | None
    drained_s: float | None  # T -> the last TAM/duty message, when every notice went out
    waited_s: float
    notices: int  # near-breach and breach notice jobs
    notices_pending: int  # still pending when the wait ended
    expired: int  # near-breach warnings dropped because their deadline passed first
    late: int  # notices delivered more than 60 s after their due time
    per_tam: list[int]  # messages each TAM got after T
    duty_messages: int
    jobs: dict[str, int]  # "kind status" -> count, when the wait ended
    failed: dict[str, int]  # requests not answered 200, by what went wrong


async def seed(url: str, groups: int, tams: int) -> None:
    """`groups` enterprise accounts with one bound group each (`CG0000`…), shared by `tams`
    TAMs round robin."""
    from bench.common import seed_accounts

    await seed_accounts(url, groups)
    db = Database(url)
    now = datetime.now(UTC)
    async with db.transaction() as s:
        for t in range(tams):
            await Staff(s).upsert(StaffMember("T1", f"UTAM{t}", Role.TAM, Lang.EN), "bench",
                                  now)
        keys = (await s.scalars(select(AccountRow.key).order_by(AccountRow.key))).all()
        for i, key in enumerate(keys):
            await s.execute(update(AccountRow).where(AccountRow.key == key)
                            .values(tam_user_id=f"UTAM{i % tams}"))
    await db.close()


async def open_storm(servers: list[Server], fake: FakeSlack, groups: int, spread: float
                     ) -> tuple[list[float], int, Counter[str]]:
    """`/support open S1` from every group, arriving evenly within `spread` seconds, each to
    the next replica; latencies, how many were acked empty (reply via response_url) and
    the failed requests by what went wrong."""
    signer = SignatureVerifier(SECRET)
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    empty = 0
    failed: Counter[str] = Counter()

    async def one(http: aiohttp.ClientSession, i: int, at: float) -> None:
        nonlocal empty
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        body = urlencode({"team_id": "T1", "channel_id": f"CG{i:04d}",
                          "user_id": f"UCUST{i:04d}", "command": "/support",
                          "text": f"open S1 region outage, group {i}",
                          "response_url": fake.response_url(f"storm-{run}-{i}"),
                          "trigger_id": f"{run}.{i}"})
        ts = str(int(time.time()))
        headers = {"X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": str(signer.generate_signature(timestamp=ts, body=body)),
                   "Content-Type": "application/x-www-form-urlencoded"}
        start = time.perf_counter()
        url = servers[i % len(servers)].url + "/slack/events"
        try:
            async with http.post(url, data=body, headers=headers) as resp:
                answer = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            failed[type(exc).__name__] += 1
            return
        latencies.append(time.perf_counter() - start)
        if status != 200:
            failed[f"HTTP {status}"] += 1
        elif not answer.strip():
            empty += 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        t0 = time.perf_counter() + 0.2
        await asyncio.gather(*(one(http, i, t0 + spread * i / max(1, groups))
                               for i in range(groups)))
    return latencies, empty, failed


async def pending(db: Database, *, kind: str | None = None, due_by: datetime | None = None
                  ) -> int:
    async with db.read() as s:
        q = select(func.count()).select_from(JobRow).where(JobRow.status == PENDING)
        if kind is not None:
            q = q.where(JobRow.kind == kind)
        if due_by is not None:
            q = q.where(JobRow.due_at <= due_by)
        return int(await s.scalar(q) or 0)


async def run_storm(backend: str, replicas: int, groups: int, tams: int, spread: float,
                    wait: float, logs: Path) -> StormResult:
    url = await new_pg_database() if backend == "postgresql" else \
        f"sqlite+aiosqlite:///{logs / f'storm-{replicas}.db'}"
    fake = FakeSlack()
    fake.channel_interval, fake.channel_burst, fake.workspace_rate = 1.0, 3, 100.0
    await fake.start()
    servers: list[Server] = []
    try:
        await seed(url, groups, tams)
        env = {"SLACK_API_URL": fake.api_url, "DATABASE_URL": url,
               "SUPPORTBOT_DUTY_CHANNEL": DUTY, "SUPPORTBOT_POLL_SECONDS": "1",
               "SUPPORTBOT_WORKSPACE_RATE": f"{fake.workspace_rate / replicas:g}"}
        servers = [spawn(["-m", "bot.cli", "run"], env, logs / f"storm-{backend}-{i}.log")
                   for i in range(replicas)]
        for server in servers:
            await server.ready()
        db = Database(url)
        try:
            cpu0 = sum(s.cpu() for s in servers)
            latencies, empty, failed = await open_storm(servers, fake, groups, spread)
            cpu_ms = (sum(s.cpu() for s in servers) - cpu0) * 1e3 / groups
            start = time.perf_counter()
            cards_s = None
            while time.perf_counter() - start < 60:
                if await pending(db, kind="card.sync") == 0:
                    cards_s = time.perf_counter() - start
                    break
                await asyncio.sleep(0.25)
            fallbacks = sum(1 for r in fake.responses if r)
            # the SLA clocks run out together: near-breach at T, breach 10 s later
            t = datetime.now(UTC) + timedelta(seconds=1)
            async with db.transaction() as s:
                await s.execute(update(CaseRow).values(warn_at=t, due_at=t + WARN_TO_BREACH))
                await s.execute(update(JobRow).where(JobRow.kind == "sla.warn",
                                                     JobRow.status == PENDING)
                                .values(due_at=t))
                await s.execute(update(JobRow).where(JobRow.kind == "sla.breach",
                                                     JobRow.status == PENDING)
                                .values(due_at=t + WARN_TO_BREACH))
                if backend == "postgresql":
                    await s.execute(text("SELECT pg_notify(:ch, '')"), {"ch": JOBS_CHANNEL})
            calls_before = len(fake.calls)
            t_wall = t.timestamp()
            drained_s = None
            began = time.perf_counter()
            while time.perf_counter() - began < wait:
                await asyncio.sleep(0.5)
                now = datetime.now(UTC)
                if now < t + WARN_TO_BREACH or await pending(db, kind="sla.breach") or \
                        await pending(db, kind="sla.warn"):
                    continue
                if await pending(db, kind="msg.post", due_by=now + timedelta(seconds=5)) == 0:
                    notice_calls = [c for c in fake.calls[calls_before:]
                                    if c.method == "chat.postMessage" and c.ok and
                                    str(c.body.get("channel", ""))[:1] in ("D", DUTY[0])]
                    last = max((c.wall for c in notice_calls), default=t_wall)
                    drained_s = last - t_wall
                    break
            waited = time.perf_counter() - began
            async with db.read() as s:
                rows = (await s.execute(select(JobRow.idempotency_key, JobRow.status,
                                               JobRow.result)
                                        .where(JobRow.kind == "msg.post"))).all()
                counts = (await s.execute(select(JobRow.kind, JobRow.status, func.count())
                                          .group_by(JobRow.kind, JobRow.status))).all()
            notice_rows = [r for r in rows if ":warn:" in r[0] or ":breach:" in r[0]]
            expired = sum(1 for r in notice_rows
                          if isinstance(r[2], dict) and r[2].get("outcome") == "expired")
            still = sum(1 for r in notice_rows if r[1] == PENDING)
            late = 0
            per_tam: Counter[str] = Counter()
            duty = 0
            for c in fake.calls[calls_before:]:
                if c.method != "chat.postMessage" or not c.ok:
                    continue
                channel = str(c.body.get("channel", ""))
                if channel.startswith("DUTAM"):
                    per_tam[channel] += 1
                elif channel == DUTY:
                    duty += 1
                key = str(((c.body.get("metadata") or {}).get("event_payload") or {})
                          .get("key", ""))
                due = t_wall + (WARN_TO_BREACH.total_seconds() if ":breach:" in key else 0.0)
                if (":warn:" in key or ":breach:" in key) and c.wall - due > 60:
                    late += 1
            return StormResult(
                backend, replicas, groups, latencies, empty, fallbacks, cpu_ms, cards_s,
                drained_s, waited, len(notice_rows), still, expired, late,
                sorted(per_tam.get(f"DUTAM{i}", 0) for i in range(tams)), duty,
                {f"{k} {st}": int(n) for k, st, n in counts}, dict(failed))
        finally:
            await db.close()
    finally:
        for server in servers:
            server.stop()
        await fake.close()
        if backend == "postgresql":
            await drop_pg_database(url)


def figures(r: StormResult) -> tuple[str, str]:
    p50, p99, mx = quantiles(r.latencies)
    over = sum(1 for lat in r.latencies if lat > 3.0)
    opened = (f"{len(r.latencies)} opened: ack p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms, "
              f"max {mx * 1e3:.0f} ms; {over} over 3 s; {r.fallbacks} response_url "
              f"fallbacks; bot CPU {r.cpu_ms_per_command:.1f} ms/command")
    if r.failed:
        opened += "; FAILED: " + ", ".join(f"{n} {what}" for what, n in sorted(r.failed.items()))
    cards = f"cards {r.cards_s:.1f} s" if r.cards_s is not None else "cards not all out in 60 s"
    if r.drained_s is not None:
        drained = f"every notice out {r.drained_s:.0f} s after the near-breach time"
    else:
        drained = (f"{r.notices_pending} of {r.notices} notices still queued after "
                   f"{r.waited_s:.0f} s")
    tam = (f"{min(r.per_tam)}–{max(r.per_tam)} messages per TAM" if r.per_tam else "no TAMs")
    storm = (f"{drained}; {r.late} delivered over 60 s late, {r.expired} near-breach "
             f"warnings expired; {tam}, {r.duty_messages} to the duty channel; {cards}")
    return opened, storm
