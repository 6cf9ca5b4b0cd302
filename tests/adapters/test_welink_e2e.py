"""WeLink end to end over HTTP: a WeLink group linked from Slack by name and webhook robot;
group posts, card messages to staff and the access token against a local fake WeLink that
checks what WeLink documents (token and channel, text of 1-500 characters, a fresh uuid, a
millisecond timeStamp, byte limits of cards), with its faults: HTTP 429 and 5xx, 48503,
58500, 58602, 41500. One advisory reaches a Slack, a WeCom and a WeLink group once each.
WeLink documents no callback for group messages, so there is no inbound side to test: see
README, "Connecting to WeLink". Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from cryptography.fernet import Fernet

from bot.adapters.slack.app import make_client
from bot.adapters.slack.messenger import SlackMessenger
from bot.app import messenger_for
from bot.domain.advisories import Targeting
from bot.pacing import Pacer
from bot.services import outbox
from bot.services.advisories import AdvisorySpec, send
from bot.services.base import AppContext, resolve_actor
from bot.worker import Worker
from handlers.core import Request, Router
from storage import jobs
from storage.repos import Bindings, GroupSecrets
from testkit.chat import ACME_CH, ADMIN, CUSTOMER, TEAM, Chat
from testkit.fake_slack import FakeSlack
from testkit.fake_wecom import AES_KEY, AGENT_ID, CORP_ID, CORP_SECRET, TOKEN, FakeWeCom
from testkit.fake_welink import CLIENT_ID, CLIENT_SECRET, WEBHOOK, FakeWeLink
from testkit.fakes import Clock

GROUP = "welink:welcorp-ops"
ROBOT = "0f3c9a1d5e7b4c2a8d6e1f0a9b8c7d6e"  # a webhook robot's token, as WeLink shapes them
OTHER_ROBOT = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
LI = "li.tam@welcorp"  # a WeLink user id (the TAM)
SLACK_WEL = "CWELCORP"  # welcorp's Slack channel, where its customers open cases
WECOM_CHAT, WECOM_KEY = "wrkWeComGroup01", "key-wecorp-5e7b4c2a"


@pytest.fixture
async def welink(clock: Clock) -> AsyncIterator[FakeWeLink]:
    f = FakeWeLink(clock=lambda: clock().timestamp(), robot_per_minute=20)
    await f.start()
    f.robots |= {ROBOT, OTHER_ROBOT}
    f.users |= {LI}
    yield f
    await f.close()


@pytest.fixture
async def lctx(sctx: AppContext, welink: FakeWeLink, router: Router) -> AppContext:
    """The Slack-wired, seeded context with WeLink configured, and the enterprise account
    `welcorp` whose TAM is a WeLink user."""
    settings = replace(sctx.settings, welink_client_id=CLIENT_ID,
                       welink_client_secret=CLIENT_SECRET, welink_api_url=welink.api_url,
                       secret_key=Fernet.generate_key().decode("ascii"))
    ctx = replace(sctx, settings=settings, address_platforms=frozenset({"welink"}),
                  remote_platforms=frozenset({"welink"}))
    chat = Chat(ctx, router)
    for line in (f"/tam staff add <user:welink:{LI}> tam",
                 '/tam account add welcorp enterprise annual start=2026-01-01 '
                 'name="WeLink Corp"',
                 f"/tam account assign welcorp <user:welink:{LI}>"):
        reply = await chat(ADMIN, "CADMIN", line)
        assert not reply.refused, reply.text
    return ctx


def make_worker(ctx: AppContext, name: str = "w") -> Worker:
    """A worker on the routing messenger, as `supportbot run` builds it; its pacing, the
    robots' minute count and the token's lifetime run on the test's clock."""
    messenger = messenger_for(ctx, SlackMessenger(make_client(ctx.settings, retries=False)))
    worker = Worker(ctx, messenger, name=name)

    def seconds() -> float:
        return ctx.clock().timestamp()

    s = ctx.settings
    worker.pacer = Pacer(s.channel_interval_seconds, s.channel_burst, s.workspace_rate,
                         max_wait=worker.pacer.max_wait, clock=seconds)
    for platform in messenger.platforms.values():
        platform.clock = seconds  # type: ignore[attr-defined]
    return worker


@pytest.fixture
async def lworker(lctx: AppContext) -> AsyncIterator[Worker]:
    w = make_worker(lctx)
    yield w
    await w.messenger.close()  # type: ignore[attr-defined]


async def deliver(worker: Worker, clock: Clock, rounds: int = 3, step: float = 61) -> None:
    for _ in range(rounds):
        await worker.run_once()
        clock.advance(seconds=step)


async def link(ctx: AppContext, router: Router, welink: FakeWeLink, *, account: str = "welcorp",
               group: str = GROUP, webhook: str | None = None) -> str:
    reply = await Chat(ctx, router)(
        ADMIN, "CADMIN", f"/tam link {account} group={group} "
        f"webhook={webhook or welink.webhook_url(ROBOT)}")
    return reply.text


async def test_a_welink_group_is_linked_from_slack_and_greeted_through_its_robot(
        lctx: AppContext, router: Router, welink: FakeWeLink, lworker: Worker,
        clock: Clock) -> None:
    text = await link(lctx, router, welink)
    assert "The group welink:welcorp-ops is now the support group of welcorp" in text
    assert ROBOT not in text
    async with lctx.db.read() as s:
        assert await Bindings(s).bound_account_key(GROUP) == "welcorp"
        stored = await GroupSecrets(s).get(GROUP)
    assert stored is not None and ROBOT.encode() not in stored  # encrypted
    await deliver(lworker, clock, 1)
    [hello] = welink.to_group(ROBOT)
    assert hello.text.startswith("Hello WeLink Corp!") and "/support" not in hello.text
    assert hello.params == {"token": ROBOT, "channel": "standard"}
    assert hello.body["messageType"] == "text" and hello.body["isAt"] is False
    assert len(hello.body["uuid"]) == 32 and isinstance(hello.body["timeStamp"], int)


@pytest.mark.parametrize(("option", "answer"), [
    ("group=welink:welcorp-ops", "add it, e.g."),  # no webhook=
    (f"group=wecom:somechat webhook={ROBOT}", "is not a group the bot can link from here"),
    (f"group=welink:bad/name webhook={ROBOT}", "is not a group the bot can link from here"),
    (f"group=welink: webhook={ROBOT}", "is not a group the bot can link from here"),
])
async def test_a_bad_link_is_refused_and_changes_nothing(
        lctx: AppContext, router: Router, option: str, answer: str) -> None:
    async with lctx.db.read() as s:
        queued = await jobs.count(s)
    reply = await Chat(lctx, router)(ADMIN, "CADMIN", f"/tam link welcorp {option}")
    assert reply.refused and answer in reply.text, reply.text
    async with lctx.db.read() as s:
        assert await Bindings(s).bound_account_key(GROUP) is None
        assert await GroupSecrets(s).get(GROUP) is None
        assert await Bindings(s).bound_account_key("CADMIN") is None
        assert await jobs.count(s) == queued  # no welcome queued


async def test_group_option_without_welink_is_refused(sctx: AppContext, router: Router
                                                      ) -> None:
    reply = await Chat(sctx, router)(ADMIN, "CADMIN",
                                     f"/tam link acme group={GROUP} webhook={ROBOT}")
    assert reply.refused and "WeLink is not configured" in reply.text
    async with sctx.db.read() as s:
        assert await Bindings(s).bound_account_key(GROUP) is None


async def test_an_advisory_reaches_slack_wecom_and_welink_groups_once_each(
        lctx: AppContext, router: Router, fake: FakeSlack, welink: FakeWeLink,
        clock: Clock) -> None:
    wecom = FakeWeCom()
    await wecom.start()
    wecom.webhook_keys.add(WECOM_KEY)
    settings = replace(lctx.settings, wecom_corp_id=CORP_ID, wecom_token=TOKEN,
                       wecom_encoding_aes_key=AES_KEY, wecom_agent_id=AGENT_ID,
                       wecom_secret=CORP_SECRET, wecom_api_url=wecom.api_url)
    ctx = replace(lctx, settings=settings,
                  address_platforms=frozenset({"wecom", "welink"}))
    worker = make_worker(ctx)
    try:
        # the WeCom group links itself (typed in it); the WeLink group is linked from Slack
        added = await Chat(ctx, router)(
            ADMIN, "CADMIN", '/tam account add wecorp enterprise annual start=2026-01-01 '
            'name="WeCorp"')
        assert not added.refused, added.text
        wecom_link = await router.dispatch(Request(
            "tam", f"link wecorp webhook={WECOM_KEY}", "wecom:" + CORP_ID,
            "wecom:" + WECOM_CHAT, ADMIN), ctx)
        assert not wecom_link.refused, wecom_link.text
        assert "now the support group" in await link(ctx, router, welink)
        await deliver(worker, clock, 2, 5)
        admin = await resolve_actor(ctx, TEAM, ADMIN)
        spec = AdvisorySpec("Kernel patch", "security", "high", "Patch nginx by Friday.",
                            Targeting(accounts=frozenset({"acme", "wecorp", "welcorp"})))
        await send(ctx, admin, spec)
        # each platform fails once on the way: a retry delays, never loses or doubles
        welink.fail(WEBHOOK, "58500")
        wecom.fail("webhook/send", -1)
        fake.fail("chat.postMessage", 503)
        await deliver(worker, clock, 6, 61)
        slack = [b for b in fake.posts_to(ACME_CH) if "Kernel patch" in str(b)]
        wecom_posts = [c for c in wecom.to_group(WECOM_KEY) if "Kernel patch" in c.content]
        welink_posts = [c for c in welink.to_group(ROBOT) if "Kernel patch" in c.text]
        assert (len(slack), len(wecom_posts), len(welink_posts)) == (1, 1, 1)
        assert "Patch nginx by Friday." in welink_posts[0].text
        assert "acknowledge" not in welink_posts[0].text  # nothing a WeLink member can do
        failed = [c for c in welink.to_group(ROBOT, ok_only=False) if c.code == "58500"]
        assert len(failed) == 1
        assert [c.errcode for c in wecom.to_group(WECOM_KEY, ok_only=False)].count(-1) == 1
        assert len(fake.of("chat.postMessage", ok_only=False)) > \
            len(fake.of("chat.postMessage"))  # Slack's 503 was met, and retried
    finally:
        await worker.messenger.close()  # type: ignore[attr-defined]
        await wecom.close()


async def test_429_5xx_and_48503_delay_a_post_but_never_lose_or_double_it(
        lctx: AppContext, router: Router, welink: FakeWeLink, lworker: Worker,
        clock: Clock) -> None:
    welink.fail(WEBHOOK, status=429, retry_after="30")
    welink.fail(WEBHOOK, status=502)
    welink.fail(WEBHOOK, "48503")
    await link(lctx, router, welink)
    await deliver(lworker, clock, 8)
    calls = welink.to_group(ROBOT, ok_only=False)
    assert [(c.status, c.code) for c in calls] == \
        [(429, "0"), (502, "0"), (200, "48503"), (200, "0")]
    assert len(welink.to_group(ROBOT)) == 1
    assert len({c.body["uuid"] for c in calls}) == 4  # a fresh uuid on every call


async def test_a_disabled_robot_ends_the_job_at_once_and_the_token_is_never_logged(
        lctx: AppContext, router: Router, welink: FakeWeLink, lworker: Worker,
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    welink.fail(WEBHOOK, "58602")  # robot not enabled: retrying cannot help
    with caplog.at_level(logging.DEBUG):
        await link(lctx, router, welink)
        await deliver(lworker, clock, 4)
    assert len(welink.to_group(ROBOT, ok_only=False)) == 1
    async with lctx.db.read() as s:
        assert await jobs.count(s, status=jobs.DEAD) == 1
    records = [r for r in caplog.records if r.name != "aiohttp.access"]
    logged = "".join(f"{r.getMessage()} {r.args}" for r in records)
    assert "WeLink webhook/send failed: code 58602" in logged
    assert ROBOT not in logged and CLIENT_SECRET not in logged


async def test_each_robot_gets_at_most_20_a_minute_and_a_long_message_goes_in_parts(
        lctx: AppContext, router: Router, welink: FakeWeLink, lworker: Worker,
        clock: Clock) -> None:
    await link(lctx, router, welink)
    await deliver(lworker, clock, 1)
    async with lctx.db.transaction() as s:
        for i in range(24):
            await outbox.post(s, lctx.clock(), channel=GROUP, text=f"notice {i}",
                              key=f"n{i}")
        await outbox.post(s, lctx.clock(), channel=GROUP, key="long",
                          text="\n".join(f"line {i}: " + "x" * 90 for i in range(12)))
    for _ in range(12):
        await lworker.run_once()
        clock.advance(seconds=10)
    sent = welink.to_group(ROBOT)
    assert not [c for c in welink.to_group(ROBOT, ok_only=False) if c.code == "48503"]
    texts = [c.text for c in sent]
    assert sorted(t for t in texts if t.startswith("notice")) == \
        sorted(f"notice {i}" for i in range(24))
    long_parts = [t for t in texts if t.startswith("line")]
    assert len(long_parts) == 3 and all(len(t) <= 500 for t in long_parts)
    assert "\n".join(long_parts).count("line ") == 12


async def test_breach_notices_reach_a_welink_tam_as_cards_once_with_one_token(
        lctx: AppContext, router: Router, welink: FakeWeLink, lworker: Worker,
        clock: Clock) -> None:
    chat = Chat(lctx, router)
    assert "now the support group" in (await chat(ADMIN, SLACK_WEL, "/tam link welcorp")).text
    welink.fail("messages/v2/card/common", "41500")  # a token WeLink no longer takes
    opened = await chat(CUSTOMER, SLACK_WEL, "/support open S2 checkout returns 500")
    assert "CS-1001" in opened.text
    await deliver(lworker, clock, 1, 24 * 60 + 1)
    await deliver(lworker, clock, 3, 6 * 60)

    def cards(word: str) -> list[str]:
        return [c.text for c in welink.to_user(LI) if word in c.text]

    assert len(cards("SLA breach")) == 1 and "CS-1001" in cards("SLA breach")[0]
    assert len(welink.of("auth/v2/tickets")) == 2  # the first, and one after 41500
    card = welink.to_user(LI)[0].body
    assert card["msgOwner"] == "supportbot" and card["toUserList"] == [LI]
    restarted = make_worker(lctx, "restarted")
    try:
        await deliver(restarted, clock, 3, 600)
    finally:
        await restarted.messenger.close()  # type: ignore[attr-defined]
    assert len(cards("SLA breach")) == 1
