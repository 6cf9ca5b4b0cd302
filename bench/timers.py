"""Timer firing lag: open cases whose deadlines are spread over a window, let an idle worker
fire them, and measure fired - due for every breach timer."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy import update as sa_update

from bench.common import quantiles
from bot.config import Settings, load_catalog
from bot.domain.model import Account, Lang, Term, Tier
from bot.messages import Message
from bot.services.base import AppContext
from bot.services.messenger import Posted
from bot.worker import Worker
from storage import jobs
from storage.db import Database
from storage.repos import Accounts
from storage.tables import CaseRow, JobRow


class NullMessenger:
    """Accepts every message instantly: the benchmark measures the bot, not Slack."""

    def __init__(self) -> None:
        self.n = 0

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        self.n += 1
        return Posted(channel, f"{self.n}.0")

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        return None

    async def dm_channel(self, user_id: str) -> str:
        return "D" + user_id

    async def publish_home(self, user_id: str, home: Message) -> None:
        self.n += 1

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        self.n += 1

    async def update(self, channel: str, ts: str, message: Message) -> None:
        self.n += 1

    def link(self, channel: str, ts: str) -> str:
        return f"x://{channel}/{ts}"


class LagWorker(Worker):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.lags: list[float] = []

    def fired(self, batch: list[jobs.Job], started: datetime) -> None:
        # lag = when the breach was committed (notices queued) - when it was due
        done = datetime.now(UTC)
        self.lags += [(done - j.due_at).total_seconds() for j in batch if j.kind == "sla.breach"]


@dataclass
class TimerResult:
    backend: str
    timers: int
    processes: int
    measured: int
    p50: float
    p99: float
    max: float
    idle_cpu_s: float
    rss_mb: float
    storm: int = 0
    storm_seconds: float = 0.0


async def seed_timers(db: Database, n: int, start: datetime, window: float,
                      first_id: int = 1) -> None:
    """n open cases (no first response) with breach timers spread evenly over the window."""
    now = datetime.now(UTC)
    async with db.transaction() as s:
        if await Accounts(s).get("bench") is None:
            await Accounts(s).add(Account(key="bench", name="Bench", tier=Tier.ENTERPRISE,
                                          term=Term.ANNUAL, start=date(2026, 1, 1),
                                          end=date(2027, 1, 1), region="cn-north-4",
                                          timezone="Asia/Shanghai", lang=Lang.EN,
                                          tam_user_id=None, team_id="T1"), now)
    batch = 5000
    for lo in range(0, n, batch):
        cases, timers = [], []
        for i in range(lo, min(n, lo + batch)):
            cid = first_id + i
            due = start + timedelta(seconds=window * i / max(1, n - 1))
            cases.append(dict(id=cid, ref=f"CS-{1000 + cid}", account_key="bench",
                              team_id="T1", channel_id="CB", opener_user_id="U1",
                              severity="S1", requested_severity="S1", summary="bench",
                              description="", status="open", opened_at=now, due_at=due,
                              warn_at=due, target_label="10m", sla_generation=1, escort=False,
                              warned=True, breached=False, version=1, card_ts="1.0"))
            timers.append(dict(kind="sla.breach", due_at=due,
                               payload={"case_id": cid, "generation": 1},
                               idempotency_key=f"sla:{cid}:g1:breach", status="pending",
                               attempts=0, created_at=now))
        async with db.transaction() as s:
            await s.execute(insert(CaseRow), cases)
            await s.execute(insert(JobRow), timers)


async def run_worker(url: str, until: datetime, idle_until: datetime,
                     expected: int, out: Path | None = None) -> tuple[list[float], float, float]:
    """One worker until `expected` breaches fired (or `until`); lags, idle CPU, max RSS."""
    db = Database(url)
    settings = Settings(database_url=url, worker_poll_seconds=5.0)
    ctx = AppContext(db=db, catalog=load_catalog(None), settings=settings)
    worker = LagWorker(ctx, NullMessenger(), batch=200)
    cpu0 = time.process_time()
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(max(0.0, (idle_until - datetime.now(UTC)).total_seconds()))
    idle_cpu = time.process_time() - cpu0
    while datetime.now(UTC) < until:
        await asyncio.sleep(0.2)
        if out is None and len(worker.lags) >= expected:
            break
        if out is not None and await _fired(db) >= expected:
            break
    worker.stop()
    await task
    await db.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if out is not None:
        out.write_text(json.dumps({"lags": worker.lags, "idle_cpu": idle_cpu,  # noqa: ASYNC240
                                   "rss": rss}))
    return worker.lags, idle_cpu, rss


async def _fired(db: Database) -> int:
    async with db.transaction() as s:
        return await jobs.count(s, status=jobs.DONE, kind="sla.breach")


async def measure(url: str, backend: str, n: int, window: float, measure_for: float,
                  processes: int = 1) -> TimerResult:
    """`n` timers spread over `window` seconds; the lag of those due in the first
    `measure_for` seconds is measured while the others stay pending (the table at scale)."""
    db = Database(url)
    await db.upgrade()
    far = datetime.now(UTC) + timedelta(days=1)
    await seed_timers(db, n, far, window)
    expected = max(1, int(n * measure_for / window))
    # seeding takes a while: move the first timers to start just after an idle pause
    t0 = datetime.now(UTC) + timedelta(seconds=3)
    async with db.transaction() as s:
        rows = (await s.execute(select(JobRow.id, JobRow.due_at).order_by(JobRow.due_at)
                                .limit(expected))).all()
        for job_id, due in rows:
            moved = t0 + (due.replace(tzinfo=UTC) - far)
            await s.execute(sa_update(JobRow).where(JobRow.id == job_id).values(due_at=moved))
            await s.execute(sa_update(CaseRow).where(CaseRow.id == job_id).values(due_at=moved))
    await db.close()
    until = t0 + timedelta(seconds=measure_for + 60)
    if processes == 1:
        lags, idle_cpu, rss = await run_worker(url, until, t0, expected)
    else:
        lags, idle_cpu, rss = await _in_processes(url, processes, until, t0, expected)
    p50, p99, mx = quantiles(lags)
    return TimerResult(backend, n, processes, len(lags), p50, p99, mx, idle_cpu, rss)




async def _in_processes(url: str, processes: int, until: datetime, idle_until: datetime,
                        expected: int) -> tuple[list[float], float, float]:
    with tempfile.TemporaryDirectory() as d:
        outs = [Path(d) / f"w{i}.json" for i in range(processes)]
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.timers", "worker", url, until.isoformat(),
            idle_until.isoformat(), str(expected), str(out)) for out in outs]
        for p in procs:
            await p.wait()
        data = [json.loads(o.read_text()) for o in outs]
    lags = [lag for d in data for lag in d["lags"]]
    return lags, sum(d["idle_cpu"] for d in data), max(d["rss"] for d in data)


async def storm(url: str, n: int, processes: int = 1) -> float:
    """n timers all due at once (a breach storm): seconds until every one has fired."""
    db = Database(url)
    async with db.transaction() as s:
        top = int(await s.scalar(select(func.max(CaseRow.id))) or 0)
        done = await jobs.count(s, status=jobs.DONE, kind="sla.breach")
        # park the spread timers far ahead so the storm is measured alone
        await s.execute(sa_update(JobRow).where(JobRow.status == "pending").values(
            due_at=datetime(2099, 1, 1, tzinfo=UTC)))
    now = datetime.now(UTC)
    await seed_timers(db, n, now, 0.0, first_id=top + 1)
    await db.close()
    start = time.perf_counter()
    until = now + timedelta(seconds=900)
    if processes == 1:
        await run_worker(url, until, now, n)
    else:
        await _in_processes(url, processes, until, now, done + n)
    return time.perf_counter() - start


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        asyncio.run(run_worker(sys.argv[2], datetime.fromisoformat(sys.argv[3]),
                               datetime.fromisoformat(sys.argv[4]), int(sys.argv[5]),
                               Path(sys.argv[6])))
