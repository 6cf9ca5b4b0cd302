"""Advisories: targeting by tags, preview, paced idempotent broadcast, progress, ack, reminder."""

from __future__ import annotations

import pytest

from bot.messages import Message
from bot.services.base import AppContext
from bot.services.messenger import DeliveryError
from bot.worker import Worker
from storage import jobs
from storage.repos import Audit
from testkit.chat import ACME_CH, ADMIN, BIZ_CH, CUSTOMER, ENGINEER, NOWHERE_CH, TAM, Chat
from testkit.fakes import Clock, RecordingMessenger, drain

SEND = ('/tam advisory vulnerability high "OpenSSL CVE-2026-0001" '
        '"Upgrade OpenSSL on nginx hosts by Friday."')


@pytest.fixture
async def chat(chat: Chat) -> Chat:
    """The shared seeded world plus a second enterprise account with two groups."""
    c = chat
    # a second enterprise account with two groups, in another region
    for line in ("/tam account add zeta enterprise annual start=2026-01-01 region=cn-east-3 "
                 "lang=zh",):
        await c(ADMIN, NOWHERE_CH, line)
    await c(ADMIN, "CZ1", "/tam link zeta")
    await c(ADMIN, "CZ2", "/tam link zeta")
    return c


async def test_tags_target_and_preview_counts_groups(chat: Chat) -> None:
    reply = await chat(TAM, NOWHERE_CH, "/tam account tag zeta software=nginx,MySQL product=ecs")
    assert "software: mysql, nginx" in reply.text and "products: ecs" in reply.text
    assert "regions: —" in (await chat(TAM, NOWHERE_CH, "/tam account tag acme")).text
    # all enterprise accounts: acme (1 group) + zeta (2); business bizco is not included
    preview = await chat(TAM, NOWHERE_CH, SEND)
    assert "will reach 3 groups of 2 accounts" in preview.text
    assert preview.buttons and preview.buttons[0].command.endswith(" confirm")
    assert "2 groups of 1 account" in (await chat(TAM, NOWHERE_CH, SEND + " software=nginx")).text
    assert "1 group of 1 account" in (await chat(TAM, NOWHERE_CH,
                                            SEND + " regions=cn-north-4")).text
    assert "2 groups of 1 account" in (await chat(TAM, NOWHERE_CH, SEND + " accounts=zeta")).text
    assert "No group matches" in (await chat(TAM, NOWHERE_CH, SEND + " software=iis")).text


NOT_ENTERPRISE = ("bizco is on the Business plan: advisories (enterprise proactive care) "
                  "reach Enterprise accounts only. Name Enterprise accounts in accounts=, or "
                  "leave it out to reach all of them. Nothing was sent.")


async def test_advisories_reach_enterprise_accounts_only_even_when_named(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger) -> None:
    """Seed §5.7: proactive care (企业优护计划) is an Enterprise service. Naming a Business
    account does not widen it: refused with the rule, nothing sent, to anyone."""
    await drain(worker, rounds=3)
    messenger.sent.clear()
    for line in (SEND + " accounts=bizco", SEND + " accounts=bizco confirm",
                 SEND + " accounts=acme,bizco confirm"):
        reply = await chat(TAM, NOWHERE_CH, line)
        assert reply.refused and reply.text == NOT_ENTERPRISE, line
    await chat(ADMIN, NOWHERE_CH, "/tam staff add <user:UTAMZH> tam lang=zh")
    zh = await chat("UTAMZH", NOWHERE_CH, SEND + " accounts=bizco")
    assert zh.text.startswith("bizco 的支持级别为商业级：通告（企业优护计划）仅发送给企业级账号")
    async with ctx.db.transaction() as s:
        assert await Audit(s).by_action("advisory.send") == []
    # all enterprise accounts: the business group is not among them
    assert "on its way to 3 groups" in (await chat(TAM, NOWHERE_CH, SEND + " confirm")).text
    await drain(worker, rounds=3)
    assert {s.target for s in messenger.sent if s.kind == "post"} == {ACME_CH, "CZ1", "CZ2"}
    assert messenger.texts(target=BIZ_CH) == []


async def test_planned_events_are_excluded_where_an_advisory_is_made(chat: Chat) -> None:
    """Seed §5.7: planned events (e.g. 护网行动) are not covered; the pointer is MDR. Said in
    the preview, on the form and in help, in both languages."""
    note = ("Proactive care does not cover planned events such as red-team exercises "
            "(护网行动); for those, the customer can buy Managed Detection and Response (MDR).")
    preview = await chat(TAM, NOWHERE_CH, SEND)
    assert note in preview.text.splitlines()
    form = await chat(TAM, NOWHERE_CH, "/tam advisory", can_open_form=True)
    assert form.form is not None and form.form.description == note
    help_text = (await chat(TAM, NOWHERE_CH, "/tam help")).text
    assert "Managed Detection and Response (MDR)" in help_text and "red-team" in help_text
    await chat(ADMIN, NOWHERE_CH, "/tam staff add <user:UTAMZH> tam lang=zh")
    zh = await chat("UTAMZH", NOWHERE_CH, SEND)
    assert ("护网行动等计划性事件不在企业优护计划范围内；"
            "如有需求，客户可购买管理检测与响应 MDR。") in zh.text
    assert "管理检测与响应 MDR" in (await chat("UTAMZH", NOWHERE_CH, "/tam help")).text


@pytest.mark.parametrize(("line", "expected"), [
    ('/tam advisory worm high "t" "b"', "“worm” is not an advisory kind"),
    ('/tam advisory virus urgent "t" "b"', "“urgent” is not an advisory severity"),
    ('/tam advisory virus high "t"', "Give kind, severity, title and body"),
    ('/tam advisory virus high "" "b"', "title must be 1–150"),
    ('/tam advisory virus high "t" "b" regions=mars', "“mars” is not a region"),
    ('/tam advisory virus high "t" "b" accounts=nobody', "no account “nobody”"),
    ('/tam advisory virus high "t" "b" colour=red', "Unknown option “colour”"),
    ("/tam advisory status AD-1", "not an advisory id"),
])
async def test_bad_advisory_input(chat: Chat, ctx: AppContext, line: str,
                                  expected: str) -> None:
    assert expected in (await chat(TAM, NOWHERE_CH, line)).text
    async with ctx.db.transaction() as s:
        assert await Audit(s).by_action("advisory.send") == []


async def test_customers_cannot_broadcast(chat: Chat) -> None:
    assert "for support staff" in (await chat(CUSTOMER, ACME_CH, SEND + " confirm")).text


async def test_broadcast_progress_ack_status_and_one_reminder(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    await drain(worker, rounds=3)  # welcome messages
    messenger.sent.clear()
    messenger.failures = []
    reply = await chat(TAM, NOWHERE_CH, SEND + " confirm")
    assert "AD-1001 is on its way to 3 groups" in reply.text
    await drain(worker, rounds=3)
    posts = {s.target: s for s in messenger.sent if s.kind == "post"}
    assert set(posts) == {ACME_CH, "CZ1", "CZ2"}
    assert "OpenSSL CVE-2026-0001" in posts[ACME_CH].text
    assert "安全漏洞" in posts["CZ1"].text  # zeta reads Chinese labels
    assert posts[ACME_CH].buttons[0].command == "/support acknowledge AD-1001"
    progress = [s for s in messenger.sent if s.kind == "dm" and s.target == TAM]
    assert progress and "AD-1001" in progress[0].text
    updates = [s for s in messenger.sent if s.kind == "update"]
    assert updates and "done: sent 3 / 3, failed 0" in updates[-1].text

    assert "acknowledged for your team" in (await chat(CUSTOMER, ACME_CH,
                                                       "/support acknowledge AD-1001")).text
    assert "already acknowledged" in (await chat(CUSTOMER, ACME_CH,
                                                 "/support acknowledge AD-1001")).text
    assert "此群没有该通告" in (await chat(CUSTOMER, BIZ_CH,
                                        "/support acknowledge AD-1001")).text
    status = (await chat(ENGINEER, NOWHERE_CH, "/tam advisory status AD-1001")).text
    assert "sent 3 / 3, failed 0" in status
    assert f"acme: acknowledged by <user:{CUSTOMER}>" in status
    assert "not acknowledged yet: zeta" in status
    assert "acknowledged by 1 account" in (await chat(TAM, NOWHERE_CH,
                                                          "/tam advisories")).text

    clock.advance(hours=23)
    await drain(worker, rounds=3)
    assert not [s for s in messenger.sent if "has not acknowledged" in s.text]
    clock.advance(hours=2)
    await drain(worker, rounds=3)
    clock.advance(hours=48)
    await drain(worker, rounds=3)
    # zeta has no TAM: nobody to remind; acme acknowledged: no reminder either
    assert not [s for s in messenger.sent if "has not acknowledged" in s.text]
    await chat(ADMIN, NOWHERE_CH, "/tam account assign zeta <user:UTAM>")


async def test_reminder_goes_once_to_the_tam_of_an_unacknowledged_account(
        chat: Chat, worker: Worker, messenger: RecordingMessenger, clock: Clock) -> None:
    await chat(TAM, NOWHERE_CH, SEND + " accounts=acme confirm")
    await drain(worker, rounds=3)
    clock.advance(hours=25)
    await drain(worker, rounds=3)
    clock.advance(hours=25)
    await drain(worker, rounds=3)
    reminders = [s for s in messenger.sent if "has not acknowledged AD-1001" in s.text]
    assert [(r.kind, r.target) for r in reminders] == [("dm", TAM)]


async def test_a_group_the_bot_cannot_post_to_is_reported(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger) -> None:
    await drain(worker, rounds=3)
    original = messenger.post

    async def post(channel: str, message: Message, **kw: object) -> object:
        if channel == "CZ2" and "CVE" in message.text:
            raise DeliveryError("chat.postMessage: not_in_channel", permanent=True)
        return await original(channel, message, **kw)  # type: ignore[arg-type]

    messenger.post = post  # type: ignore[method-assign]
    await chat(TAM, NOWHERE_CH, SEND + " confirm")
    await drain(worker, rounds=3)
    final = [s for s in messenger.sent if s.kind == "update"][-1].text
    assert "sent 2 / 3, failed 1" in final and "CZ2 (zeta): chat.postMessage: not_in_channel" \
        in final
    async with ctx.db.transaction() as s:
        assert await jobs.count(s, status=jobs.PENDING, kind="advisory.post") == 0


@pytest.mark.parametrize(("broken", "waiting"), [
    ({"CZ1", "CZ2"}, "not acknowledged yet: acme"),  # zeta never got it
    ({"CZ2"}, "not acknowledged yet: acme, zeta"),  # zeta got it in CZ1
])
async def test_status_lists_unreachable_groups_as_failed_not_as_waiting(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        broken: set[str], waiting: str) -> None:
    await drain(worker, rounds=3)
    original = messenger.post

    async def post(channel: str, message: Message, **kw: object) -> object:
        if channel in broken and "CVE" in message.text:
            raise DeliveryError("chat.postMessage: is_archived", permanent=True)
        return await original(channel, message, **kw)  # type: ignore[arg-type]

    messenger.post = post  # type: ignore[method-assign]
    await chat(TAM, NOWHERE_CH, SEND + " confirm")
    await drain(worker, rounds=3)
    status = (await chat(ENGINEER, NOWHERE_CH, "/tam advisory status AD-1001")).text
    lines = status.splitlines()
    assert f"failed {len(broken)}, pending 0" in lines[0]
    assert f"• {waiting}" in lines
    plural = "1 group" if len(broken) == 1 else f"{len(broken)} groups"
    assert f"Failed, could not be reached ({plural}):" in lines
    for channel in sorted(broken):
        assert f"• could not post to {channel} (zeta): chat.postMessage: is_archived" in lines
    # the failed groups come after their heading, and nowhere else
    head = lines.index(f"Failed, could not be reached ({plural}):")
    assert all("could not post" in line for line in lines[head + 1:])
    assert len(lines) == head + 1 + len(broken)


async def test_advisory_confirmed_twice_is_sent_once(chat: Chat) -> None:
    line = '/tam advisory virus high "Worm X" "Patch" accounts=acme confirm'
    first = await chat(TAM, NOWHERE_CH, line)
    second = await chat(TAM, NOWHERE_CH, line)
    assert "AD-1001 is on its way" in first.text
    assert "already sent as AD-1001" in second.text


async def test_staff_cannot_acknowledge_for_the_customer(chat: Chat) -> None:
    await chat(TAM, NOWHERE_CH, '/tam advisory virus high "Worm X" "Patch" accounts=acme confirm')
    assert "for the customer's team" in (await chat(TAM, ACME_CH,
                                                   "/support acknowledge AD-1001")).text
    assert "There is no advisory AD-1009" in (await chat(TAM, NOWHERE_CH,
                                                        "/tam advisory status AD-1009")).text
