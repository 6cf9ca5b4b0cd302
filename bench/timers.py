"""Timer firing lag: open cases whose deadlines are spread over a window, let an idle worker
fire them, and measure fired - due for every breach timer."""

from __future__ import annotations

import asyncio
import resource
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bot.config import Settings, load_catalog
from bot.domain.model import Account, Lang, Term, Tier
from bot.services.base import AppContext
from bot.services.cards import CaseCard
from bot.services.home import CustomerHome, StaffHome
from bot.services.messenger import Button, Posted
from bot.worker import Worker
from storage import jobs
from storage.db import Database
from storage.repos import Accounts
from storage.tables import CaseRow, JobRow


class NullMessenger:
    """Accepts every message instantly: the benchmark measures the bot, not Slack."""

    def __init__(self) -> None:
        self.n = 0

    async def post(self, channel: str, text: str, *, thread_ts: str | None = None,
                   card: CaseCard | None = None, buttons: list[Button] | None = None,
                   key: str | None = None) -> Posted:
        self.n += 1
        return Posted(channel, f"{self.n}.0")

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        return None

    async def dm_channel(self, user_id: str) -> str:
        return "D" + user_id

    async def publish_home(self, user_id: str, home: StaffHome | CustomerHome) -> None:
        self.n += 1

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        self.n += 1

    async def update(self, channel: str, ts: str, text: str, *,
                     card: CaseCard | None = None) -> None:
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
    workers: int
    p50: float
    p99: float
    max: float
    idle_cpu_s: float
    rss_mb: float


async def seed_timers(db: Database, n: int, start: datetime, window: float) -> None:
    """n open cases (no first response) with breach timers spread evenly over the window."""
    now = datetime.now(UTC)
    async with db.transaction() as s:
        await Accounts(s).add(Account(key="bench", name="Bench", tier=Tier.ENTERPRISE,
                                      term=Term.ANNUAL, start=date(2026, 1, 1),
                                      end=date(2027, 1, 1), region="cn-north-4",
                                      timezone="Asia/Shanghai", lang=Lang.EN,
                                      tam_user_id=None, team_id="T1"), now)
    batch = 5000
    for lo in range(0, n, batch):
        cases, timers = [], []
        for i in range(lo, min(n, lo + batch)):
            due = start + timedelta(seconds=window * i / max(1, n - 1))
            cases.append(dict(id=i + 1, ref=f"CS-{1001 + i}", account_key="bench", team_id="T1",
                              channel_id="CB", opener_user_id="U1", severity="S1",
                              requested_severity="S1", summary="bench", description="",
                              status="open", opened_at=now, due_at=due, warn_at=due,
                              target_label="10m", sla_generation=1, escort=False, warned=True,
                              breached=False, version=1, card_ts="1.0"))
            timers.append(dict(kind="sla.breach", due_at=due,
                               payload={"case_id": i + 1, "generation": 1},
                               idempotency_key=f"sla:{i + 1}:g1:breach", status="pending",
                               attempts=0, created_at=now))
        async with db.transaction() as s:
            await s.execute(insert(CaseRow), cases)
            await s.execute(insert(JobRow), timers)


async def measure(url: str, backend: str, n: int, window: float, workers: int = 1,
                  schema: str | None = None) -> TimerResult:
    db = Database(url, schema=schema)
    await db.upgrade()
    settings = Settings(database_url=url, worker_poll_seconds=5.0)
    ctx = AppContext(db=db, catalog=load_catalog(None), settings=settings)
    start = datetime.now(UTC) + timedelta(seconds=2 + n / 20000)
    await seed_timers(db, n, start, window)
    ws = [LagWorker(ctx, NullMessenger(), name=f"bench{i}", batch=200) for i in range(workers)]
    cpu0 = time.process_time()
    tasks = [asyncio.create_task(w.run()) for w in ws]
    # idle CPU: the seconds before the first deadline, when nothing is due
    idle_until = start - timedelta(seconds=0.2)
    await asyncio.sleep(max(0.0, (idle_until - datetime.now(UTC)).total_seconds()))
    idle_cpu = time.process_time() - cpu0
    while sum(len(w.lags) for w in ws) < n:
        await asyncio.sleep(0.2)
        if datetime.now(UTC) > start + timedelta(seconds=window + 120):
            break
    for w in ws:
        w.stop()
    await asyncio.gather(*tasks)
    await db.close()
    lags = sorted(lag for w in ws for lag in w.lags)
    q = statistics.quantiles(lags, n=100) if len(lags) > 1 else lags * 99
    return TimerResult(backend, n, workers, q[49], q[98], lags[-1], idle_cpu,
                       resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    import sys
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as d:
        r = asyncio.run(measure(f"sqlite+aiosqlite:///{Path(d) / 'b.db'}", "sqlite", n, 10.0))
    print(r)
