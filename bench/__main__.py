"""`python -m bench`: every figure measured side by side in one run on this machine.

Prints a Markdown table and writes it to bench/results/latest.md. `--quick` runs smaller
sizes (a smoke test of the benchmark itself, not figures to quote).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    TOKEN,
    drop_pg_database,
    load,
    new_pg_database,
    quantiles,
    seed_accounts,
    spawn,
)
from bench.timers import measure, storm
from bot.config import Settings, load_catalog
from bot.services.base import AppContext

ROOT = Path(__file__).resolve().parent


@dataclass
class Row:
    section: str
    case: str
    figures: str
    note: str = ""


async def ack_path(backends: list[str], concurrencies: list[int], per_cell: int,
                   logs: Path) -> list[Row]:
    """Signed slash commands over HTTP: a bare Bolt app that only acks vs /support open."""
    from testkit.fake_slack import FakeSlack

    rows: list[Row] = []
    fake = FakeSlack()
    await fake.start()
    env = {"SLACK_API_URL": fake.api_url, "SUPPORTBOT_CHANNEL_INTERVAL": "0.001"}
    bare = spawn(["-m", "bench.bare_bolt", "{port}"], env, logs / "bare.log")
    await bare.ready()
    try:
        floor: dict[int, float] = {}
        floor_cpu: dict[int, float] = {}
        floor_p50: dict[int, float] = {}
        await load(bare.url, 20, 1, lambda n: "help")  # warm up
        for c in concurrencies:
            cpu0 = bare.cpu()
            lat, elapsed = await load(bare.url, per_cell * max(1, c // 10), c, lambda n: "help")
            floor_cpu[c] = (bare.cpu() - cpu0) * 1e3 / len(lat)
            p50, p99, mx = quantiles(lat)
            floor[c] = len(lat) / elapsed
            floor_p50[c] = p50
            rows.append(Row("ack path", f"(a) bare Bolt, c={c}",
                            f"{floor[c]:.0f} req/s; p50 {p50 * 1e3:.1f} ms, p99 "
                            f"{p99 * 1e3:.1f} ms, max {mx * 1e3:.1f} ms; CPU "
                            f"{floor_cpu[c]:.2f} ms/request"))
        for backend in backends:
            url = await new_pg_database() if backend == "postgresql" else \
                f"sqlite+aiosqlite:///{logs / 'ack.db'}"
            await seed_accounts(url, 1)
            benv = {**env, "DATABASE_URL": url}
            # (b) as a deployment that splits them runs it: the HTTP front (`--role web`)
            # answers the commands, a worker process (`--role worker`) posts each case's
            # card and notices; CPU per command is the web process's
            web = spawn(["-m", "bot.cli", "run", "--role", "web"], benv,
                        logs / f"web-{backend}.log")
            worker = spawn(["-m", "bot.cli", "run", "--role", "worker"], benv,
                           logs / f"worker-{backend}.log")
            try:
                await web.ready()
                await worker.ready()
                await load(web.url, 20, 1, lambda n: f"open S3 warm-up {n}")
                await asyncio.sleep(2.0)
                for c in concurrencies:
                    n = per_cell * max(1, c // 10)
                    cpu0, wcpu0 = web.cpu(), worker.cpu()
                    lat, elapsed = await load(web.url, n, c, lambda n: f"open S3 bench case {n}")
                    cpu = (web.cpu() - cpu0) * 1e3 / len(lat)
                    # the worker posts the cards meanwhile, and up to 2 s after the last
                    await asyncio.sleep(2.0)
                    wcpu = (worker.cpu() - wcpu0) * 1e3 / len(lat)
                    p50, p99, mx = quantiles(lat)
                    rate = len(lat) / elapsed
                    rows.append(Row(
                        "ack path", f"(b) /support open, {backend}, web + worker, c={c}",
                        f"{rate:.0f} req/s; p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, "
                        f"max {mx * 1e3:.1f} ms; CPU {cpu:.2f} ms/command (web process); "
                        f"worker {wcpu:.2f} ms/case (card, notices)",
                        f"(b)/(a) = {rate / floor[c]:.2f}; CPU (b)/(a) = "
                        f"{cpu / floor_cpu[c]:.1f}; p50 (b)/(a) = "
                        f"{p50 / floor_p50[c]:.2f}"))
            finally:
                web.stop()
                worker.stop()
            # (c) the default `supportbot run`: one process, its worker beside the commands
            bot = spawn(["-m", "bot.cli", "run"], benv, logs / f"bot-{backend}.log")
            try:
                await bot.ready()
                await load(bot.url, 20, 1, lambda n: f"open S3 warm-up {n}")
                await asyncio.sleep(2.0)
                c = 10
                cpu0 = bot.cpu()
                lat, elapsed = await load(bot.url, per_cell, c,
                                          lambda n: f"open S3 one-process case {n}")
                cpu_acks = (bot.cpu() - cpu0) * 1e3 / len(lat)
                await asyncio.sleep(2.0)
                cpu = (bot.cpu() - cpu0) * 1e3 / len(lat)
                p50, p99, mx = quantiles(lat)
                rows.append(Row(
                    "ack path", f"(c) /support open, {backend}, one process, c={c}",
                    f"{len(lat) / elapsed:.0f} req/s; p50 {p50 * 1e3:.1f} ms, p99 "
                    f"{p99 * 1e3:.1f} ms, max {mx * 1e3:.1f} ms; CPU {cpu_acks:.2f} "
                    f"ms/command over the acks, {cpu:.2f} ms/case with its card and notices",
                    "`supportbot run` (web and worker in one process)"))
            finally:
                bot.stop()
                if backend == "postgresql":
                    await drop_pg_database(url)
    finally:
        bare.stop()
        await fake.close()
    return rows


async def outage(backends: list[str], groups: int, tams: int, spread: float, wait: float,
                logs: Path) -> list[Row]:
    """A regional outage: every group opens an S1 within `spread` seconds; then all the
    cases near-breach and breach together (see bench/storm.py)."""
    from bench.storm import figures, run_storm

    rows = []
    plans = [("sqlite", 1)] + [("postgresql", p) for p in (1, 3) if "postgresql" in backends]
    for backend, replicas in plans:
        r = await run_storm(backend, replicas, groups, tams, spread, wait, logs)
        opened, notices = figures(r)
        case = f"{groups} groups, {tams} TAMs, {backend}, {replicas} process(es)"
        rows.append(Row("storm", case + f": {groups} × /support open S1 in {spread:g} s",
                        opened))
        rows.append(Row("storm", case + ": all near-breach, breach 10 s later", notices))
    return rows


async def timers(backends: list[str], n: int, window: float, measure_for: float,
                 storm_n: int, logs: Path) -> list[Row]:
    """n open cases with deadlines spread over a window: firing lag, idle CPU, memory; and a
    storm of timers all due at once."""
    rows = []
    plans = [("sqlite", 1)] + [("postgresql", p) for p in (1, 3) if "postgresql" in backends]
    for backend, processes in plans:
        url = await new_pg_database() if backend == "postgresql" else \
            f"sqlite+aiosqlite:///{logs / f'timers-{processes}.db'}"
        try:
            r = await measure(url, backend, n, window, measure_for, processes)
            took = await storm(url, storm_n, processes)
        finally:
            if backend == "postgresql":
                await drop_pg_database(url)
        rows.append(Row("timers", f"{n:,} pending, {backend}, {processes} process(es)",
                        f"lag p50 {r.p50 * 1e3:.0f} ms, p99 {r.p99 * 1e3:.0f} ms, max "
                        f"{r.max * 1e3:.0f} ms ({r.measured} fired); idle CPU "
                        f"{r.idle_cpu_s * 1e3:.0f} ms over 3 s; RSS {r.rss_mb:.0f} MB",
                        f"storm of {storm_n:,} due at once: {took:.1f} s "
                        f"({storm_n / took:.0f}/s)"))
    return rows


async def fanout(sizes: list[int], workspace_rate: float, logs: Path) -> list[Row]:
    """An advisory to many groups against a fake Slack enforcing 1 msg/s per channel and a
    workspace-wide rate with 429s; total time against the bound those limits allow."""
    from bot.adapters.slack.app import make_client
    from bot.adapters.slack.messenger import SlackMessenger
    from bot.domain.advisories import Targeting
    from bot.services.advisories import AdvisorySpec, send
    from bot.services.base import resolve_actor
    from bot.worker import Worker
    from storage import jobs
    from storage.db import Database
    from testkit.fake_slack import FakeSlack

    rows = []
    for n in sizes:
        fake = FakeSlack()
        fake.channel_interval, fake.workspace_rate = 1.0, workspace_rate
        await fake.start()
        url = f"sqlite+aiosqlite:///{logs / f'fanout-{n}.db'}"
        await seed_accounts(url, n)
        db = Database(url)
        settings = Settings(database_url=url, slack_api_url=fake.api_url,
                            slack_bot_token=TOKEN, admins=frozenset({"UADMIN"}),
                            workspace_rate=workspace_rate, worker_poll_seconds=0.5)
        ctx = AppContext(db=db, catalog=load_catalog(None), settings=settings)
        actor = await resolve_actor(ctx, "T1", "UADMIN")
        await send(ctx, actor, AdvisorySpec("Bench", "platform_change", "low", "Body",
                                            Targeting()))
        worker = Worker(ctx, SlackMessenger(make_client(settings, retries=False)),
                        batch=200, name="bench")
        start = time.perf_counter()
        task = asyncio.create_task(worker.run())
        while True:
            await asyncio.sleep(0.25)
            async with db.transaction() as s:
                if await jobs.count(s, status=jobs.PENDING, kind="advisory.post") == 0:
                    break
        took = time.perf_counter() - start
        worker.stop()
        await task
        await db.close()
        await fake.close()
        bound = n / workspace_rate
        limited = sum(1 for c in fake.calls if c.status == 429)
        rows.append(Row("fan-out", f"{n:,} groups, workspace limit {workspace_rate:.0f}/s",
                        f"{took:.1f} s vs bound {bound:.1f} s ({took / bound - 1:+.1%}); "
                        f"{limited} answered 429"))
    return rows


async def reports(accounts: int, cases_each: int, logs: Path) -> list[Row]:
    """Monthly reports for many accounts with a month of cases each: text alone, charts
    in-process, charts in the worker's process pool (bench/reports.py)."""
    from bench.reports import reports as measure_reports

    return [Row("reports", r.case, r.figures, r.note)
            for r in await measure_reports(accounts, cases_each, logs)]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), {platform.python_implementation()} "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


SECTIONS = ("ack", "storm", "timers", "fanout", "reports")


async def main(quick: bool, out: Path, skip: set[str]) -> None:
    backends = ["sqlite", "postgresql"]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as d:
        logs = Path(d)
        if "ack" not in skip:
            rows += await ack_path(backends, [1, 10, 100], 100 if quick else 300, logs)
        if "storm" not in skip:
            rows += await outage(backends, 50 if quick else 500, 5 if quick else 10,
                                1.0 if quick else 5.0, 30.0 if quick else 180.0, logs)
        if "timers" not in skip:
            rows += await timers(backends, 5_000 if quick else 100_000, 3600.0,
                                 10.0 if quick else 60.0, 500 if quick else 5_000, logs)
        if "fanout" not in skip:
            rows += await fanout([200] if quick else [1_000, 5_000], 100.0, logs)
        if "reports" not in skip:
            rows += await reports(50 if quick else 1_000, 30, logs)
    table = [f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}"
             + (" (quick run: sizes reduced)" if quick else ""), "",
             "| section | case | figures | note |", "|---|---|---|---|"]
    table += [f"| {r.section} | {r.case} | {r.figures} | {r.note} |" for r in rows]
    text = "\n".join(table) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)  # noqa: ASYNC240 - once, after every measurement
    print(f"written to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "latest.md")
    parser.add_argument("--skip", default="",
                        help="comma-separated sections to leave out: " + ",".join(SECTIONS))
    parser.add_argument("--only", default="",
                        help="comma-separated sections to run (all others left out)")
    args = parser.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    if args.only:
        only = {s for s in args.only.split(",") if s}
        unknown = only - set(SECTIONS)
        if unknown:
            parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(SECTIONS)}")
        skip |= set(SECTIONS) - only
    asyncio.run(main(args.quick, args.out, skip))
