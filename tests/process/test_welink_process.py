"""`supportbot run` with WeCom and WeLink (no Slack): a WeLink group is linked by a command
typed in a WeCom group, and the worker greets it through its webhook robot."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from testkit.fake_wecom import (
    FakeWeCom,
    RobotSender,
)
from testkit.fake_welink import CLIENT_ID, CLIENT_SECRET, FakeWeLink
from testkit.procs import BotProcess
from testkit.seed import fast_catalog

ROBOT = "5d1c9a0f3c9a1d5e7b4c2a8d6e1f0a9b"


async def test_run_delivers_to_a_welink_group_linked_from_wecom(tmp_path: Path) -> None:
    wecom, welink = FakeWeCom(), FakeWeLink()
    await wecom.start()
    await welink.start()
    welink.robots.add(ROBOT)
    log = tmp_path / "bot.log"
    bot = BotProcess(database_url=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
                     api_url="http://127.0.0.1:9/api/", catalog=fast_catalog(tmp_path), log=log,
                     extra_env={"SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": "",
                                "SUPPORTBOT_ADMINS": "wecom:boss",
                                **wecom.bot_env(),
                                "WELINK_CLIENT_ID": CLIENT_ID,
                                "WELINK_CLIENT_SECRET": CLIENT_SECRET,
                                "WELINK_API_URL": welink.api_url,
                                "SUPPORTBOT_SECRET_KEY": Fernet.generate_key().decode()})
    robot = RobotSender(bot.url, wecom)
    try:
        await bot.start()
        await robot.say("@supportbot tam account add welcorp enterprise annual", user="boss",
                        chat="wrAdminGrp")
        await robot.say(f"@supportbot tam link welcorp group=welink:welcorp-ops "
                        f"webhook={welink.webhook_url(ROBOT)}", user="boss", chat="wrAdminGrp")
        replies = await wecom.wait_for(lambda: len(wecom.of("aibot/response")) >= 2 and
                                       wecom.of("aibot/response"))
        assert "welink:welcorp-ops is now the support group of welcorp" in replies[1].content
        welcome = await welink.wait_for(lambda: welink.to_group(ROBOT))
        assert "support notices" in welcome[0].text
    finally:
        bot.stop()
        await robot.close()
        await wecom.close()
        await welink.close()
    text = log.read_text()
    assert "(WeCom, WeLink outbound)" in text
    assert "Traceback" not in text and ROBOT not in text and CLIENT_SECRET not in text
