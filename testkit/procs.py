"""Run real `supportbot` processes for crash, restart and scale-out tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from testkit.slack_harness import SECRET, TOKEN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    """`supportbot run` in a child process, configured only through its environment."""

    def __init__(self, *, database_url: str, api_url: str, catalog: Path, log: Path,
                 extra_env: dict[str, str] | None = None, args: Sequence[str] = ()) -> None:
        """`args` follow `supportbot run` (e.g. `--role worker`)."""
        self.port = free_port()
        self.args = list(args)
        self.log = log
        self.env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
                    "SLACK_API_URL": api_url, "DATABASE_URL": database_url,
                    "SUPPORTBOT_CATALOG": str(catalog), "SUPPORTBOT_DUTY_CHANNEL": "CDUTY",
                    "SUPPORTBOT_ADMINS": "UADMIN", "HOST": "127.0.0.1", "PORT": str(self.port),
                    "SUPPORTBOT_POLL_SECONDS": "1", "SUPPORTBOT_LEASE_SECONDS": "3",
                    "SUPPORTBOT_SLACK_TIMEOUT": "1", "SUPPORTBOT_CHANNEL_INTERVAL": "0.05",
                    **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            # a plain child process: tests signal it (SIGKILL) and wait on it synchronously
            self.proc = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "bot.cli", "run", *self.args], env=self.env, stdout=out,
                stderr=subprocess.STDOUT)
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if self.proc.poll() is not None:
                    raise AssertionError(f"bot exited: {self.log.read_text()[-3000:]}")
                try:
                    async with http.get(self.url + "/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("bot did not become ready")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
