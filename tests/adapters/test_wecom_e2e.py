"""WeCom end to end over HTTP: signed, encrypted robot callbacks (JSON) and app callbacks
(XML: card clicks, texts to the app) into the bot's real aiohttp server; webhook posts,
application messages (markdown and button template cards), card updates and response_url
replies out to a local fake WeCom. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestServer
from cryptography.fernet import Fernet

from bot.adapters.slack.app import build_bolt, build_web, make_client
from bot.adapters.slack.messenger import SlackMessenger
from bot.adapters.wecom.app import add_routes
from bot.app import messenger_for
from bot.domain.advisories import Targeting
from bot.pacing import Pacer
from bot.services.advisories import AdvisorySpec, send
from bot.services.base import AppContext, resolve_actor
from bot.worker import Worker
from handlers.core import Request, Router
from storage import jobs
from storage.repos import Audit, Cases, GroupSecrets, PerkLedger
from testkit.chat import ACME_CH, ADMIN, TEAM
from testkit.fake_slack import FakeSlack
from testkit.fake_wecom import (
    AES_KEY,
    AGENT_ID,
    APP_AES_KEY,
    APP_TOKEN,
    CORP_ID,
    CORP_SECRET,
    TOKEN,
    AppSender,
    FakeWeCom,
    RobotSender,
)
from testkit.fakes import Clock

CORP = "wecom:" + CORP_ID
# admin, TAM, two customers; ids as long as WeCom's get (a qualified id needs 70 characters)
BOSS, LI, WANG = "boss", "litam", "wang"
ZHANG = "zhang.san.customer-0123456789abcdef0123456789abcdef0123456789abc"  # 64 characters
ACME_CHAT = "wrkSFfCgAALFgnrSsWU38puiv4yvExuw"  # a group chat id as WeCom shapes them
BIZ_CHAT, LOOSE_CHAT = "wrBizGrp", "wrLooseGrp"
ACME_KEY, BIZ_KEY = "key-acme-7f3a9c1d5e", "key-biz-2b8e4f6a0c"


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWeCom]:
    f = FakeWeCom()
    await f.start()
    f.webhook_keys |= {ACME_KEY, BIZ_KEY}
    f.users |= {LI, BOSS}
    yield f
    await f.close()


@pytest.fixture
async def wctx(sctx: AppContext, wecom: FakeWeCom, router: Router) -> AppContext:
    """The Slack-wired, seeded context with WeCom configured too, and a WeCom world: an
    admin, a TAM, the enterprise account `wecorp` and the business account `bizco`."""
    settings = replace(sctx.settings, wecom_corp_id=CORP_ID, wecom_token=TOKEN,
                       wecom_encoding_aes_key=AES_KEY, wecom_agent_id=AGENT_ID,
                       wecom_secret=CORP_SECRET, wecom_api_url=wecom.api_url,
                       secret_key=Fernet.generate_key().decode("ascii"),
                       wecom_app_token=APP_TOKEN, wecom_app_encoding_aes_key=APP_AES_KEY,
                       admins=sctx.settings.admins | {"wecom:" + BOSS})
    ctx = replace(sctx, settings=settings, address_platforms=frozenset({"wecom"}))
    for line in (f"tam staff add <user:wecom:{LI}> tam",
                 'tam account add wecorp enterprise annual start=2026-01-01 name="WeCorp"',
                 f"tam account assign wecorp <user:wecom:{LI}>"):
        reply = await router.dispatch(Request("tam", line.partition(" ")[2], CORP,
                                              "wecom:dm:" + BOSS, "wecom:" + BOSS), ctx)
        assert not reply.refused, reply.text
    return ctx


@pytest.fixture
async def robot(wctx: AppContext, router: Router, fake: FakeSlack,
                wecom: FakeWeCom) -> AsyncIterator[RobotSender]:
    """The bot's one HTTP server (Slack's routes and WeCom's), and a sender of callbacks."""
    webapp = build_web(wctx, build_bolt(wctx, router, make_client(wctx.settings)))
    add_routes(webapp, wctx, router)
    server = TestServer(webapp, host="127.0.0.1")
    await server.start_server()
    sender = RobotSender(f"http://127.0.0.1:{server.port}", wecom)
    yield sender
    await sender.close()
    await server.close()


@pytest.fixture
async def app(robot: RobotSender) -> AsyncIterator[AppSender]:
    """A sender of the self-built app's callbacks to the same server."""
    sender = AppSender(robot.url.removesuffix("/wecom/callback"))
    yield sender
    await sender.close()


def make_worker(ctx: AppContext, name: str = "w") -> Worker:
    """A worker on the routing messenger, as `supportbot run` builds it; its pacing and the
    webhook's minute count run on the test's clock."""
    messenger = messenger_for(ctx, SlackMessenger(make_client(ctx.settings, retries=False)))
    worker = Worker(ctx, messenger, name=name)

    def seconds() -> float:
        return ctx.clock().timestamp()

    s = ctx.settings
    worker.pacer = Pacer(s.channel_interval_seconds, s.channel_burst, s.workspace_rate,
                         max_wait=worker.pacer.max_wait, clock=seconds)
    messenger.platforms["wecom"].clock = seconds  # type: ignore[attr-defined]
    return worker


@pytest.fixture
async def wworker(wctx: AppContext) -> AsyncIterator[Worker]:
    w = make_worker(wctx)
    yield w
    await w.messenger.close()  # type: ignore[attr-defined]


async def deliver(worker: Worker, rounds: int = 2) -> None:
    for _ in range(rounds):
        await worker.run_once()


async def replies(wecom: FakeWeCom, n: int) -> list[str]:
    """The contents of the first `n` replies through response_url (awaited)."""
    calls = await wecom.wait_for(lambda: len(wecom.of("aibot/response")) >= n and
                                 wecom.of("aibot/response"))
    return [c.content for c in calls]


async def link_groups(robot: RobotSender, wecom: FakeWeCom, worker: Worker) -> None:
    """The TAM links the WeCorp group (webhook URL), the admin bizco's group (bare key)."""
    await robot.say(f"@supportbot tam link wecorp webhook={wecom.webhook_url(ACME_KEY)}",
                    user=LI, chat=ACME_CHAT)
    await robot.say(f"@supportbot tam link bizco webhook={BIZ_KEY}", user=BOSS, chat=BIZ_CHAT)
    texts = await replies(wecom, 2)
    assert "now the support group of wecorp" in texts[0]
    assert "now the support group of bizco" in texts[1]
    await deliver(worker)
    assert any("Hello WeCorp" in c.content for c in wecom.to_group(ACME_KEY))


async def open_case(robot: RobotSender, wecom: FakeWeCom, worker: Worker) -> str:
    n = len(wecom.of("aibot/response"))
    await robot.say("@supportbot open S2 checkout returns 500", user=ZHANG, chat=ACME_CHAT)
    text = (await replies(wecom, n + 1))[n]
    await deliver(worker)
    return text


async def test_url_verification_answers_the_plaintext(robot: RobotSender) -> None:
    assert await robot.verify_url("1616140317555161061") == (200, "1616140317555161061")
    robot.crypto = robot.crypto.__class__("wrong-token", AES_KEY, "")
    status, text = await robot.verify_url("1616140317555161061")
    assert status == 401 and text == ""


async def test_open_a_case_from_a_wecom_group(robot: RobotSender, wecom: FakeWeCom,
                                              wworker: Worker, wctx: AppContext) -> None:
    await link_groups(robot, wecom, wworker)
    reply = await open_case(robot, wecom, wworker)
    assert "CS-1001" in reply and "(UTC+8)" in reply  # times in local time with the offset
    cards = [c.content for c in wecom.to_group(ACME_KEY) if "CS-1001" in c.content]
    assert len(cards) == 1
    # buttons cannot be clicked on a webhook message: the card says what to type instead
    assert "`@supportbot support card ack CS-1001`" in cards[0]
    assert "<b>" not in cards[0] and "<t:" not in cards[0]
    dms = wecom.to_user(LI)
    assert len(dms) == 1 and "New case CS-1001" in dms[0].content
    assert dms[0].body["agentid"] == AGENT_ID and dms[0].body["enable_duplicate_check"] == 1
    async with wctx.db.read() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.channel_id == "wecom:" + ACME_CHAT
    assert case.team_id == CORP and case.opener_user_id == "wecom:" + ZHANG


async def test_staff_ack_records_the_first_response(robot: RobotSender, wecom: FakeWeCom,
                                                    wworker: Worker, wctx: AppContext) -> None:
    await link_groups(robot, wecom, wworker)
    await open_case(robot, wecom, wworker)
    await robot.say("@supportbot tam ack CS-1001", user=LI, chat=ACME_CHAT)
    texts = await replies(wecom, 4)
    assert "CS-1001" in texts[3] and "first response" in texts[3].lower()
    async with wctx.db.read() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.first_response_at is not None


async def test_breach_notice_reaches_the_tam_once_across_a_restart(
        robot: RobotSender, wecom: FakeWeCom, wworker: Worker, wctx: AppContext,
        clock: Clock) -> None:
    await link_groups(robot, wecom, wworker)
    await open_case(robot, wecom, wworker)
    clock.advance(minutes=24, seconds=1)
    await deliver(wworker)
    clock.advance(minutes=6)
    await deliver(wworker)

    def breaches() -> list[str]:
        return [c.content for c in wecom.to_user(LI) if "SLA breach" in c.content]

    assert len(breaches()) == 1 and "CS-1001" in breaches()[0]
    restarted = make_worker(wctx, "restarted")  # a new process: fresh token, fresh pacing
    try:
        clock.advance(minutes=10)
        await deliver(restarted, 3)
    finally:
        await restarted.messenger.close()  # type: ignore[attr-defined]
    assert len(breaches()) == 1


async def test_an_advisory_reaches_slack_and_wecom_groups_once_each(
        robot: RobotSender, wecom: FakeWeCom, fake: FakeSlack, wworker: Worker,
        wctx: AppContext, clock: Clock) -> None:
    await link_groups(robot, wecom, wworker)
    admin = await resolve_actor(wctx, TEAM, ADMIN)
    spec = AdvisorySpec("Kernel patch", "security", "high", "Patch nginx by Friday.",
                        Targeting(accounts=frozenset({"acme", "wecorp"})))
    await send(wctx, admin, spec)
    for _ in range(3):
        await deliver(wworker)
        clock.advance(seconds=5)
    slack = [b for b in fake.posts_to(ACME_CH) if "Kernel patch" in str(b)]
    group = [c for c in wecom.to_group(ACME_KEY) if "Kernel patch" in c.content]
    assert len(slack) == 1 and len(group) == 1
    assert "`@supportbot support acknowledge AD-1001`" in group[0].content


async def test_a_bad_signature_gets_401_and_changes_nothing(
        robot: RobotSender, wecom: FakeWeCom, wctx: AppContext, caplog: pytest.LogCaptureFixture
        ) -> None:
    await link_groups(robot, wecom, make_worker(wctx))
    payload = robot.text_message("@supportbot open S1 evil", user=ZHANG, chat=ACME_CHAT)
    with caplog.at_level(logging.WARNING):
        status, _ = await robot.send(payload, signature="0" * 40)
    assert status == 401
    assert [r.getMessage() for r in caplog.records
            if "WeCom callback refused" in r.getMessage()] == \
        ["WeCom callback refused: bad signature"]
    async with wctx.db.read() as s:
        assert await Cases(s).count() == 0
    assert len(wecom.of("aibot/response")) == 2  # the two links only


async def test_a_replayed_msgid_does_nothing_twice(robot: RobotSender, wecom: FakeWeCom,
                                                   wworker: Worker, wctx: AppContext) -> None:
    await link_groups(robot, wecom, wworker)
    payload = robot.text_message("@supportbot open S3 disk full", user=ZHANG, chat=ACME_CHAT,
                                 msgid="CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=")
    assert await robot.send(payload) == (200, "")
    await replies(wecom, 3)
    assert await robot.send(payload) == (200, "")  # WeCom delivering again
    await deliver(wworker)
    async with wctx.db.read() as s:
        assert await Cases(s).count() == 1
    assert len(wecom.of("aibot/response", ok_only=False)) == 3
    assert len([c for c in wecom.to_group(ACME_KEY) if "CS-1001" in c.content]) == 1


async def test_unbound_group_and_other_tenant_are_refused(
        robot: RobotSender, wecom: FakeWeCom, wworker: Worker, wctx: AppContext) -> None:
    await link_groups(robot, wecom, wworker)
    await robot.say("@supportbot open S2 help", user=ZHANG, chat=LOOSE_CHAT)
    assert "This channel is not a support group yet" in (await replies(wecom, 3))[2]
    await open_case(robot, wecom, wworker)  # CS-1001 in WeCorp's group
    # a member of bizco's group tries to close WeCorp's case: denied and audited
    await robot.say("@supportbot close CS-1001", user=WANG, chat=BIZ_CHAT)
    texts = await replies(wecom, 5)
    assert texts[4] == "本群中没有该案例。"  # bizco reads Chinese; as if there were no such case
    async with wctx.db.read() as s:
        case = await Cases(s).get(1)
        denials = await Audit(s).by_action("denied:case")
    assert case is not None and case.status.value == "open"
    assert [(e.actor, e.team_id, e.account_key) for e in denials] == \
        [("wecom:" + WANG, CORP, "bizco")]


async def test_link_without_webhook_is_refused_and_the_key_is_stored_encrypted(
        robot: RobotSender, wecom: FakeWeCom, wctx: AppContext) -> None:
    await robot.say("@supportbot tam link wecorp", user=LI, chat=ACME_CHAT)
    assert "webhook=" in (await replies(wecom, 1))[0]
    await robot.say(f"@supportbot tam link wecorp webhook={ACME_KEY}", user=LI, chat=ACME_CHAT)
    reply = (await replies(wecom, 2))[1]
    assert "now the support group" in reply and ACME_KEY not in reply
    async with wctx.db.read() as s:
        stored = await GroupSecrets(s).get("wecom:" + ACME_CHAT)
    assert stored is not None and ACME_KEY.encode() not in stored


async def test_rate_limited_then_delivered_once(robot: RobotSender, wecom: FakeWeCom,
                                                wworker: Worker, wctx: AppContext,
                                                clock: Clock) -> None:
    await link_groups(robot, wecom, wworker)
    wecom.fail("webhook/send", 45009)
    await open_case(robot, wecom, wworker)

    def cards() -> list[str]:
        return [c.content for c in wecom.to_group(ACME_KEY) if "CS-1001" in c.content]

    assert cards() == []
    failed = [c for c in wecom.of("webhook/send", ok_only=False) if c.errcode == 45009]
    assert len(failed) == 1
    for _ in range(10):
        if cards():
            break
        clock.advance(seconds=61)
        await deliver(wworker)
    assert len(cards()) == 1


async def test_the_webhook_key_never_reaches_the_logs(
        robot: RobotSender, wecom: FakeWeCom, wworker: Worker, wctx: AppContext,
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        await link_groups(robot, wecom, wworker)
        wecom.fail("webhook/send", -1)  # busy: retried
        wecom.fail("webhook/send", status=502)  # retried
        wecom.fail("webhook/send", 93000)  # an invalid key: given up at once
        await open_case(robot, wecom, wworker)
        for _ in range(5):
            clock.advance(seconds=30)
            await deliver(wworker)
    # the bot's records (the fake WeCom's own access log shows the URLs it was called on)
    records = [r for r in caplog.records if r.name != "aiohttp.access"]
    logged = "".join(f"{r.getMessage()} {r.args}" for r in records)
    for failure in ("errcode -1", "HTTP 502", "errcode 93000"):  # each failure was logged...
        assert f"WeCom webhook/send failed: {failure}" in logged
    assert ACME_KEY not in logged and BIZ_KEY not in logged  # ...without the key
    assert not any(t in logged for t in wecom.tokens)
    async with wctx.db.read() as s:
        assert await jobs.count(s, status=jobs.DEAD, kind="card.sync") == 1


async def test_slow_work_answers_at_once_and_replies_when_done(
        robot: RobotSender, wecom: FakeWeCom, wctx: AppContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.adapters.wecom.app as wecom_app

    monkeypatch.setattr(wecom_app, "ACK_BUDGET", 0.0)  # any work is slower than no budget
    await robot.say("@supportbot tam link wecorp webhook=" + ACME_KEY, user=LI, chat=ACME_CHAT)
    assert "now the support group of wecorp" in (await replies(wecom, 1))[0]


async def request_escort(robot: RobotSender, wecom: FakeWeCom, worker: Worker) -> str:
    """A WeCorp member asks for an escort day; the TAM's card arrives. Returns its task id."""
    n = len(wecom.of("aibot/response"))
    await robot.say("@supportbot escort 2026-12-15", user=ZHANG, chat=ACME_CHAT)
    assert "PR-1001" in (await replies(wecom, n + 1))[n]
    await deliver(worker)
    cards = wecom.cards_to(LI)
    assert len(cards) == 1
    return str(cards[0]["task_id"])


async def test_app_url_verification_uses_the_apps_own_token(app: AppSender) -> None:
    assert await app.verify_url("echo-app-1") == (200, "echo-app-1")
    app.crypto = app.crypto.__class__(TOKEN, AES_KEY, CORP_ID)  # the robot's, not the app's
    assert (await app.verify_url("echo-app-1"))[0] == 401


async def test_a_perk_is_approved_by_a_click_on_its_card(
        robot: RobotSender, app: AppSender, wecom: FakeWeCom, wworker: Worker,
        wctx: AppContext) -> None:
    await link_groups(robot, wecom, wworker)
    task_id = await request_escort(robot, wecom, wworker)
    card = wecom.cards_to(LI)[0]
    assert card["card_type"] == "button_interaction" and "PR-1001" in str(card)
    # Approve is a button whose key is the command; Reject needs a reason: typed instead
    assert [b["key"] for b in card["button_list"]] == ["/tam approve PR-1001"]
    assert {"keyname": "Reject", "value": "@supportbot tam reject PR-1001 <Reason for the "
            "customer>"} in card["horizontal_content_list"]
    click = app.click(LI, "/tam approve PR-1001", task_id, wecom.click_code(task_id))
    assert await app.send(click) == (200, "")
    updates = await wecom.wait_for(lambda: wecom.of("update_template_card"))
    assert updates[0].body["userids"] == [LI]
    assert updates[0].body["button"] == {"replace_name": "Done"}
    said = await wecom.wait_for(lambda: [c for c in wecom.to_user(LI)
                                         if "PR-1001 approved" in c.content])
    assert len(said) == 1
    async with wctx.db.read() as s:
        row = await PerkLedger(s).request(1)
    assert row is not None and row.status.value == "approved"
    assert row.decided_by == "wecom:" + LI
    await deliver(wworker)
    assert any("PR-1001" in c.content for c in wecom.to_group(ACME_KEY)[1:])
    # WeCom calling again with the same click: nothing is done twice
    assert await app.send(click) == (200, "")
    await deliver(wworker)
    assert len(wecom.of("update_template_card", ok_only=False)) == 1
    assert len([c for c in wecom.to_user(LI) if "PR-1001" in c.content]) == 1


async def test_a_click_by_someone_not_allowed_changes_nothing(
        robot: RobotSender, app: AppSender, wecom: FakeWeCom, wworker: Worker,
        wctx: AppContext) -> None:
    await link_groups(robot, wecom, wworker)
    task_id = await request_escort(robot, wecom, wworker)
    wecom.users.add(WANG)
    # a forwarded or forged card: the click runs as WANG, a customer, who is no staff
    click = app.click(WANG, "/tam approve PR-1001", task_id, wecom.click_code(task_id))
    assert await app.send(click) == (200, "")
    said = await wecom.wait_for(lambda: wecom.to_user(WANG))
    assert "for support staff" in said[0].content
    assert wecom.of("update_template_card") == []  # the card stays clickable
    async with wctx.db.read() as s:
        row = await PerkLedger(s).request(1)
        denials = await Audit(s).by_action("denied:tam approve")
    assert row is not None and row.status.value == "pending"
    assert [(d.actor, d.team_id) for d in denials] == [("wecom:" + WANG, CORP)]


async def test_texts_to_the_app_are_commands(
        robot: RobotSender, app: AppSender, wecom: FakeWeCom, wworker: Worker,
        wctx: AppContext) -> None:
    await link_groups(robot, wecom, wworker)
    await request_escort(robot, wecom, wworker)
    assert await app.send(app.text(LI, "tam reject PR-1001 no engineer free that day")) == \
        (200, "")
    said = await wecom.wait_for(lambda: [c for c in wecom.to_user(LI) if "PR-1001" in
                                         c.content and c.body.get("msgtype") == "markdown"])
    assert "rejected" in said[0].content
    async with wctx.db.read() as s:
        row = await PerkLedger(s).request(1)
    assert row is not None and row.status.value == "rejected"
    assert await app.send(app.text(LI, "tam 帮助")) == (200, "")
    helped = await wecom.wait_for(lambda: [c for c in wecom.to_user(LI)
                                           if "/tam ack" in c.content])
    assert "Chinese command words work too" in helped[0].content
    # a reply with a button (a plan change's quote to confirm) comes as a card to click
    assert await app.send(app.text(BOSS, "tam plan wecorp downgrade business")) == (200, "")
    cards = await wecom.wait_for(lambda: wecom.cards_to(BOSS))
    assert cards[0]["button_list"][0]["key"].startswith("/tam plan wecorp downgrade business")


async def test_a_staff_reply_in_the_group_is_the_first_response(
        robot: RobotSender, wecom: FakeWeCom, wworker: Worker, wctx: AppContext) -> None:
    await link_groups(robot, wecom, wworker)
    await open_case(robot, wecom, wworker)
    n = len(wecom.of("aibot/response"))
    # the customer's own follow-up does not count
    await robot.say("@supportbot CS-1001 still failing", user=ZHANG, chat=ACME_CHAT)
    async with wctx.db.read() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.first_response_at is None
    await robot.say("@supportbot CS-1001 looking at it now", user=LI, chat=ACME_CHAT)
    async with wctx.db.read() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.first_response_at is not None
    await deliver(wworker)
    assert len(wecom.of("aibot/response")) == n  # a reply on a case is not answered


async def test_a_robot_callback_claiming_another_corp_is_refused_and_audited(
        robot: RobotSender, wecom: FakeWeCom, wworker: Worker, wctx: AppContext) -> None:
    await link_groups(robot, wecom, wworker)
    await open_case(robot, wecom, wworker)
    payload = robot.text_message("@supportbot tam ack CS-1001", user=LI, chat=ACME_CHAT)
    payload["from"]["corpid"] = "wwOtherCorp"  # LI's id, in a corp where LI is nobody
    assert await robot.send(payload) == (200, "")
    texts = await replies(wecom, 4)
    assert "for support staff" in texts[3]
    async with wctx.db.read() as s:
        case = await Cases(s).get(1)
        denials = await Audit(s).by_action("denied:tam ack")
    assert case is not None and case.first_response_at is None
    assert [(d.actor, d.team_id) for d in denials] == [("wecom:" + LI, "wecom:wwOtherCorp")]
    # a group never linked cannot reach WeCorp's case by naming it
    await robot.say("@supportbot close CS-1001", user=ZHANG, chat=LOOSE_CHAT)
    assert "not a support group yet" in (await replies(wecom, 5))[4]
    async with wctx.db.read() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.status.value == "open"


async def test_app_callbacks_with_a_bad_signature_a_stale_time_or_another_corp_do_nothing(
        robot: RobotSender, app: AppSender, wecom: FakeWeCom, wworker: Worker,
        wctx: AppContext, caplog: pytest.LogCaptureFixture) -> None:
    import time

    await link_groups(robot, wecom, wworker)
    task_id = await request_escort(robot, wecom, wworker)
    click = app.click(LI, "/tam approve PR-1001", task_id, wecom.click_code(task_id))
    old = str(int(time.time()) - 301)
    with caplog.at_level(logging.WARNING):
        assert (await app.send(click, signature="0" * 40))[0] == 401
        assert (await app.send(click, timestamp=old))[0] == 401
        other = AppSender(app.url.removesuffix("/wecom/app/callback"), corp_id="wwOtherCorp")
        try:
            assert (await other.send(click))[0] == 401  # encrypted for another corp
        finally:
            await other.close()
        # the robot's callback refuses a stale time too
        payload = robot.text_message("@supportbot open S1 late", user=ZHANG, chat=ACME_CHAT)
        assert (await robot.send(payload, timestamp=old))[0] == 401
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused == ["WeCom app callback refused: bad signature",
                       "WeCom app callback refused: stale timestamp",
                       "WeCom app callback refused: wrong receive id",
                       "WeCom callback refused: stale timestamp"]
    await deliver(wworker)
    async with wctx.db.read() as s:
        row = await PerkLedger(s).request(1)
        assert await Cases(s).count() == 0
    assert row is not None and row.status.value == "pending"
    assert wecom.of("update_template_card", ok_only=False) == []
