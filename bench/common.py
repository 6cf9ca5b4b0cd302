"""Shared pieces of the benchmarks: servers in child processes, databases, load, figures."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.domain.model import Account, Lang, Term, Tier
from storage.db import Database
from storage.repos import Accounts, Bindings

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name may hold spaces: fields after its closing parenthesis
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99, max (nearest rank)."""
    v = sorted(values)
    if not v:
        return float("nan"), float("nan"), float("nan")

    def pick(p: int) -> float:
        return v[max(0, -(-p * len(v) // 100) - 1)]

    return pick(50), pick(99), v[-1]


@dataclass
class Server:
    """A child process serving HTTP on a free port, stopped with SIGTERM."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        """CPU seconds the server process has used so far."""
        return cpu_seconds(self.proc.pid)

    async def ready(self, limit: float = 90.0) -> None:
        """Wait for /readyz (a loaded machine starts slowly: imports, migrations)."""
        deadline = time.monotonic() + limit
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    tail = self.log.read_text()[-2000:] if self.log else ""
                    raise RuntimeError(f"server exited during start-up: {tail}")
                try:
                    async with http.get(self.url + "/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def spawn(args: list[str], env: dict[str, str], log: Path) -> Server:
    port = free_port()
    full = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
            "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING", **env}
    argv = [a.replace("{port}", str(port)) for a in args]
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, *argv], env=full, stdout=out,
                                stderr=subprocess.STDOUT)
    return Server(proc, port, log)


async def new_pg_database() -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def seed_accounts(url: str, n: int, *, channel_prefix: str = "CG") -> None:
    """n enterprise annual accounts, one group each (`CG0000`...)."""
    db = Database(url)
    await db.upgrade()
    now = datetime.now(UTC)
    async with db.transaction() as s:
        for i in range(n):
            key = f"acct{i:05d}"
            await Accounts(s).add(Account(
                key=key, name=f"Account {i}", tier=Tier.ENTERPRISE, term=Term.ANNUAL,
                start=date(2026, 1, 1), end=date(2027, 1, 1), region="cn-north-4",
                timezone="Asia/Shanghai", lang=Lang.EN, team_id="T1"), now)
            await Bindings(s).bind("T1", f"{channel_prefix}{i:04d}", key, "bench", now)
    await db.close()


async def load(url: str, total: int, concurrency: int, text_of: object,
               channel: str = "CG0000") -> tuple[list[float], float]:
    """Send `total` signed slash commands with `concurrency` in flight; latencies, elapsed."""
    signer = SignatureVerifier(SECRET)
    latencies: list[float] = []
    counter = iter(range(total))
    run = uuid.uuid4().hex[:8]  # Slack's trigger ids are unique; identical requests are replays

    async def one(http: aiohttp.ClientSession) -> None:
        for n in counter:
            body = urlencode({"team_id": "T1", "channel_id": channel, "user_id": "UCUST",
                              "command": "/support", "text": text_of(n),  # type: ignore[operator]
                              "response_url": url + "/nowhere", "trigger_id": f"{run}.{n}"})
            ts = str(int(time.time()))
            headers = {"X-Slack-Request-Timestamp": ts,
                       "X-Slack-Signature": str(signer.generate_signature(timestamp=ts,
                                                                          body=body)),
                       "Content-Type": "application/x-www-form-urlencoded"}
            start = time.perf_counter()
            async with http.post(url + "/slack/events", data=body, headers=headers) as resp:
                answer = await resp.text()
                if resp.status != 200:
                    raise RuntimeError(f"status {resp.status}: {answer[:200]}")
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        start = time.perf_counter()
        await asyncio.gather(*(one(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, elapsed


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
