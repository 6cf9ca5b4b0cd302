"""End to end over HTTP: signed requests into the bot's real aiohttp server, Web API calls
out to a local fake Slack. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.slack.app import make_client
from bot.adapters.slack.messenger import SlackMessenger
from bot.domain.model import CaseStatus
from bot.services.base import AppContext
from bot.worker import Worker
from storage import jobs
from storage.repos import Cases
from testkit.chat import ACME_CH, CUSTOMER, ENGINEER, OTHER_CUSTOMER, TAM
from testkit.fake_slack import FakeSlack
from testkit.fakes import Clock
from testkit.slack_harness import BotServer


async def deliver(worker: Worker, rounds: int = 2) -> None:
    for _ in range(rounds):
        await worker.run_once()


def card_posts(fake: FakeSlack) -> list[dict[str, Any]]:
    return [b for b in fake.posts_to(ACME_CH) if "Acknowledge" in json.dumps(b.get("blocks"))]


async def open_by_command(bot: BotServer, fake: FakeSlack, worker: Worker,
                          summary: str = "checkout API returns 500") -> dict[str, Any]:
    resp = await bot.command("support", f"open S2 {summary}", user=CUSTOMER, channel=ACME_CH)
    assert resp.status == 200
    reply: dict[str, Any] = json.loads(await resp.text())  # the reply is the ack's body
    assert "opened" in reply["text"]
    await deliver(worker)
    return reply


async def test_open_by_command_posts_card_and_dm(bot: BotServer, fake: FakeSlack,
                                                 worker: Worker, sctx: AppContext) -> None:
    reply = await open_by_command(bot, fake, worker)
    assert reply["response_type"] == "ephemeral" and "CS-1001" in reply["text"]
    assert "<!date^" in reply["text"]  # times as Slack date tokens
    cards = card_posts(fake)
    assert len(cards) == 1
    blocks = json.dumps(cards[0]["blocks"])
    assert "CS-1001" in blocks and "<!date^" in blocks
    assert "/support card ack CS-1001" in blocks  # the Acknowledge button's command
    assert fake.of("conversations.open")[0]["users"] == TAM
    dm = [b for b in fake.of("chat.postMessage") if b["channel"] == "D" + TAM]
    assert "New case CS-1001" in dm[0]["text"] and "/archives/CACME/p" in dm[0]["text"]
    assert any("New case CS-1001" in b["text"] for b in fake.posts_to("CDUTY"))
    assert not [b for b in fake.posts_to(ACME_CH) if "New case" in b.get("text", "")]


async def test_open_without_arguments_opens_modal_and_submission_opens_case(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext) -> None:
    await bot.command("support", "open", user=CUSTOMER, channel=ACME_CH)
    opened = await fake.wait_for(lambda: fake.of("views.open"))
    view = opened[0]["view"]
    assert view["callback_id"] == "open_case" and view["private_metadata"] == ACME_CH
    submission = {
        "type": "view_submission", "team": {"id": "T1"},
        "user": {"id": CUSTOMER, "team_id": "T1"}, "api_app_id": "A1", "trigger_id": "t",
        "view": {**view, "id": "V1", "state": {"values": {
            "severity": {"value": {"type": "static_select",
                                   "selected_option": {"value": "S1"}}},
            "summary": {"value": {"type": "plain_text_input", "value": "payments down"}},
            "description": {"value": {"type": "plain_text_input", "value": "all regions"}},
            "region": {"value": {"type": "static_select",
                                 "selected_option": {"value": "eu-paris"}}},
            "software": {"value": {"type": "plain_text_input", "value": "nginx"}},
        }}},
    }
    resp = await bot.interaction(submission)
    assert resp.status == 200
    eph = await fake.wait_for(lambda: fake.of("chat.postEphemeral"))
    assert "CS-1001" in eph[0]["text"] and "eu-paris" in eph[0]["text"]
    async with sctx.db.transaction() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.severity.value == "S1" and case.software == "nginx"
    assert case.description == "all regions" and case.region == "eu-paris"


async def test_modal_without_summary_gets_field_error_and_no_case(
        bot: BotServer, fake: FakeSlack, sctx: AppContext) -> None:
    submission = {
        "type": "view_submission", "team": {"id": "T1"}, "user": {"id": CUSTOMER},
        "view": {"id": "V1", "type": "modal", "callback_id": "open_case",
                 "private_metadata": ACME_CH,
                 "state": {"values": {
                     "severity": {"value": {"type": "static_select",
                                            "selected_option": {"value": "S3"}}},
                     "summary": {"value": {"type": "plain_text_input", "value": "   "}}}}},
    }
    resp = await bot.interaction(submission)
    body = json.loads(await resp.text())
    assert body["response_action"] == "errors" and "summary" in body["errors"]
    async with sctx.db.transaction() as s:
        assert await Cases(s).count() == 0


async def test_message_shortcut_opens_prefilled_form(bot: BotServer, fake: FakeSlack) -> None:
    await bot.interaction({
        "type": "message_action", "callback_id": "open_case_from_message",
        "trigger_id": "trig", "team": {"id": "T1"}, "user": {"id": CUSTOMER},
        "channel": {"id": ACME_CH}, "message": {"text": "DB replica lag > 10 min", "ts": "1.2"},
        "response_url": fake.response_url("sc")})
    view = (await fake.wait_for(lambda: fake.of("views.open")))[0]["view"]
    assert "DB replica lag" in json.dumps(view["blocks"])
    await submit_form(bot, view, "S2", "DB replica lag > 10 min")
    eph = await fake.wait_for(lambda: fake.of("chat.postEphemeral"))
    assert "CS-1001" in eph[0]["text"]


async def submit_form(bot: BotServer, view: dict[str, Any], severity: str,
                      summary: str) -> None:
    """Submit the intake form as Slack would, with the prefilled summary."""
    await bot.interaction({
        "type": "view_submission", "team": {"id": "T1"}, "user": {"id": CUSTOMER},
        "view": {**view, "id": "V2", "state": {"values": {
            "severity": {"value": {"type": "static_select",
                                   "selected_option": {"value": severity}}},
            "summary": {"value": {"type": "plain_text_input", "value": summary}}}}}})


async def test_reaction_offers_button_that_opens_prefilled_form(
        bot: BotServer, fake: FakeSlack) -> None:
    fake.messages[(ACME_CH, "1700000000.000900")] = "Our ECS instances keep rebooting"
    resp = await bot.event({"type": "reaction_added", "user": CUSTOMER, "reaction": "ticket",
                            "item": {"type": "message", "channel": ACME_CH,
                                     "ts": "1700000000.000900"}}, "Ev1")
    assert resp.status == 200
    offer = (await fake.wait_for(lambda: fake.of("chat.postEphemeral")))[0]
    assert offer["user"] == CUSTOMER
    button = offer["blocks"][1]["elements"][0]
    await bot.interaction({
        "type": "block_actions", "trigger_id": "trig2", "team": {"id": "T1"},
        "user": {"id": CUSTOMER}, "channel": {"id": ACME_CH}, "container": {},
        "response_url": fake.response_url("rx"),
        "actions": [{"action_id": button["action_id"], "value": button["value"],
                     "type": "button", "block_id": "b"}]})
    view = (await fake.wait_for(lambda: fake.of("views.open")))[0]["view"]
    assert "ECS instances keep rebooting" in json.dumps(view["blocks"])
    await submit_form(bot, view, "S3", "ECS instances keep rebooting")
    await fake.wait_for(lambda: [b for b in fake.of("chat.postEphemeral") if "CS-1001" in
                                 b.get("text", "")])


async def test_retried_event_does_its_work_once(bot: BotServer, fake: FakeSlack) -> None:
    event = {"type": "reaction_added", "user": CUSTOMER, "reaction": "ticket",
             "item": {"type": "message", "channel": ACME_CH, "ts": "1.5"}}
    assert (await bot.event(event, "EvSame")).status == 200
    await fake.wait_for(lambda: fake.of("chat.postEphemeral"))
    retry = await bot.event(event, "EvSame", extra_headers={"X-Slack-Retry-Num": "1",
                                                            "X-Slack-Retry-Reason": "timeout"})
    assert retry.status == 200
    # a different event that is a first delivery but carries a retry header still works
    await bot.event({**event, "item": {**event["item"], "ts": "1.6"}}, "EvOther",
                    extra_headers={"X-Slack-Retry-Num": "2"})
    await fake.wait_for(lambda: len(fake.of("chat.postEphemeral")) >= 2)
    await asyncio.sleep(0.2)  # give a (wrong) duplicate the chance to show up
    assert len(fake.of("chat.postEphemeral")) == 2


async def test_first_response_by_thread_reply_counts_staff_only(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext) -> None:
    await open_by_command(bot, fake, worker)
    card_ts = card_posts(fake)[0]
    async with sctx.db.transaction() as s:
        ts = (await Cases(s).get(1)).card_ts  # type: ignore[union-attr]
    assert ts is not None and card_ts
    await bot.event({"type": "message", "channel": ACME_CH, "user": CUSTOMER, "text": "any news?",
                     "ts": "1800000099.1", "thread_ts": ts}, "EvC")
    await bot.event({"type": "message", "channel": ACME_CH, "user": ENGINEER,
                     "text": "looking now", "ts": "1800000099.2", "thread_ts": ts}, "EvE")

    async def acked() -> bool:
        async with sctx.db.transaction() as s:
            case = await Cases(s).get(1)
        return case is not None and case.status is CaseStatus.ACKNOWLEDGED

    for _ in range(100):
        if await acked():
            break
        await asyncio.sleep(0.02)
    async with sctx.db.transaction() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.first_response_by == ENGINEER
    await deliver(worker)
    assert fake.of("chat.update") and fake.of("chat.update")[-1]["ts"] == ts


async def test_first_response_by_button_and_command(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext) -> None:
    await open_by_command(bot, fake, worker, "one")
    await open_by_command(bot, fake, worker, "two")
    click = {"type": "block_actions", "trigger_id": "t", "team": {"id": "T1"},
             "user": {"id": TAM}, "channel": {"id": ACME_CH}, "container": {},
             "actions": [{"action_id": "case_ack", "value": "1", "type": "button",
                          "block_id": "b"}]}
    await bot.interaction(click)
    eph = await fake.wait_for(lambda: fake.of("chat.postEphemeral"))
    assert "First response recorded" in eph[0]["text"]
    resp = await bot.command("tam", "ack CS-1002", user=TAM, channel=ACME_CH)
    assert "First response to CS-1002 recorded" in json.loads(await resp.text())["text"]
    async with sctx.db.transaction() as s:
        assert (await Cases(s).get(1)).status is CaseStatus.ACKNOWLEDGED  # type: ignore[union-attr]
        assert (await Cases(s).get(2)).status is CaseStatus.ACKNOWLEDGED  # type: ignore[union-attr]


async def test_forged_button_from_another_group_is_refused(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext) -> None:
    await open_by_command(bot, fake, worker)
    forged = {"type": "block_actions", "trigger_id": "t", "team": {"id": "T1"},
              "user": {"id": OTHER_CUSTOMER}, "channel": {"id": "CBIZ"}, "container": {},
              "actions": [{"action_id": "case_close", "value": "1", "type": "button",
                           "block_id": "b"}]}
    await bot.interaction(forged)
    eph = await fake.wait_for(lambda: fake.of("chat.postEphemeral"))
    assert "CS-1001" not in eph[0]["text"]
    async with sctx.db.transaction() as s:
        assert (await Cases(s).get(1)).status is CaseStatus.OPEN  # type: ignore[union-attr]


@pytest.mark.parametrize("tamper", ["signature", "stale", "future"])
async def test_bad_signature_or_timestamp_gets_401_and_changes_nothing(
        bot: BotServer, fake: FakeSlack, sctx: AppContext, tamper: str) -> None:
    import time

    kw: dict[str, Any] = {}
    if tamper == "signature":
        kw["signature"] = "v0=" + "0" * 64
    elif tamper == "stale":
        kw["timestamp"] = int(time.time()) - 600
    else:
        kw["timestamp"] = int(time.time()) + 600
    resp = await bot.command("support", "open S1 evil", user=CUSTOMER, channel=ACME_CH, **kw)
    assert resp.status == 401
    await asyncio.sleep(0.1)
    async with sctx.db.transaction() as s:
        assert await Cases(s).count() == 0
    assert fake.responses == []


async def test_health_ready_and_metrics(bot: BotServer) -> None:
    assert (await bot.get("/healthz"))[0] == 200
    status, body = await bot.get("/readyz")
    assert status == 200 and "ready" in body
    status, body = await bot.get("/metrics")
    assert status == 200 and "supportbot_timer_lag_seconds" in body


@pytest.mark.parametrize("status", [429, 503])
async def test_notice_survives_slack_429_and_5xx_exactly_once(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext, clock: Clock,
        status: int) -> None:
    await open_by_command(bot, fake, worker)
    clock.advance(minutes=24, seconds=1)
    await deliver(worker)
    clock.advance(minutes=6)
    # the worker's client does not retry by itself: the outbox retries, with backoff
    fake.fail("chat.postMessage", status, retry_after=1, times=3, channel="CDUTY")

    def breach_posts() -> list[dict[str, Any]]:
        return [b for b in fake.posts_to("CDUTY") if "SLA breach" in b["text"]]

    await deliver(worker)
    assert breach_posts() == []
    async with sctx.db.transaction() as s:  # the duty channel's digest waits to be posted
        assert await jobs.count(s, status=jobs.PENDING, kind="digest.sync") == 1
    for _ in range(10):  # backoff 1 s, 2 s, 4 s (or Retry-After)
        if breach_posts():
            break
        clock.advance(seconds=5)
        await deliver(worker)
    assert len(breach_posts()) == 1
    failed = [c.status for c in fake.calls if c.method == "chat.postMessage"
              and c.body.get("channel") == "CDUTY" and "SLA breach" in c.body.get("text", "")
              and not c.ok]
    assert failed == [status] * 3
    clock.advance(minutes=5)
    await deliver(worker)
    assert len(breach_posts()) == 1


async def test_slow_slack_times_out_and_is_retried_once(
        bot: BotServer, fake: FakeSlack, sctx: AppContext, clock: Clock) -> None:
    settings = replace(sctx.settings, slack_timeout_seconds=0.3)
    worker = Worker(replace(sctx, settings=settings),
                    SlackMessenger(make_client(settings, retries=False)), name="slow")
    await deliver(worker)  # the welcome messages of the seeded groups
    await bot.command("support", "open S3 x", user=CUSTOMER, channel=ACME_CH)
    fake.fail("chat.postMessage", 0, delay=1.0, times=1, channel=ACME_CH)
    await deliver(worker, 1)  # the card post times out (Slack may still have posted it)
    async with sctx.db.transaction() as s:
        case = await Cases(s).get(1)
    assert case is not None and case.card_ts is None
    clock.advance(seconds=5)
    await deliver(worker)
    await fake.wait_for(lambda: card_posts(fake))
    async with sctx.db.transaction() as s:
        case = await Cases(s).get(1)
    # the slow first call did post; the retry found it by its key instead of posting again
    assert case is not None and case.card_ts is not None
    assert len(card_posts(fake)) == 1
    assert fake.of("conversations.history")


async def test_slow_command_acks_empty_then_replies_through_response_url(
        bot: BotServer, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.adapters.slack import listeners

    monkeypatch.setattr(listeners, "ACK_BUDGET", 0.0)
    resp = await bot.command("support", "plan", user=CUSTOMER, channel=ACME_CH)
    assert resp.status == 200 and (await resp.text()) == ""
    reply = await fake.wait_for(lambda: fake.responses)
    assert "Acme Corp" in reply[0]["text"] and reply[0]["response_type"] == "ephemeral"


async def test_escort_request_approved_by_button_shortens_s2_target(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext,
        clock: Clock) -> None:
    resp = await bot.command("support", "escort 2026-12-10 1", user=CUSTOMER, channel=ACME_CH)
    assert "PR-1001" in json.loads(await resp.text())["text"]
    await deliver(worker)
    dm = next(b for b in fake.of("chat.postMessage") if b["channel"] == "D" + TAM)
    actions = next(b for b in dm["blocks"] if b["type"] == "actions")["elements"]
    approve = next(e for e in actions if e["action_id"] == "run_command")
    click = {"type": "block_actions", "trigger_id": "t", "team": {"id": "T1"},
             "user": {"id": TAM}, "channel": {"id": "D" + TAM}, "container": {},
             "response_url": fake.response_url("approve"),
             "actions": [{"action_id": "run_command", "value": approve["value"],
                          "type": "button", "block_id": "b"}]}
    # the same click forged by a customer is refused like the typed command would be
    await bot.interaction({**click, "user": {"id": CUSTOMER}})
    await fake.wait_for(lambda: fake.responses)
    assert "for support staff" in fake.responses[0]["text"]
    await bot.interaction(click)
    await fake.wait_for(lambda: len(fake.responses) >= 2)
    assert "PR-1001 approved" in fake.responses[1]["text"]
    await deliver(worker)
    assert any("approved" in b["text"] for b in fake.posts_to(ACME_CH))
    clock.now = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)
    resp = await bot.command("support", "open S2 sale traffic errors", user=CUSTOMER,
                             channel=ACME_CH)
    assert "&lt; 10 min" in await resp.text() or "< 10 min" in await resp.text()


async def test_reject_button_asks_for_a_reason_in_a_modal(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext) -> None:
    await bot.command("support", "review availability 2026-12-15", user=CUSTOMER,
                      channel=ACME_CH)
    await deliver(worker)
    dm = next(b for b in fake.of("chat.postMessage") if b["channel"] == "D" + TAM)
    actions = next(b for b in dm["blocks"] if b["type"] == "actions")["elements"]
    reject = next(e for e in actions if e["action_id"] == "run_command_ask")
    await bot.interaction({"type": "block_actions", "trigger_id": "t9", "team": {"id": "T1"},
                           "user": {"id": TAM}, "channel": {"id": "D" + TAM},
                           "container": {}, "actions": [{"action_id": "run_command_ask",
                                                         "value": reject["value"],
                                                         "type": "button", "block_id": "b"}]})
    view = (await fake.wait_for(lambda: fake.of("views.open")))[0]["view"]
    await bot.interaction({"type": "view_submission", "team": {"id": "T1"},
                           "user": {"id": TAM}, "view": {**view, "id": "V9", "state": {
                               "values": {"text": {"value": {"type": "plain_text_input",
                                                             "value": "change freeze"}}}}}})
    eph = await fake.wait_for(lambda: fake.of("chat.postEphemeral"))
    assert "PR-1001 rejected" in eph[0]["text"]
    await deliver(worker)
    assert any("change freeze" in b["text"] for b in fake.posts_to(ACME_CH))


async def test_refused_downgrade_and_unsubscribe_over_http(
        bot: BotServer, fake: FakeSlack, sctx: AppContext) -> None:
    await bot.command("support", "escort 2026-12-10 2", user=CUSTOMER, channel=ACME_CH)
    await bot.command("tam", "approve PR-1001", user=TAM, channel=ACME_CH)
    resp = await bot.command("tam", "plan acme downgrade business", user="UADMIN",
                             channel="CADMIN")
    assert "would leave Escort days overdrawn" in json.loads(await resp.text())["text"]
    resp = await bot.command("tam", "plan acme unsubscribe confirm", user="UADMIN",
                             channel="CADMIN")
    assert "cannot be unsubscribed mid-term" in json.loads(await resp.text())["text"]


async def test_report_chart_uses_the_three_upload_steps(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext,
        clock: Clock) -> None:
    await bot.command("support", "open S2 outage", user=CUSTOMER, channel=ACME_CH)
    await deliver(worker)
    clock.advance(days=7)  # into December: November is a finished month
    resp = await bot.command("tam", "report acme 2026-11", user=TAM, channel="CSTAFF")
    assert "being prepared" in json.loads(await resp.text())["text"]
    await deliver(worker)
    steps = [c.method for c in fake.calls if c.method.startswith("files.") or
             c.method == "upload"]
    assert steps == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    (png,) = fake.uploads.values()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    complete = fake.of("files.completeUploadExternal")[0]
    report = next(b for b in fake.posts_to(ACME_CH) if "Monthly service report" in b["text"])
    assert complete["channel_id"] == ACME_CH and complete["thread_ts"] == \
        fake.history[[m["text"] for m in fake.history].index(report["text"])]["ts"]


async def test_breaches_together_are_one_message_per_recipient_updated_in_place(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext,
        clock: Clock) -> None:
    """Five S1 cases breaching within the window: the duty channel and the TAM each get one
    chat.postMessage, then chat.update in place, and the message lists each case once."""
    for i in range(5):
        resp = await bot.command("support", f"open S1 outage {i}", user=CUSTOMER,
                                 channel=ACME_CH)
        assert resp.status == 200
        clock.advance(seconds=2)
        await deliver(worker)
    clock.advance(minutes=10)  # all five breach at once (warnings are past their deadline)
    for _ in range(4):
        await deliver(worker)
        clock.advance(seconds=1.5)
    posts = [b for b in fake.of("chat.postMessage") if b["channel"] in ("CDUTY", "D" + TAM)
             and ":rotating_light:" in b["text"]]
    assert sorted(b["channel"] for b in posts) == ["CDUTY", "D" + TAM]
    assert fake.of("chat.update", ok_only=True)
    for channel in ("CDUTY", "D" + TAM):
        (digest,) = [t for t in fake.reads_now(channel) if ":rotating_light:" in t]
        assert "SLA notices: 5 cases" in digest
        assert sorted(ln.split("*")[1] for ln in digest.splitlines() if ln.startswith("• ")) \
            == [f"CS-{1001 + i}" for i in range(5)]
        assert digest.count("/archives/CACME/p") == 5  # each case's card
