"""Quiet, countable HTTP: unsigned requests and failed Web API calls are one log line each,
requests are counted by route and status, Bolt needs no network to accept a request, and the
catalog's target error reads as README promises."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from bot.adapters.slack.app import Workspace, build_bolt, make_client
from bot.domain.catalog import CatalogError, parse_catalog
from bot.services.base import AppContext
from handlers.core import Router
from storage.repos import Cases
from testkit.chat import ACME_CH, CUSTOMER, Chat, seed
from testkit.fake_slack import FakeSlack
from testkit.slack_harness import TOKEN, BotServer

UNREACHABLE = "http://127.0.0.1:9/api/"
README = Path(__file__).resolve().parents[2] / "README.md"


async def _bot(ctx: AppContext, router: Router, fake: FakeSlack,
               api_url: str) -> BotServer:
    sctx = replace(ctx, settings=replace(ctx.settings, slack_api_url=api_url,
                                         slack_bot_token=TOKEN,
                                         slack_signing_secret="test-signing-secret-0123456789",
                                         slack_timeout_seconds=1.0))
    await seed(Chat(sctx, router))
    b = BotServer(sctx, router, fake)
    await b.start()
    return b


@pytest.fixture
async def bot(ctx: AppContext, router: Router, fake: FakeSlack) -> AsyncIterator[BotServer]:
    b = await _bot(ctx, router, fake, fake.api_url)
    yield b
    await b.close()


@pytest.fixture
async def offline_bot(ctx: AppContext, router: Router,
                      fake: FakeSlack) -> AsyncIterator[BotServer]:
    """The bot with its Web API unreachable (nothing listens on port 9)."""
    b = await _bot(ctx, router, fake, UNREACHABLE)
    yield b
    await b.close()


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records), [
        r.getMessage() for r in caplog.records if r.exc_info]


def unsigned_form() -> str:
    return urlencode({"team_id": "T1", "channel_id": ACME_CH, "user_id": CUSTOMER,
                      "command": "/support", "text": "open S1 unsigned", "trigger_id": "t"})


@pytest.mark.parametrize("headers", [
    {},
    {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": ""},
    {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=" + "a" * 64},
    {"X-Slack-Request-Timestamp": "1700000000"},
    {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=zz"},
    {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=" + "é" * 64},
    {"X-Slack-Request-Timestamp": "١٧٠٠٠٠٠٠٠٠", "X-Slack-Signature": "v0=" + "a" * 64},
], ids=["none", "empty", "word-timestamp", "no-signature", "short-signature",
        "non-ascii-signature", "arabic-digits"])
async def test_unsigned_or_malformed_headers_get_401_and_one_log_line(
        bot: BotServer, caplog: pytest.LogCaptureFixture, headers: dict[str, str]) -> None:
    caplog.set_level(logging.DEBUG)
    assert bot.http is not None
    resp = await bot.http.post(bot.url + "/slack/events", data=unsigned_form().encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded",
                                        **headers})
    assert resp.status == 401
    assert "Traceback" not in await resp.text()
    no_tracebacks(caplog)
    refused = [r for r in caplog.records if "unsigned Slack request refused" in r.getMessage()]
    assert len(refused) == 1 and "\n" not in refused[0].getMessage()
    async with bot.ctx.db.transaction() as s:
        assert await Cases(s).count() == 0  # nothing happened


async def test_a_wrong_signature_is_still_refused_by_verification(
        bot: BotServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    resp = await bot.command("support", "open S1 forged", user=CUSTOMER, channel=ACME_CH,
                             signature="v0=" + "1" * 64)
    assert resp.status == 401
    no_tracebacks(caplog)
    async with bot.ctx.db.transaction() as s:
        assert await Cases(s).count() == 0


async def test_a_malformed_signed_payload_is_one_log_line(
        bot: BotServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    resp = await bot.post_raw("payload=%7Bnot-json", "application/x-www-form-urlencoded")
    assert resp.status == 400
    no_tracebacks(caplog)


def counters(text: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        m = re.fullmatch(r'supportbot_http_requests_total\{platform="([a-z]+)",'
                         r'route="([^"]*)",status="(\d+)"\} (\S+)', line)
        if m:
            # the platform a route serves: /slack/… slack, /wecom/… wecom, /healthz … none
            assert m[1] == (m[2].split("/")[1] if m[2].startswith(("/slack/", "/wecom/"))
                            else "none")
            found[(m[2], m[3])] = float(m[4])
    return found


async def test_metrics_count_requests_by_route_and_status(bot: BotServer) -> None:
    status, before_text = await bot.get("/metrics")
    assert status == 200
    before = counters(before_text)
    # a 400 (signed, but not a shape Slack sends), a 401 (unsigned) and a 200 (a command)
    assert (await bot.post_raw("command=%2Fsupport&text=plan",
                               "application/x-www-form-urlencoded")).status == 400
    assert bot.http is not None
    unsigned = await bot.http.post(bot.url + "/slack/events", data=b"x=1")
    assert unsigned.status == 401
    assert (await bot.command("support", "plan", user=CUSTOMER, channel=ACME_CH)).status == 200
    assert (await bot.get("/healthz"))[0] == 200
    assert (await bot.get("/no/such/page"))[0] == 404
    _, after_text = await bot.get("/metrics")
    after = counters(after_text)

    def delta(route: str, code: str) -> float:
        return after.get((route, code), 0.0) - before.get((route, code), 0.0)

    assert delta("/slack/events", "400") == 1
    assert delta("/slack/events", "401") == 1
    assert delta("/slack/events", "200") == 1
    assert delta("/healthz", "200") == 1
    assert delta("unmatched", "404") == 1
    assert ("/metrics", "200") in after  # the first read was counted too
    assert not any("/no/such" in route for route, _ in after)


async def test_bolt_accepts_a_command_with_slack_unreachable(
        offline_bot: BotServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    resp = await offline_bot.command("support", "open S1 while Slack is down", user=CUSTOMER,
                                     channel=ACME_CH)
    assert resp.status == 200
    assert "CS-1001" in await resp.text()
    async with offline_bot.ctx.db.transaction() as s:
        assert await Cases(s).count() == 1
    no_tracebacks(caplog)
    assert not [r for r in caplog.records if "auth.test" in r.getMessage()]


async def test_a_failed_web_api_call_in_a_listener_is_one_line_with_method_and_error(
        offline_bot: BotServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    # no arguments: the listener opens the case form (views.open), which cannot reach Slack
    resp = await offline_bot.command("support", "open", user=CUSTOMER, channel=ACME_CH)
    assert resp.status == 200

    def failed() -> list[logging.LogRecord]:
        return [r for r in caplog.records
                if r.getMessage().startswith("Slack Web API call views.open failed: ")]

    for _ in range(200):  # the client's own retries come first
        if failed():
            break
        await asyncio.sleep(0.05)
    assert len(failed()) == 1
    assert "ClientConnectorError" in failed()[0].getMessage()
    await asyncio.sleep(0.2)  # on_error may still be writing: it must add no traceback
    no_tracebacks(caplog)


async def test_bolt_gives_no_token_warnings_with_the_token_in_the_environment(
        ctx: AppContext, router: Router, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    s = replace(ctx.settings, slack_bot_token=TOKEN, slack_signing_secret="s")
    build_bolt(replace(ctx, settings=s), router, make_client(s))
    assert "will be unused" not in caplog.text
    assert "will be ignored" not in caplog.text


async def test_the_bot_learns_its_ids_from_auth_test(ctx: AppContext, fake: FakeSlack) -> None:
    s = replace(ctx.settings, slack_api_url=fake.api_url, slack_bot_token=TOKEN)
    workspace = Workspace(TOKEN)
    assert workspace.result(None, "T1", "U1").bot_user_id is None
    assert await workspace.learn(make_client(s, retries=False)) is True
    result = workspace.result(None, "T1", "U1")
    assert (result.bot_user_id, result.bot_id, result.bot_token) == ("UBOT", "BBOT", TOKEN)


async def test_learning_the_ids_logs_one_line_per_failure(
        ctx: AppContext, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    s = replace(ctx.settings, slack_api_url=UNREACHABLE, slack_bot_token=TOKEN)
    task = asyncio.create_task(Workspace(TOKEN).learn(make_client(s, retries=False),
                                                      first_delay=0.01, max_delay=0.02))
    for _ in range(200):
        if sum("auth.test failed" in r.getMessage() for r in caplog.records) >= 3:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    lines = [r.getMessage() for r in caplog.records if "auth.test failed" in r.getMessage()]
    assert len(lines) >= 3
    assert all(line.startswith("Slack Web API call auth.test failed: ClientConnectorError")
               for line in lines)
    no_tracebacks(caplog)


def _readme_example() -> str:
    m = re.search(r"`(catalog\.yaml: tiers\.business\.response\.S2: expected [^`]+)`",
                  README.read_text("utf-8"))
    assert m, "README no longer shows the catalog error example"
    return m[1]


@pytest.mark.parametrize("target", [{"hours": 4}, "4h", 30, [1], {"minutes": 5, "seconds": 1}])
def test_a_bad_target_reads_exactly_as_readme_promises(target: Any) -> None:
    data = yaml.safe_load((resources.files("bot.domain") / "catalog.yaml").read_text("utf-8"))
    data = copy.deepcopy(data)
    data["tiers"]["business"]["response"]["S2"] = target
    with pytest.raises(CatalogError) as info:
        parse_catalog(yaml.safe_dump(data), "catalog.yaml")
    assert str(info.value) == _readme_example()
