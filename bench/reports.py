"""Monthly reports for many enterprise accounts, each with a month of cases: the text alone,
with charts rendered in the bot's own process, and with charts rendered by the worker's
process pool; plus what one chart costs to render, before and after the figure is reused.

Every case runs the real worker loop (`Worker.run`: claims in batches of 50, refills as jobs
finish) against a messenger that accepts everything at once, so the figures are the bot's
own work: reading each account's month, the text, the chart, the report row.
"""

from __future__ import annotations

import asyncio
import io
import os
import resource
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bench.common import seed_accounts
from bench.timers import NullMessenger
from bot.charts import default_workers, report_chart
from bot.config import Settings, load_catalog
from bot.domain.reports import CaseStats, case_stats
from bot.services import reports as service
from bot.services.base import AppContext
from bot.worker import Worker
from storage import jobs
from storage.db import Database
from storage.tables import CaseRow

MONTH = "2026-10"
NOW = datetime(2026, 11, 2, tzinfo=UTC)


@dataclass
class Result:
    case: str
    figures: str
    note: str = ""


async def _seed(url: str, accounts: int, cases_each: int) -> None:
    await seed_accounts(url, accounts)
    db = Database(url)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    async with db.transaction() as s:
        batch = []
        cid = 0
        for a in range(accounts):
            # accounts differ in their mix: the first 3k cases S1 (k = 0..6), the rest spread
            # over the five severities, so the tallest bar (6 to 20 cases) varies and the
            # chart processes draw a background for each of those seven heights
            s1_first = 3 * (a % 7)
            for i in range(cases_each):
                cid += 1
                opened = start + timedelta(hours=7 * i + a % 5)
                severity = "S1" if i < s1_first else f"S{1 + i % 5}"
                batch.append(dict(
                    id=cid, ref=f"CS-{1000 + cid}", account_key=f"acct{a:05d}",
                    team_id="T1", channel_id=f"CG{a:04d}", opener_user_id="U",
                    severity=severity, requested_severity=severity,
                    summary="x", description="", status="resolved", opened_at=opened,
                    due_at=opened + timedelta(minutes=30), warn_at=opened, target_label="30m",
                    sla_generation=2, escort=False,
                    first_response_at=opened + timedelta(minutes=5 + 7 * (i % 9)),
                    first_response_by="U", resolved_at=opened + timedelta(hours=3),
                    warned=False, breached=i % 9 > 3, version=3))
        await s.execute(insert(CaseRow), batch)
    await db.close()


@dataclass
class Took:
    wall: float  # seconds from the first claim to the last report done
    cpu_bot: float  # CPU seconds of the bot's process (this one)
    cpu_charts: float  # CPU seconds of the chart processes (counted once they have ended)
    load: float  # the machine's load average (1 min) when the run ended: others' work too

    def idle_bound(self, cores: int) -> float:
        """The wall time this work needs at least on `cores` otherwise idle cores: all of it
        spread over the cores, but never less than the bot process's own share."""
        return max(self.cpu_bot, (self.cpu_bot + self.cpu_charts) / cores)


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


async def _run(url: str, accounts: int, tag: str, charts: bool, workers: int) -> Took:
    """Queue every account's report and let a worker post them all."""
    db = Database(url)
    settings = Settings(database_url=url, report_charts=charts, chart_workers=workers)
    ctx = AppContext(db=db, catalog=load_catalog(None), settings=settings, clock=lambda: NOW)
    async with db.transaction() as s:
        for a in range(accounts):
            await jobs.enqueue(s, service.POST, NOW, {"account": f"acct{a:05d}", "month": MONTH},
                               f"bench-report:{a}:{tag}", NOW)
        done_before = await jobs.count(s, status=jobs.DONE, kind=service.POST)
    worker = Worker(ctx, NullMessenger(), batch=50, name=f"bench-{tag}")
    cpu0 = _cpu()
    start = time.perf_counter()
    task = asyncio.create_task(worker.run())  # closes its chart processes when it stops
    try:
        while True:
            await asyncio.sleep(0.05)
            if task.done():
                raise RuntimeError("the worker stopped before the reports were done")
            if worker.processed < accounts:
                continue  # counted in memory: watching costs the measured process nothing
            async with db.transaction() as s:
                done = await jobs.count(s, status=jobs.DONE, kind=service.POST) - done_before
            if done >= accounts:
                break
        took = time.perf_counter() - start
    finally:
        worker.stop()
        await task  # the chart processes have ended: their CPU time is counted now
        await db.close()
    cpu1 = _cpu()
    return Took(took, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], os.getloadavg()[0])


def _legacy_chart(stats: CaseStats, title: str, labels: dict[str, str]) -> bytes:
    """The chart as it was rendered before (a new figure per chart, a tight layout, PNG at
    zlib's default level), kept here only to measure the difference in one run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    xs = list(range(len(stats.rows)))
    opened = [row.opened for row in stats.rows]
    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bars = ax.bar(xs, opened, color="#4C72B0", width=0.6)
    ax.bar_label(bars, labels=[str(n) if n else "" for n in opened], label_type="center",
                 color="white", fontweight="bold")
    ax.set_xticks(xs, [row.severity.value for row in stats.rows])
    ax.set_xlabel(labels["severity"])
    ax.set_ylabel(labels["cases"])
    ax.set_ylim(0, max([*opened, 1]) * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax2 = ax.twinx()
    points = [(x, row.within_target / row.responded * 100)
              for x, row in zip(xs, stats.rows, strict=True) if row.responded]
    if points:
        px, py = zip(*points, strict=True)
        ax2.plot(px, py, color="#DD8452", marker="D", linestyle="none")
        for x, y in points:
            ax2.annotate(f"{y:.1f}%", (x, y), textcoords="offset points", xytext=(0, 7),
                         ha="center", bbox={"boxstyle": "round,pad=0.2", "fc": "white",
                                            "ec": "none", "alpha": 0.85})
    ax2.set_ylim(0, 110)
    ax2.set_ylabel(labels["attainment"])
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def per_chart_cpu_ms(n: int) -> tuple[float, float, float]:
    """CPU ms per chart in this process (warmed up): the former way, the current one with
    its background kept (a month's charts in one language with the same largest bar), and
    the current one when each chart needs a new background (a title never seen before)."""
    from bot.domain.model import Severity
    from bot.domain.reports import CaseFact

    start = datetime(2026, 10, 1, tzinfo=UTC)
    facts = [CaseFact(list(Severity)[i % 5], start, start + timedelta(minutes=30),
                      start + timedelta(minutes=5 + 7 * (i % 9)), None, i % 9 > 3)
             for i in range(30)]
    stats = case_stats(facts)
    labels = {"cases": "Cases opened", "attainment": "SLA attainment %",
              "severity": "Severity"}
    out = []
    for render, titles in ((_legacy_chart, False), (report_chart, False),
                           (report_chart, True)):
        render(stats, "Service report 2026-10", labels)
        t0 = time.process_time()
        for i in range(n):
            render(stats, f"Service report {i}" if titles else "Service report 2026-10", labels)
        out.append((time.process_time() - t0) / n * 1e3)
    return out[0], out[1], out[2]


async def reports(accounts: int, cases_each: int, logs: Path) -> list[Result]:
    url = f"sqlite+aiosqlite:///{logs / 'reports.db'}"
    await _seed(url, accounts, cases_each)
    pool = default_workers()
    text = await _run(url, accounts, "text", charts=False, workers=0)
    inproc = await _run(url, accounts, "inproc", charts=True, workers=0)
    pooled = await _run(url, accounts, "pool", charts=True, workers=pool)
    before, now, fresh = per_chart_cpu_ms(20 if accounts < 1000 else 50)
    cores = os.cpu_count() or 1
    size = f"{accounts:,} accounts × {cases_each} cases"

    def figures(t: Took) -> str:
        cpu = f"CPU bot {t.cpu_bot:.1f} s" + (f" + charts {t.cpu_charts:.1f} s"
                                              if t.cpu_charts else "")
        return (f"{t.wall:.1f} s ({t.wall / accounts * 1e3:.0f} ms per report); {cpu}; "
                f"on {cores} idle cores ≥ {t.idle_bound(cores):.1f} s; load {t.load:.1f}")

    def per_chart(t: Took) -> str:
        return f"+{(t.wall - text.wall) / accounts * 1e3:.0f} ms per chart over the text"

    goal = "met" if pooled.wall < 60 else "NOT met"
    return [
        Result(f"{size}, charts off", figures(text)),
        Result(f"{size}, charts on, rendered in the bot's process",
               f"{figures(inproc)}; {per_chart(inproc)}", "baseline for the pool"),
        Result(f"{size}, charts on, pool of {pool} chart process(es)",
               f"{figures(pooled)}; {per_chart(pooled)}",
               f"in-process / pool = {inproc.wall / pooled.wall:.2f}; goal < 60 s: {goal}"),
        Result("one chart, CPU in one process",
               f"{now:.0f} ms (background kept, only the chart's bars, points and labels "
               f"drawn; PNG rows filtered, zlib level 1); {fresh:.0f} ms with a new background",
               f"{before:.0f} ms the former way (new figure, tight layout): "
               f"{before / now:.1f}× more"),
    ]
