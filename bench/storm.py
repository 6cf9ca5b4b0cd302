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
import json
import re
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
from bot.services.digests import BREACH, SYNC, WARN
from storage.db import JOBS_CHANNEL, Database
from storage.jobs import DONE, PENDING
from storage.repos import Staff
from storage.tables import AccountRow, CaseRow, DigestItemRow, DigestRow, JobRow
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
    worker_ms_per_case: float  # the worker processes' CPU until every card was out
    cards_s: float | None
    new_case_pending: int  # new-case notices not yet in their digests at T
    drained_s: float | None  # T -> the sync that showed the last notice, when all were shown
    waited_s: float
    notices: int  # near-breach and breach notices: digest items over every recipient
    delivered: int  # shown in a posted or updated digest message (a warning before its deadline)
    missing: int  # a breach never shown, or a warning never shown at all
    missing_text: int  # breaches whose case is not in their digest's final message text
    expired: int  # near-breach warnings first shown (or never) after their deadline passed
    late: int  # notices shown more than 60 s after their due time
    per_tam: list[tuple[int, int]]  # (digest posts, digest updates) each TAM got after T
    duty: tuple[int, int]  # (digest posts, digest updates) to the duty channel after T
    other_after_t: int  # other messages to TAMs and the duty channel after T (new-case)
    jobs: dict[str, int]  # "kind status" -> count, when the wait ended
    failed: dict[str, int]  # requests not answered 200, by what went wrong


@dataclass(frozen=True)
class Shown:
    """What the database says about the storm's notices (see `digest_figures`)."""

    notices: int
    delivered: int
    missing: int
    expired: int
    late: int
    last: datetime | None  # when the sync showing the last notice finished
    digests: dict[int, tuple[str | None, str | None, list[str]]]  # id -> channel, ts, refs


async def digest_figures(db: Database, t: datetime) -> Shown:
    """Every near-breach and breach notice is a digest item; a digest's version counts its
    items (item i, in order, is in versions i and later), and each `digest.sync` job that
    posted or updated the message records the version it showed. So a notice was shown when
    the first such job with a version at least its place finished. A warning falls due at
    `t`, a breach at its case's deadline (the item's `due_at`); a warning shown only after
    that deadline (the message then leaves it out) is expired, not delivered."""
    async with db.read() as s:
        digest_rows = (await s.execute(select(DigestRow.id, DigestRow.channel, DigestRow.ts)
                                       )).all()
        item_rows = (await s.execute(
            select(DigestItemRow.digest_id, DigestItemRow.kind, DigestItemRow.due_at,
                   DigestItemRow.params).order_by(DigestItemRow.id))).all()
        sync_rows = (await s.execute(select(JobRow.payload, JobRow.result, JobRow.done_at)
                                     .where(JobRow.kind == SYNC, JobRow.status == DONE))
                     ).all()
    shows: dict[int, list[tuple[int, datetime]]] = {}
    for payload, result, done_at in sync_rows:
        if isinstance(result, dict) and result.get("outcome") in ("posted", "updated") and \
                done_at is not None:
            shows.setdefault(int(payload["digest_id"]), []).append(
                (int(result["version"]), _utc(done_at)))
    place: Counter[int] = Counter()
    delivered = missing = expired = late = 0
    last: datetime | None = None
    digests: dict[int, tuple[str | None, str | None, list[str]]] = {
        int(i): (ch, ts, []) for i, ch, ts in digest_rows}
    counted = 0
    for digest_id, kind, due_at, params in item_rows:
        place[digest_id] += 1
        if kind not in (WARN, BREACH):
            continue  # a new case's notice (the storm's opening half), in the same digests
        counted += 1
        due = t if kind == WARN else _utc(due_at)
        seen = min((at for v, at in shows.get(digest_id, []) if v >= place[digest_id]),
                   default=None)
        if kind == BREACH and digest_id in digests:
            digests[digest_id][2].append(str(params.get("ref", "")))
        if seen is None:
            if kind == WARN:
                expired += 1
            else:
                missing += 1
            continue
        if kind == WARN and seen >= _utc(due_at):
            expired += 1
            continue
        delivered += 1
        late += (seen - due).total_seconds() > 60
        last = seen if last is None else max(last, seen)
    return Shown(counted, delivered, missing, expired, late, last, digests)


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


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
    workers: list[Server] = []
    try:
        await seed(url, groups, tams)
        env = {"SLACK_API_URL": fake.api_url, "DATABASE_URL": url,
               "SUPPORTBOT_DUTY_CHANNEL": DUTY, "SUPPORTBOT_POLL_SECONDS": "1",
               "SUPPORTBOT_WORKSPACE_RATE": f"{fake.workspace_rate / replicas:g}"}
        # each replica: an HTTP front (`--role web`) and a worker process (`--role worker`)
        servers = [spawn(["-m", "bot.cli", "run", "--role", "web"], env,
                         logs / f"storm-{backend}-web{i}.log") for i in range(replicas)]
        workers = [spawn(["-m", "bot.cli", "run", "--role", "worker"], env,
                         logs / f"storm-{backend}-worker{i}.log") for i in range(replicas)]
        for server in servers + workers:
            await server.ready()
        db = Database(url)
        try:
            cpu0 = sum(s.cpu() for s in servers)
            wcpu0 = sum(w.cpu() for w in workers)
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
            # the workers' CPU for the opening half: cards, new-case notices, refreshes
            worker_ms = (sum(w.cpu() for w in workers) - wcpu0) * 1e3 / groups
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
            new_case_pending = await pending(db, kind="case.new_notice")
            calls_before = len(fake.calls)
            drained_s = None
            began = time.perf_counter()
            while time.perf_counter() - began < wait:
                await asyncio.sleep(0.5)
                if datetime.now(UTC) < t + WARN_TO_BREACH or \
                        await pending(db, kind="sla.breach") or \
                        await pending(db, kind="sla.warn") or await pending(db, kind=SYNC):
                    continue
                break
            waited = time.perf_counter() - began
            shown = await digest_figures(db, t)
            if shown.notices and not shown.missing and shown.last is not None:
                drained_s = (shown.last - t).total_seconds()
            async with db.read() as s:
                counts = (await s.execute(select(JobRow.kind, JobRow.status, func.count())
                                          .group_by(JobRow.kind, JobRow.status))).all()
            # the fake Slack's side: each digest's final text names every breached case in
            # it; digest posts and updates per TAM and to the duty channel after T
            missing_text = 0
            where: set[tuple[str, str]] = set()
            for channel, ts, refs in shown.digests.values():
                if channel is None or ts is None:
                    missing_text += len(refs)
                    continue
                where.add((channel, ts))
                # the text is cut at Slack's 3,900 characters; the blocks carry all of it
                final = fake.messages.get((channel, ts), "") + \
                    json.dumps(fake.blocks.get((channel, ts), []), ensure_ascii=False)
                missing_text += sum(1 for ref in refs
                                    if not re.search(rf"{re.escape(ref)}(?!\d)", final))
            posts: Counter[str] = Counter()
            updates: Counter[str] = Counter()
            other = 0
            for c in fake.calls[calls_before:]:
                channel = str(c.body.get("channel", ""))
                if not c.ok or not (channel.startswith("DUTAM") or channel == DUTY):
                    continue
                key = str(((c.body.get("metadata") or {}).get("event_payload") or {})
                          .get("key", ""))
                if c.method == "chat.postMessage" and key.startswith("digest:"):
                    posts[channel] += 1
                elif c.method == "chat.update" and (channel, str(c.body.get("ts"))) in where:
                    updates[channel] += 1
                elif c.method == "chat.postMessage":
                    other += 1
            dms = [f"DUTAM{i}" for i in range(tams)]
            return StormResult(
                backend, replicas, groups, latencies, empty, fallbacks, cpu_ms, worker_ms,
                cards_s,
                new_case_pending, drained_s, waited, shown.notices, shown.delivered,
                shown.missing, missing_text, shown.expired, shown.late,
                sorted((posts[d], updates[d]) for d in dms), (posts[DUTY], updates[DUTY]),
                other, {f"{k} {st}": int(n) for k, st, n in counts}, dict(failed))
        finally:
            await db.close()
    finally:
        for server in servers + workers:
            server.stop()
        await fake.close()
        if backend == "postgresql":
            await drop_pg_database(url)


def figures(r: StormResult) -> tuple[str, str]:
    p50, p99, mx = quantiles(r.latencies)
    over = sum(1 for lat in r.latencies if lat > 3.0)
    opened = (f"{len(r.latencies)} opened: ack p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms, "
              f"max {mx * 1e3:.0f} ms; {over} over 3 s; {r.fallbacks} response_url "
              f"fallbacks; web CPU {r.cpu_ms_per_command:.1f} ms/command; worker CPU "
              f"{r.worker_ms_per_case:.1f} ms/case (cards, notices)")
    if r.failed:
        opened += "; FAILED: " + ", ".join(f"{n} {what}" for what, n in sorted(r.failed.items()))
    cards = f"cards {r.cards_s:.1f} s" if r.cards_s is not None else "cards not all out in 60 s"
    expected = 2 * r.groups * (2 if r.per_tam else 1)  # warn + breach, to TAM and duty
    if r.notices < expected:
        timers = ", ".join(f"{k} {n}" for k, n in sorted(r.jobs.items())
                           if k.startswith("sla."))
        drained = (f"{r.notices} of {expected} possible notices made (a near-breach timer "
                   f"firing after its deadline makes none; {timers}); ")
    else:
        drained = ""
    if r.drained_s is not None:
        drained += (f"all {r.notices} notices (digest items) shown {r.drained_s:.0f} s after "
                    f"the near-breach time")
    else:
        drained += (f"{r.missing} of {r.notices} notices never shown after {r.waited_s:.0f} s "
                    f"(digest.sync: {r.jobs.get(SYNC + ' pending', 0)} pending, "
                    f"{r.jobs.get(SYNC + ' dead', 0)} dead)")
    if r.missing_text:
        drained += f"; {r.missing_text} breaches missing from their digest's final text"
    if r.per_tam:
        tam = (f"per TAM {min(p for p, _ in r.per_tam)}–{max(p for p, _ in r.per_tam)} "
               f"posts + {min(u for _, u in r.per_tam)}–{max(u for _, u in r.per_tam)} "
               f"updates")
    else:
        tam = "no TAMs"
    storm = (f"{drained}; {r.late} shown over 60 s late, {r.expired} near-breach warnings "
             f"expired; {tam}; duty channel {r.duty[0]} posts + {r.duty[1]} updates; "
             f"{cards}; {r.new_case_pending} new-case notices still queued at T, "
             f"{r.other_after_t} other TAM/duty posts after T")
    return opened, storm
