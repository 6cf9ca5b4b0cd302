"""A real `supportbot run` process emailing a monthly report: SIGKILL between queue and send
(the bot is connected to the mail server, mid-transaction), restart, and the report arrives
once, by email and in the group."""

from __future__ import annotations

import asyncio
from pathlib import Path

from testkit.fake_slack import FakeSlack
from testkit.procs import BotProcess
from testkit.seed import ACME, fast_catalog, seed_world
from testkit.slack_harness import RemoteBot
from testkit.smtp import SmtpServer


async def test_sigkill_between_queue_and_send_then_restart_emails_once(
        fake: FakeSlack, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await seed_world(url)
    smtp = SmtpServer()
    await smtp.start()
    hold = smtp.hold = asyncio.Event()  # the first transaction waits at RCPT
    bot = BotProcess(database_url=url, api_url=fake.api_url, catalog=fast_catalog(tmp_path),
                     log=tmp_path / "bot.log",
                     extra_env={"SUPPORTBOT_SMTP_HOST": "127.0.0.1",
                                "SUPPORTBOT_SMTP_PORT": str(smtp.port),
                                "SUPPORTBOT_SMTP_TLS": "none",
                                "SUPPORTBOT_SMTP_FROM": "reports@cloud.example"})
    await bot.start()
    remote = RemoteBot(bot.url, fake)
    await remote.start()
    try:
        # typed in Slack, the address arrives escaped as a mailto link
        resp = await remote.command("tam", "account email acme add "
                                    "<mailto:ops@acme.example|ops@acme.example>",
                                    user="UADMIN", channel="CX")
        assert "ops@acme.example will receive the monthly reports" in await resp.text()
        resp = await remote.command("tam", "report acme 2026-10", user="UADMIN", channel="CX")
        assert "emailed to 1 recipient" in await resp.text()
        await asyncio.wait_for(smtp.held.wait(), timeout=30)  # queued, and now mid-send
        bot.kill()
        smtp.hold = None
        hold.set()  # the killed bot's transaction ends without DATA: nothing was accepted
        assert smtp.received == []
        await bot.start()
        await smtp.wait_for(1, limit=30)
        await fake.wait_for(lambda: [b for b in fake.posts_to(ACME)
                                     if "Monthly service report" in str(b.get("text"))],
                            limit=30)
        await asyncio.sleep(2.0)  # room for a (wrong) second mail to arrive
    finally:
        assert remote.http is not None
        await remote.http.close()
        bot.stop()
        await smtp.close()
    assert [r.recipients for r in smtp.received] == [["ops@acme.example"]]
    assert "Monthly service report — Acme, 2026-10" in str(smtp.received[0].message["Subject"])
    reports = [b for b in fake.posts_to(ACME) if "Monthly service report" in str(b.get("text"))]
    assert len(reports) == 1
