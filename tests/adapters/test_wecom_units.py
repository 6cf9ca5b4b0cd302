"""WeCom pieces on their own: the markdown renderer, the command parser, the messenger's
errcode sorting and webhook pacing against the fake WeCom, the settings, the routing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet

from bot.adapters.routing import RoutingMessenger
from bot.adapters.wecom import render
from bot.adapters.wecom.app import command_of, event_id
from bot.adapters.wecom.messenger import WeComMessenger, webhook_key
from bot.config import ConfigError, Settings
from bot.messages import Button, Field, Message, Section, bold, code, mark, mention, time_token
from bot.services.messenger import DeliveryError
from testkit.fake_wecom import AES_KEY, AGENT_ID, CORP_ID, CORP_SECRET, TOKEN, FakeWeCom
from testkit.fakes import RecordingMessenger

KEY = "k-unit-1"


def test_neutral_markup_becomes_wecom_markdown() -> None:
    at = datetime(2026, 11, 28, 7, 4, tzinfo=UTC)
    text = (f"{mark('breach')} {bold('CS-1001')} for {mention('wecom:zhangsan')} "
            f"(and {mention('U123')}): run {code('/tam ack CS-1001')} before "
            f"{time_token(at)}")
    assert render.text(text) == ("🚨 **CS-1001** for <@zhangsan> (and @U123): run "
                                 "`/tam ack CS-1001` before 2026-11-28 15:04 (UTC+8)")


def test_literal_asterisks_and_backticks_cannot_open_markup() -> None:
    out = render.text("a **b** and `c`")
    assert "**" not in out and "`" not in out


def test_buttons_become_what_to_type() -> None:
    msg = Message.of("Advisory AD-1001", [
        Button("Acknowledge", "/support acknowledge AD-1001"),
        Button("Reject", "/tam reject PR-1001", ask="reason")])
    out = render.markdown(msg, "supportbot")
    assert "▸ Acknowledge: `@supportbot support acknowledge AD-1001`" in out
    assert "▸ Reject: `@supportbot tam reject PR-1001 <reason>`" in out


def test_sections_fields_footer_and_update_mark() -> None:
    msg = Message("plain", title="Case CS-1", sections=(
        Section("body", (Field("Severity", "S2"),), title="Details",
                buttons=(Button("Close", "/support card close CS-1"),)),), footer="hint")
    out = render.markdown(msg, "bot", updated=True)
    assert out.splitlines() == ["🔄", "**Case CS-1**", "**Details**", "body", "Severity: S2",
                                "▸ Close: `@bot support card close CS-1`",
                                '<font color="comment">hint</font>']


def test_markdown_is_cut_to_4096_bytes_on_a_character_boundary() -> None:
    out = render.markdown(Message("案" * 3000), "bot")
    assert len(out.encode("utf-8")) <= 4096 and out.endswith("…")
    assert render.markdown(Message("short"), "bot") == "short"


@pytest.mark.parametrize(("content", "root", "text"), [
    ("@supportbot open S2 checkout returns 500", "support", "open S2 checkout returns 500"),
    ("@supportbot tam ack CS-1001", "tam", "ack CS-1001"),
    ("@supportbot  /tam ack CS-1001", "tam", "ack CS-1001"),
    ("@supportbot support acknowledge AD-1001", "support", "acknowledge AD-1001"),
    ("@supportbot @李雷 plan", "support", "plan"),
    ("@supportbot", "support", ""),
    ("@supportbot tam account assign acme @wang", "tam", "account assign acme @wang"),
])
def test_a_mention_becomes_a_command(content: str, root: str, text: str) -> None:
    assert command_of(content) == (root, text)


def test_event_ids_fit_the_inbox() -> None:
    assert event_id("CAIQ16HMjQYY") == "wecom:CAIQ16HMjQYY"
    assert len(event_id("x" * 200)) <= 64 and event_id("x" * 200) != event_id("y" * 200)


def test_webhook_key_from_url_or_key() -> None:
    assert webhook_key("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-1") == "abc-1"
    assert webhook_key(" abc-1 ") == "abc-1"
    assert webhook_key("https://example.com/no-key") == ""


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWeCom]:
    f = FakeWeCom()
    await f.start()
    f.webhook_keys.add(KEY)
    f.users.add("li")
    yield f
    await f.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def messenger(wecom: FakeWeCom) -> AsyncIterator[tuple[WeComMessenger, Clock]]:
    settings = Settings(wecom_corp_id=CORP_ID, wecom_token=TOKEN, wecom_encoding_aes_key=AES_KEY,
                        wecom_agent_id=AGENT_ID, wecom_secret=CORP_SECRET,
                        wecom_api_url=wecom.api_url)
    clock = Clock()

    async def address_of(channel: str) -> str | None:
        return {"wecom:grp": wecom.webhook_url(KEY), "wecom:bad": "k-unknown"}.get(channel)

    m = WeComMessenger(settings, address_of, clock=clock)
    yield m, clock
    await m.close()


async def test_the_webhook_is_paced_at_20_a_minute(
        messenger: tuple[WeComMessenger, Clock], wecom: FakeWeCom) -> None:
    m, clock = messenger
    for n in range(20):
        await m.post("wecom:grp", Message(f"m{n}"))
    with pytest.raises(DeliveryError) as over:
        await m.post("wecom:grp", Message("m20"))
    assert over.value.retry_after == pytest.approx(60.0) and not over.value.permanent
    assert len(wecom.to_group(KEY)) == 20  # the 21st never reached WeCom
    clock.now += 60.0
    await m.post("wecom:grp", Message("m20"))
    assert len(wecom.to_group(KEY)) == 21


@pytest.mark.parametrize(("errcode", "status", "permanent", "retry_after"), [
    (45009, 200, False, 60.0), (-1, 200, False, None), (93000, 200, True, None),
    (0, 503, False, None)])
async def test_errcodes_are_sorted_for_the_outbox(
        messenger: tuple[WeComMessenger, Clock], wecom: FakeWeCom, errcode: int, status: int,
        permanent: bool, retry_after: float | None) -> None:
    m, _ = messenger
    wecom.fail("webhook/send", errcode, status=status)
    with pytest.raises(DeliveryError) as failed:
        await m.post("wecom:grp", Message("x"))
    assert (failed.value.permanent, failed.value.retry_after) == (permanent, retry_after)
    assert KEY not in failed.value.reason


async def test_a_group_without_an_address_or_with_a_wrong_key_fails_for_good(
        messenger: tuple[WeComMessenger, Clock]) -> None:
    m, _ = messenger
    for channel in ("wecom:nowhere", "wecom:bad"):
        with pytest.raises(DeliveryError) as failed:
            await m.post(channel, Message("x"))
        assert failed.value.permanent


async def test_dms_use_one_cached_token_and_the_chart_goes_as_an_image(
        messenger: tuple[WeComMessenger, Clock], wecom: FakeWeCom) -> None:
    m, clock = messenger
    dm = await m.dm_channel("wecom:li")
    await m.post(dm, Message("one"))
    await m.post(dm, Message("two"))
    assert len(wecom.of("gettoken")) == 1 and len(wecom.to_user("li")) == 2
    clock.now += 7200
    await m.post(dm, Message("three"))
    assert len(wecom.of("gettoken")) == 2
    with pytest.raises(DeliveryError) as unknown:
        await m.post(await m.dm_channel("wecom:nobody"), Message("x"))
    assert unknown.value.permanent
    await m.upload("wecom:grp", "chart.png", b"\x89PNG fake", title="chart")
    assert wecom.of("webhook/send")[-1].body["msgtype"] == "image"
    assert await m.find("wecom:grp", "key") is None


async def test_routing_by_prefix() -> None:
    slack, wecom = RecordingMessenger(), RecordingMessenger()
    routing = RoutingMessenger(slack, {"wecom": wecom})
    await routing.post("CACME", Message("to slack"))
    await routing.post("wecom:grp", Message("to wecom"))
    assert [m.target for m in slack.sent] == ["CACME"]
    assert [m.target for m in wecom.sent] == ["wecom:grp"]
    with pytest.raises(DeliveryError) as none:
        await RoutingMessenger(None, {"wecom": wecom}).post("CACME", Message("x"))
    assert none.value.permanent


WECOM_ENV = {"WECOM_CORP_ID": CORP_ID, "WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": AES_KEY,
             "WECOM_AGENT_ID": str(AGENT_ID), "WECOM_SECRET": CORP_SECRET,
             "SUPPORTBOT_SECRET_KEY": Fernet.generate_key().decode()}


def test_settings_serve_wecom_without_slack() -> None:
    s = Settings.from_env(WECOM_ENV)
    assert s.wecom and not s.slack and s.wecom_agent_id == AGENT_ID
    assert s.wecom_api_url == "https://qyapi.weixin.qq.com/cgi-bin/"
    s.require_platform()  # no Slack needed
    with pytest.raises(ConfigError, match="no chat platform"):
        Settings.from_env({}).require_platform()


@pytest.mark.parametrize(("change", "named"), [
    ({"WECOM_SECRET": ""}, "WECOM_SECRET"),
    ({"WECOM_AGENT_ID": "abc"}, "WECOM_AGENT_ID"),
    ({"WECOM_ENCODING_AES_KEY": "short"}, "WECOM_ENCODING_AES_KEY"),
    ({"SUPPORTBOT_SECRET_KEY": ""}, "SUPPORTBOT_SECRET_KEY"),
    ({"SUPPORTBOT_SECRET_KEY": "not-a-fernet-key"}, "SUPPORTBOT_SECRET_KEY"),
    ({"WECOM_API_URL": "ftp://x"}, "WECOM_API_URL"),
])
def test_a_partial_or_invalid_wecom_configuration_names_the_variable(
        change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**WECOM_ENV, **change})
    assert str(err.value).startswith(named) and "\n" not in str(err.value)
    assert CORP_SECRET not in str(err.value)
