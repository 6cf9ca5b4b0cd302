"""`supportbot run` with WeCom alone (no Slack variables): the robot's and the app's callbacks
are served, commands work, and the worker posts through the group's push webhook."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from testkit.fake_wecom import (
    APP_AES_KEY,
    APP_TOKEN,
    AppSender,
    FakeWeCom,
    RobotSender,
)
from testkit.procs import BotProcess
from testkit.seed import fast_catalog

KEY = "key-proc-5d1c9a"


async def test_run_serves_wecom_without_slack(tmp_path: Path) -> None:
    wecom = FakeWeCom()
    await wecom.start()
    wecom.webhook_keys.add(KEY)
    wecom.users.add("boss")
    log = tmp_path / "bot.log"
    bot = BotProcess(database_url=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
                     api_url="http://127.0.0.1:9/api/", catalog=fast_catalog(tmp_path), log=log,
                     extra_env={"SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": "",
                                "SUPPORTBOT_ADMINS": "wecom:boss",
                                **wecom.bot_env(),
                                "WECOM_APP_TOKEN": APP_TOKEN,
                                "WECOM_APP_ENCODING_AES_KEY": APP_AES_KEY,
                                "SUPPORTBOT_SECRET_KEY": Fernet.generate_key().decode()})
    robot = RobotSender(bot.url, wecom)
    app = AppSender(bot.url)
    try:
        await bot.start()
        assert await robot.verify_url("echo-123") == (200, "echo-123")
        await robot.say("@supportbot tam account add wecorp enterprise annual", user="boss",
                        chat="wrProcGrp")
        await robot.say(f"@supportbot tam link wecorp webhook={KEY}", user="boss",
                        chat="wrProcGrp")
        replies = await wecom.wait_for(lambda: len(wecom.of("aibot/response")) >= 2 and
                                       wecom.of("aibot/response"))
        assert "now the support group of wecorp" in replies[1].content
        welcome = await wecom.wait_for(lambda: wecom.to_group(KEY))
        assert "support group" in welcome[0].content
        assert await app.verify_url("echo-app") == (200, "echo-app")
        assert await app.send(app.text("boss", "tam 帮助")) == (200, "")
        helped = await wecom.wait_for(lambda: wecom.to_user("boss"))
        assert "/tam ack" in helped[0].content
    finally:
        bot.stop()
        await robot.close()
        await app.close()
        await wecom.close()
    text = log.read_text()
    assert "listening on 127.0.0.1" in text and "(WeCom)" in text
    assert "Traceback" not in text and KEY not in text
