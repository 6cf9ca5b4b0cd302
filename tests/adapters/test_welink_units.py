"""WeLink unit tests: plain-text rendering and its 500-character parts, card byte limits,
webhook addresses, the robot's minute count, the access token's cache, routing by prefix,
and the WELINK_* settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.adapters.routing import RoutingMessenger
from bot.adapters.welink import render
from bot.adapters.welink.messenger import WEBHOOK_PER_MINUTE, WeLinkMessenger, webhook_token
from bot.config import ConfigError, Settings
from bot.messages import Button, Field, Message, Section, bold, code, mark, mention, time_token
from bot.services.messenger import DeliveryError
from testkit.fake_welink import CLIENT_ID, CLIENT_SECRET, FakeWeLink
from testkit.fakes import RecordingMessenger

KEY = "qZz5mR8aJc4b0Vq7j6bO3y2Jm0nT1sWcXyZkLm9pQrs="


def test_neutral_markup_becomes_plain_text_with_mentions_collected() -> None:
    moment = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    mentioned: list[str] = []
    out = render.text(f"{mark('breach')} {bold('CS-1001')} run {code('/tam ack CS-1001')} "
                      f"{mention('welink:li.tam@welcorp')} {mention('UTAM')} "
                      f"by {time_token(moment)}", mentioned)
    assert out == ("🚨 CS-1001 run /tam ack CS-1001 @li.tam@welcorp @UTAM "
                   "by 2026-11-24 10:00 (UTC+8)")
    assert mentioned == ["li.tam@welcorp"]  # only WeLink users can be highlighted


def test_a_message_leaves_out_its_buttons_and_marks_an_update() -> None:
    message = Message("fallback", title="Advisory AD-1001", sections=(
        Section(title="Kernel patch", text="Patch by Friday.",
                fields=(Field("Severity", "high"),),
                buttons=(Button("Acknowledged", "support acknowledge AD-1001"),)),),
        buttons=(Button("Status", "tam advisory status AD-1001"),), footer="AD-1001")
    out = render.plain(message, updated=True)
    assert out == "🔄\n【Advisory AD-1001】\n【Kernel patch】\nPatch by Friday.\n" \
                  "Severity: high\nAD-1001"
    assert "acknowledge" not in out and "Status" not in out


def test_long_text_is_split_between_lines_into_parts_of_500() -> None:
    lines = [f"{i:02d} " + "y" * 97 for i in range(12)]  # 100 characters each
    parts = render.parts("\n".join(lines))
    assert [len(p) for p in parts] == [403, 403, 403]  # four lines each: five are 504
    assert "\n".join(parts) == "\n".join(lines)
    [single] = render.parts("z" * 500)
    assert single == "z" * 500


def test_a_line_longer_than_a_part_is_split_hard_and_too_many_parts_are_cut() -> None:
    parts = render.parts("a" * 1200)
    assert [len(p) for p in parts] == [500, 500, 200]
    cut = render.parts("b" * 4000)
    assert len(cut) == render.MAX_PARTS and cut[-1].endswith("…")
    assert all(1 <= len(p) <= 500 for p in cut)
    assert render.parts("") == ["…"]  # WeLink takes 1 to 500 characters, never none


def test_a_card_keeps_to_128_and_512_bytes_on_character_boundaries() -> None:
    title, content = render.card(Message("正文" * 400, title="标题" * 100))
    assert len(title.encode()) <= 128 and len(content.encode()) <= 512
    assert title.endswith("…") and content.endswith("…")
    title, content = render.card(Message("SLA breach: CS-1001\nthe TAM was not reached"))
    assert (title, content) == ("SLA breach: CS-1001", "the TAM was not reached")


@pytest.mark.parametrize(("address", "expected"), [
    ("https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?token=abc123&"
     "channel=standard", ("abc123", "standard")),
    ("https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?token=abc123",
     ("abc123", "standard")),
    ("abc123", ("abc123", "standard")),
    ("https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?channel=standard",
     ("", "")),
    ("", ("", "")),
])
def test_webhook_token_from_a_url_or_the_bare_token(address: str,
                                                     expected: tuple[str, str]) -> None:
    assert webhook_token(address) == expected


@pytest.fixture
async def welink() -> AsyncIterator[FakeWeLink]:
    f = FakeWeLink()
    await f.start()
    f.robots.add("robot1")
    f.users.add("li")
    yield f
    await f.close()


def settings_for(welink: FakeWeLink) -> Settings:
    return Settings(welink_client_id=CLIENT_ID, welink_client_secret=CLIENT_SECRET,
                    welink_api_url=welink.api_url)


async def test_the_robot_takes_20_a_minute_all_parts_or_none(welink: FakeWeLink) -> None:
    now = [1000.0]

    async def address(channel: str) -> str | None:
        return "robot1"

    m = WeLinkMessenger(settings_for(welink), address, clock=lambda: now[0])
    try:
        for i in range(WEBHOOK_PER_MINUTE - 2):
            await m.post("welink:g", Message(f"m{i}"))
        long = Message("\n".join("x" * 400 for _ in range(3)))  # three parts, two slots
        with pytest.raises(DeliveryError) as paced:
            await m.post("welink:g", long)
        assert paced.value.per_channel and paced.value.retry_after == 60.0
        assert len(welink.to_group("robot1")) == WEBHOOK_PER_MINUTE - 2  # none of it went
        now[0] += 60.0
        await m.post("welink:g", long)
        assert len(welink.to_group("robot1")) == WEBHOOK_PER_MINUTE + 1
    finally:
        await m.close()


async def test_a_group_without_a_robot_is_a_permanent_failure(welink: FakeWeLink) -> None:
    async def nothing(channel: str) -> str | None:
        return None

    m = WeLinkMessenger(settings_for(welink), nothing)
    try:
        with pytest.raises(DeliveryError) as failed:
            await m.post("welink:g", Message("hello"))
        assert failed.value.permanent and welink.calls == []
    finally:
        await m.close()


async def test_the_access_token_is_cached_and_refetched_when_rejected(welink: FakeWeLink
                                                                     ) -> None:
    async def nothing(channel: str) -> str | None:
        return None

    m = WeLinkMessenger(settings_for(welink), nothing)
    try:
        dm = await m.dm_channel("welink:li")
        assert dm == "welink:dm:li"
        await m.post(dm, Message("one"))
        await m.post(dm, Message("two"))
        assert len(welink.of("auth/v2/tickets")) == 1
        welink.fail("messages/v2/card/common", "41500")
        with pytest.raises(DeliveryError) as rejected:
            await m.post(dm, Message("three"))
        assert not rejected.value.permanent
        await m.post(dm, Message("three"))
        assert len(welink.of("auth/v2/tickets")) == 2
        assert [c.body["msgTitle"] for c in welink.to_user("li")] == ["one", "two", "three"]
        with pytest.raises(DeliveryError) as stranger:
            await m.post(await m.dm_channel("welink:nobody"), Message("hi"))
        assert stranger.value.permanent  # 51019: not a user the app may message
    finally:
        await m.close()


async def test_a_wrong_app_secret_is_permanent(welink: FakeWeLink) -> None:
    async def nothing(channel: str) -> str | None:
        return None

    m = WeLinkMessenger(Settings(welink_client_id=CLIENT_ID, welink_client_secret="wrong",
                                 welink_api_url=welink.api_url), nothing)
    try:
        with pytest.raises(DeliveryError) as failed:
            await m.post("welink:dm:li", Message("hi"))
        assert failed.value.permanent and "10007" in failed.value.reason
    finally:
        await m.close()


async def test_routing_sends_welink_ids_to_welink() -> None:
    slack, welink = RecordingMessenger(), RecordingMessenger()
    routing = RoutingMessenger(slack, {"welink": welink})
    await routing.post("welink:ops", Message("group"))
    await routing.post("C1", Message("slack"))
    assert [s.target for s in welink.sent] == ["welink:ops"]
    assert [s.target for s in slack.sent] == ["C1"]


def test_welink_settings_both_or_none_and_named() -> None:
    assert not Settings.from_env({}).welink
    s = Settings.from_env({"WELINK_CLIENT_ID": " c1 ", "WELINK_CLIENT_SECRET": "s1",
                           "SUPPORTBOT_SECRET_KEY": KEY, "WELINK_API_URL": "http://x/api"})
    assert s.welink and s.welink_client_id == "c1" and s.welink_api_url == "http://x/api/"
    assert s.welink_sender == "supportbot" and "s1" not in repr(s)
    for env, message in (
            ({"WELINK_CLIENT_SECRET": "s"}, "WELINK_CLIENT_ID is not set"),
            ({"WELINK_CLIENT_ID": "c", "WELINK_CLIENT_SECRET": "s"},
             "SUPPORTBOT_SECRET_KEY is not set"),
            ({"WELINK_CLIENT_ID": "c", "WELINK_CLIENT_SECRET": "s", "SUPPORTBOT_SECRET_KEY": KEY,
              "WELINK_API_URL": "ftp://x"}, "WELINK_API_URL must be an http\\(s\\) URL"),
            ({"WELINK_CLIENT_ID": "c", "WELINK_CLIENT_SECRET": "s", "SUPPORTBOT_SECRET_KEY": KEY,
              "WELINK_SENDER": "支持机器人通知中心"}, "WELINK_SENDER must be 1 to 18 bytes")):
        with pytest.raises(ConfigError, match=message):
            Settings.from_env(env)


def test_welink_alone_cannot_run_but_goes_with_slack() -> None:
    welink = {"WELINK_CLIENT_ID": "c", "WELINK_CLIENT_SECRET": "s", "SUPPORTBOT_SECRET_KEY": KEY}
    with pytest.raises(ConfigError, match="WeLink only delivers"):
        Settings.from_env(welink).require_platform()
    Settings.from_env({**welink, "SLACK_BOT_TOKEN": "xoxb-1",
                       "SLACK_SIGNING_SECRET": "x"}).require_platform()
