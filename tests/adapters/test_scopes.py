"""A token without a scope the bot needs: Slack answers missing_scope, and the bot treats that
as a permanent failure: one log line naming the scope, no endless retries, staff told in the
duty channel. Over HTTP against the fake Slack with the real worker and Slack messenger."""

from __future__ import annotations

import json
import logging

import pytest
from slack_sdk.errors import SlackApiError

from bot.adapters.slack.app import make_client
from bot.config import Settings
from bot.services import reports
from bot.services.base import AppContext
from bot.worker import Worker
from storage import jobs
from testkit.chat import ACME_CH, CUSTOMER, TAM
from testkit.fake_slack import FakeSlack, manifest_bot_scopes
from testkit.fakes import Clock
from testkit.slack_harness import TOKEN, BotServer

DUTY = "CDUTY"  # the duty channel of the test settings


@pytest.fixture
def sctx(sctx: AppContext) -> AppContext:
    """The shared Slack-wired context; these tests read its duty channel's posts."""
    assert sctx.settings.duty_channel == DUTY
    return sctx


async def drain(worker: Worker, clock: Clock, rounds: int = 4) -> None:
    """Run every due job, then move past any backoff, a few times over."""
    for _ in range(rounds):
        await worker.run_once()
        clock.advance(minutes=10)


def lines(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


async def test_fake_slack_answers_missing_scope_like_slack(fake: FakeSlack) -> None:
    fake.scopes = manifest_bot_scopes() - {"files:write"}
    client = make_client(Settings(slack_api_url=fake.api_url, slack_bot_token=TOKEN),
                         retries=False)
    with pytest.raises(SlackApiError) as caught:
        await client.files_getUploadURLExternal(filename="a.png", length=3)
    assert caught.value.response["error"] == "missing_scope"
    assert caught.value.response["needed"] == "files:write"
    assert (await client.chat_postMessage(channel="C1", text="hi"))["ok"]
    # private channels and DMs need their own history scopes
    fake.scopes = manifest_bot_scopes() - {"groups:history"}
    assert (await client.conversations_history(channel="C1"))["ok"]
    with pytest.raises(SlackApiError) as caught:
        await client.conversations_history(channel="G1")
    assert caught.value.response["needed"] == "groups:history"
    # a method the scope table does not list is refused, so it cannot go unchecked
    with pytest.raises(SlackApiError) as caught:
        await client.users_info(user="U1")
    assert caught.value.response["error"] == "unknown_method"


async def test_chart_upload_without_files_write(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    fake.scopes = manifest_bot_scopes() - {"files:write"}  # an app installed before the fix
    await bot.command("support", "open S2 outage", user=CUSTOMER, channel=ACME_CH)
    await drain(worker, clock, rounds=1)
    clock.advance(days=7)  # into December: November is a finished month
    caplog.set_level(logging.WARNING)
    resp = await bot.command("tam", "report acme 2026-11", user=TAM, channel="CSTAFF")
    assert "being prepared" in json.loads(await resp.text())["text"]
    await drain(worker, clock)

    # the report text is posted; the chart's first step is refused once and never retried
    assert any("Monthly service report" in b["text"] for b in fake.posts_to(ACME_CH))
    refused = [c for c in fake.calls if c.method == "files.getUploadURLExternal"]
    assert len(refused) == 1 and not fake.uploads
    assert not fake.of("files.completeUploadExternal", ok_only=False)
    async with sctx.db.transaction() as s:
        assert await jobs.count(s, status=jobs.PENDING, kind=reports.POST) == 0
        assert await jobs.count(s, status=jobs.DONE, kind=reports.POST) == 1
    # one log line that names the scope
    (logged,) = lines(caplog, "could not be uploaded")
    assert "files.getUploadURLExternal: missing_scope (needs files:write)" in logged
    assert "\n" not in logged
    assert not any(r.exc_info for r in caplog.records if "could not be uploaded" in
                   r.getMessage())
    # staff hear of it in the duty channel, with what to do
    (notice,) = [b["text"] for b in fake.posts_to(DUTY) if "without its chart" in b["text"]]
    assert "2026-11" in notice and "acme" in notice
    assert "`files:write`" in notice and "reinstall" in notice
    assert not any("files:write" in b["text"] for b in fake.posts_to(ACME_CH))


async def test_missing_scope_on_a_job_fails_it_visibly_once(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    fake.scopes = manifest_bot_scopes() - {"im:write"}  # DMs cannot be opened
    caplog.set_level(logging.WARNING)
    await bot.command("support", "open S2 checkout is down", user=CUSTOMER, channel=ACME_CH)
    await drain(worker, clock)
    await drain(worker, clock)

    # each DM to the TAM (new case, then SLA notices) is given up after one refused call
    opens = [c for c in fake.calls if c.method == "conversations.open"]
    async with sctx.db.transaction() as s:
        dead = await jobs.count(s, status=jobs.DEAD)
        assert await jobs.count(s, status=jobs.PENDING, kind="msg.post") == 0
    assert dead >= 1 and len(opens) == dead
    logged = lines(caplog, "failed permanently")
    assert len(logged) == dead and len({m.split()[1] for m in logged}) == dead
    assert all("conversations.open: missing_scope (needs im:write)" in m and "\n" not in m
               for m in logged)
    notices = [b["text"] for b in fake.posts_to(DUTY) if "Gave up" in b["text"]]
    assert len(notices) == dead
    assert all(("msg.post" in n or "digest.sync" in n) and "`im:write`" in n and "reinstall" in n
               for n in notices)
    # the case itself still works: its card is in the group
    assert any("Acknowledge" in json.dumps(b.get("blocks")) for b in fake.posts_to(ACME_CH))


async def test_a_failure_notice_that_fails_is_not_announced_again(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    """Without chat:write nothing can be posted, the notices included: every job ends
    dead, and the notices about them do not beget further notices."""
    fake.scopes = manifest_bot_scopes() - {"chat:write"}
    caplog.set_level(logging.WARNING)
    await bot.command("support", "open S2 checkout is down", user=CUSTOMER, channel=ACME_CH)
    for _ in range(4):
        await drain(worker, clock)
    async with sctx.db.transaction() as s:
        assert await jobs.count(s, status=jobs.PENDING, kind="msg.post") == 0
        assert await jobs.count(s, status=jobs.PENDING, kind="card.sync") == 0
        dead = await jobs.count(s, status=jobs.DEAD)
    notices = [b for b in fake.of("chat.postMessage", ok_only=False)
               if b.get("channel") == DUTY and "Gave up" in str(b.get("text"))]
    originals = dead - len(notices)
    assert originals >= 2 and len(notices) == originals  # one notice per failed job, no more
    assert all("needs chat:write" in m for m in lines(caplog, "failed permanently"))
