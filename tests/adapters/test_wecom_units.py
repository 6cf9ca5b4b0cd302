"""WeCom pieces on their own: the markdown and template card renderers, the command parser,
the callback time window, the messenger's errcode sorting, webhook and member pacing and
cards against the fake WeCom, the settings, the routing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet

from bot.adapters.routing import RoutingMessenger
from bot.adapters.wecom import render
from bot.adapters.wecom.app import command_of, event_id, fresh, xml_fields
from bot.adapters.wecom.crypto import CallbackError
from bot.adapters.wecom.messenger import WeComMessenger, webhook_key
from bot.config import ConfigError, Settings
from bot.messages import Button, Field, Message, Section, bold, code, mark, mention, time_token
from bot.services.messenger import DeliveryError
from testkit.fake_wecom import (
    AES_KEY,
    AGENT_ID,
    APP_AES_KEY,
    APP_TOKEN,
    CORP_ID,
    CORP_SECRET,
    TOKEN,
    FakeWeCom,
)
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


@pytest.fixture
async def app_messenger(wecom: FakeWeCom) -> AsyncIterator[tuple[WeComMessenger, Clock]]:
    """The messenger of a bot whose app has a callback: its DMs may carry button cards."""
    settings = Settings(wecom_corp_id=CORP_ID, wecom_token=TOKEN, wecom_encoding_aes_key=AES_KEY,
                        wecom_agent_id=AGENT_ID, wecom_secret=CORP_SECRET,
                        wecom_api_url=wecom.api_url, wecom_app_token=APP_TOKEN,
                        wecom_app_encoding_aes_key=APP_AES_KEY)
    clock = Clock()

    async def address_of(channel: str) -> str | None:
        return None

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


def test_buttons_become_a_template_card() -> None:
    msg = Message("Perk request <b>PR-1001</b> from WeCorp (wecorp): escort, 2026-12-15, "
                  "asked by <user:wecom:zhang>.\nOnly 9 business days ahead.", buttons=(
                      Button("Approve", "/tam approve PR-1001", "primary"),
                      Button("Approve", "/tam approve PR-1001"),  # the same key once only
                      Button("Reject", "/tam reject PR-1001", "danger", ask="Reason"),
                      Button("Huge", "/tam x " + "y" * 1100)))
    card = render.template_card(msg, "supportbot", "sb1")
    assert card is not None and card["card_type"] == "button_interaction"
    assert card["task_id"] == "sb1"
    assert card["button_list"] == [{"text": "Approve", "key": "/tam approve PR-1001"}]
    title = card["main_title"]["title"]
    assert len(title) == 36 and title.endswith("…") and "<b>" not in title
    # the whole first line is in the text, in plain text (a card renders no markdown)
    assert card["sub_title_text"].startswith("Perk request PR-1001 from WeCorp (wecorp)")
    assert "@zhang" in card["sub_title_text"] and "9 business days" in card["sub_title_text"]
    assert card["horizontal_content_list"] == [
        {"keyname": "Reject", "value": "@supportbot tam reject PR-1001 <Reason>"}]
    assert render.template_card(Message.of("no buttons"), "b", "sb2") is None
    only_asks = Message.of("x", [Button("Reject", "/tam reject PR-1", ask="why")])
    assert render.template_card(only_asks, "b", "sb3") is None
    many = Message.of("x", [Button(f"B{n}", f"/support b {n}") for n in range(9)])
    assert len(render.template_card(many, "b", "sb4")["button_list"]) == 6  # type: ignore[index]
    assert render.new_task_id() != render.new_task_id()


def test_callback_times_within_the_window_either_way() -> None:
    assert fresh("1000", 300, 1300.0) and fresh("1600", 300, 1300.0)
    assert not fresh("999", 300, 1300.0) and not fresh("1601", 300, 1300.0)
    for bad in ("", "abc", "-5", "１２３", "9" * 20):
        assert not fresh(bad, 300, 1300.0)


def test_app_callback_xml_is_read_without_entities() -> None:
    assert xml_fields("<xml><MsgType><![CDATA[text]]></MsgType><Content>hi</Content></xml>") \
        == {"MsgType": "text", "Content": "hi"}
    for bad in ('<!DOCTYPE x [<!ENTITY e "boom">]><xml><Content>&e;</Content></xml>',
                "<xml><unclosed></xml>", "<other/>"):
        with pytest.raises(CallbackError):
            xml_fields(bad)


async def test_a_dm_with_buttons_is_a_card_only_when_the_app_has_a_callback(
        messenger: tuple[WeComMessenger, Clock], app_messenger: tuple[WeComMessenger, Clock],
        wecom: FakeWeCom) -> None:
    msg = Message.of("Approve PR-1?", [Button("Approve", "/tam approve PR-1")])
    plain, _ = messenger
    await plain.post(await plain.dm_channel("wecom:li"), msg)
    assert wecom.to_user("li")[-1].body["msgtype"] == "markdown"
    carded, _ = app_messenger
    posted = await carded.post(await carded.dm_channel("wecom:li"), msg)
    assert wecom.cards_to("li")[0]["task_id"] == posted.ts
    await carded.post(await carded.dm_channel("wecom:li"), Message("no buttons"))
    assert wecom.to_user("li")[-1].body["msgtype"] == "markdown"


async def test_app_messages_are_paced_at_30_a_minute_per_member(
        messenger: tuple[WeComMessenger, Clock], wecom: FakeWeCom) -> None:
    m, clock = messenger
    wecom.users.add("zhao")
    li, zhao = await m.dm_channel("wecom:li"), await m.dm_channel("wecom:zhao")
    for n in range(30):
        await m.post(li, Message(f"m{n}"))
    with pytest.raises(DeliveryError) as over:
        await m.post(li, Message("m30"))
    assert over.value.retry_after == pytest.approx(60.0) and over.value.per_channel
    assert not over.value.permanent
    assert len(wecom.to_user("li")) == 30  # the 31st never reached WeCom, which drops it
    await m.post(zhao, Message("another member is not held up"))
    clock.now += 60.0
    await m.post(li, Message("m30"))
    assert len(wecom.to_user("li")) == 31


@pytest.mark.parametrize(("change", "named"), [
    ({"WECOM_APP_TOKEN": "t"}, "WECOM_APP_ENCODING_AES_KEY"),
    ({"WECOM_APP_ENCODING_AES_KEY": APP_AES_KEY}, "WECOM_APP_TOKEN"),
    ({"WECOM_APP_TOKEN": "t", "WECOM_APP_ENCODING_AES_KEY": "short"},
     "WECOM_APP_ENCODING_AES_KEY"),
    ({"WECOM_CALLBACK_MAX_AGE": "-1"}, "WECOM_CALLBACK_MAX_AGE"),
])
def test_the_app_callback_settings_come_both_or_none(change: dict[str, str],
                                                      named: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**WECOM_ENV, **change})
    assert str(err.value).startswith(named)
    s = Settings.from_env({**WECOM_ENV, "WECOM_APP_TOKEN": APP_TOKEN,
                           "WECOM_APP_ENCODING_AES_KEY": APP_AES_KEY,
                           "WECOM_CALLBACK_MAX_AGE": "120"})
    assert s.wecom_app_callback and s.wecom_callback_max_age == 120.0
    assert not Settings.from_env(WECOM_ENV).wecom_app_callback
