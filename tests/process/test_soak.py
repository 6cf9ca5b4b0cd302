"""Load and soak (not in the default run): `python -m pytest -m soak -s`.

8 events per second (Slack's per-workspace ceiling) for SOAK_SECONDS (default 600) against
a real bot process, plus bursts of 100 concurrent slash commands: every request answered
within Slack's 3-second window, memory flat across the run. Figures are printed."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

import pytest

from testkit.fake_slack import FakeSlack
from testkit.procs import BotProcess
from testkit.seed import ACME, fast_catalog, seed_world
from testkit.slack_harness import RemoteBot

pytestmark = pytest.mark.soak
SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
RATE = 8.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def timed(coro: object) -> tuple[float, int]:
    start = time.perf_counter()
    resp = await coro  # type: ignore[misc]
    return time.perf_counter() - start, resp.status


async def test_sustained_events_and_command_bursts(fake: FakeSlack, tmp_path: Path) -> None:
    url = os.environ.get("SOAK_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp_path / 'soak.db'}"
    await seed_world(url)
    bot = BotProcess(database_url=url, api_url=fake.api_url, catalog=fast_catalog(tmp_path),
                     log=tmp_path / "bot.log")
    await bot.start()
    remote = RemoteBot(bot.url, fake)
    await remote.start()
    assert bot.proc is not None
    samples: list[float] = []
    statuses: list[int] = []
    try:
        # warm up, then measure memory from a settled process
        for i in range(20):
            await remote.command("support", f"open S3 warm-up {i}", user="UCUST", channel=ACME)
        rss_start = rss_mb(bot.proc.pid)
        burst = await asyncio.gather(*(timed(remote.command(
            "support", f"open S4 burst {i}" if i % 2 else "cases", user="UCUST",
            channel=ACME)) for i in range(100)))
        burst_latencies = [t for t, _ in burst]
        statuses += [s for _, s in burst]
        start = time.perf_counter()
        n = 0
        pending: set[asyncio.Task[tuple[float, int]]] = set()
        while time.perf_counter() - start < SECONDS:
            n += 1
            if n % 4 == 0:
                coro = remote.command("support", f"open S5 soak {n}", user="UCUST",
                                      channel=ACME)
            elif n % 4 == 1:
                coro = remote.command("support", "sla", user="UCUST", channel=ACME)
            else:
                coro = remote.event({"type": "message", "channel": ACME, "user": "UCUST",
                                     "text": f"chatter {n}", "ts": f"{n}.5"}, f"Ev{n}")
            pending.add(asyncio.create_task(timed(coro)))
            done = {t for t in pending if t.done()}
            for t in done:
                latency, status = t.result()
                samples.append(latency)
                statuses.append(status)
            pending -= done
            await asyncio.sleep(max(0.0, start + n / RATE - time.perf_counter()))
        for latency, status in await asyncio.gather(*pending):
            samples.append(latency)
            statuses.append(status)
        rss_end = rss_mb(bot.proc.pid)
    finally:
        assert remote.http is not None
        await remote.http.close()
        bot.stop()
    q = statistics.quantiles(samples, n=100)
    print(f"\nsoak: {len(samples)} requests over {SECONDS:.0f}s at {RATE}/s; "
          f"p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms")
    print(f"burst of 100: max {max(burst_latencies) * 1000:.1f} ms; "
          f"RSS {rss_start:.1f} -> {rss_end:.1f} MB")
    assert set(statuses) == {200}
    assert max(burst_latencies) < 3.0 and max(samples) < 3.0  # Slack's window
    assert rss_end - rss_start < max(50.0, rss_start * 0.5)
