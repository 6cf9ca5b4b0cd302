"""Incidents through the router: declare (text and form), linking as cases open, staff
link/unlink, updates (the first response only when staff say so), resolution, what
customers see (their own account only), bad input, roles; each group's post exactly once
by the worker, also when a post is retried by another worker after a failure."""

from __future__ import annotations

import pytest

from bot.messages import Message
from bot.services.base import AppContext
from bot.services.messenger import DeliveryError, Posted
from bot.worker import Worker
from handlers.core import Kind, Request, Router
from storage import jobs
from storage.repos import Audit, Cases
from testkit.chat import ACME_CH, ADMIN, BIZ_CH, CUSTOMER, ENGINEER, NOWHERE_CH, TAM, TEAM, Chat
from testkit.fakes import Clock, RecordingMessenger, drain

DECLARE = '/tam incident declare cn-north-4 products=ecs "ECS instances unreachable"'


@pytest.fixture
async def chat(chat: Chat) -> Chat:
    """The seeded world (acme enterprise and bizco business, both cn-north-4) plus zeta,
    enterprise in cn-east-3 with two groups; acme runs ecs, bizco rds."""
    for line in ("/tam account add zeta enterprise annual start=2026-01-01 region=cn-east-3 "
                 "lang=zh", "/tam account tag acme product=ecs",
                 "/tam account tag bizco product=rds"):
        reply = await chat(ADMIN, NOWHERE_CH, line)
        assert not reply.refused, reply.text
    await chat(ADMIN, "CZ1", "/tam link zeta")
    await chat(ADMIN, "CZ2", "/tam link zeta")
    return chat


def posts(m: RecordingMessenger, word: str, *, threads: bool = True) -> dict[str, list[str]]:
    """Non-card group posts containing `word`, by channel (`threads=False`: not those in a
    case card's thread)."""
    out: dict[str, list[str]] = {}
    for s in m.sent:
        if s.kind == "post" and s.card is None and word in s.text and (
                threads or s.thread_ts is None):
            out.setdefault(s.target, []).append(s.text)
    return out


def last_card_field(m: RecordingMessenger, ref: str, label: str) -> str | None:
    cards = [s for s in m.sent if s.card is not None and s.card.title
             and s.card.title.startswith(ref)]
    assert cards, ref
    return cards[-1].field(label)


async def test_an_incident_from_declaration_to_resolution(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    await drain(worker, rounds=3)
    messenger.sent.clear()

    reply = await chat(TAM, NOWHERE_CH, DECLARE)
    assert "<b>INC-1001</b> declared: “ECS instances unreachable” in cn-north-4 (ecs)" \
        in reply.text
    assert "on its way to 1 group" in reply.text  # acme runs ecs; bizco rds; zeta elsewhere
    await drain(worker, rounds=3)
    assert list(posts(messenger, "INC-1001")) == [ACME_CH]
    progress = [s for s in messenger.sent if s.target in (TAM, f"DM-{TAM}")
                and "INC-1001" in s.text]
    assert progress and "status post done: sent 1 / 1, failed 0" in progress[-1].text

    # a case opened in the affected group is linked, and the customer reads the status
    opened = await chat(CUSTOMER, ACME_CH, "/support open S1 our ECS hosts are gone")
    assert "Case <b>CS-1001</b> opened" in opened.text
    assert "linked to platform incident <b>INC-1001</b> “ECS instances unreachable”" \
        in opened.text
    assert "Under investigation since" in opened.text
    # a case in a group it does not affect is not
    other = await chat(CUSTOMER, BIZ_CH, "/support open S2 rds slow")
    assert "INC-1001" not in other.text
    await drain(worker, rounds=3)
    assert last_card_field(messenger, "CS-1001", "Incident") == \
        "INC-1001 ECS instances unreachable"
    assert last_card_field(messenger, "CS-1002", "Incident") is None
    thread = [s for s in messenger.sent if s.kind == "post" and s.thread_ts
              and "INC-1001" in s.text]
    assert [s.target for s in thread] == [ACME_CH]

    # staff link the other case: its card says so
    linked = await chat(ENGINEER, NOWHERE_CH, "/tam incident link INC-1001 CS-1002")
    assert "CS-1002 is linked to INC-1001" in linked.text
    assert "already linked" in (await chat(ENGINEER, NOWHERE_CH,
                                           "/tam incident link inc-1001 cs-1002")).text
    await drain(worker, rounds=3)
    assert last_card_field(messenger, "CS-1002", "平台故障") == \
        "INC-1001 ECS instances unreachable"

    # an update without respond= is no first response; it reaches the linked case's group
    updated = await chat(TAM, NOWHERE_CH,
                         '/tam incident update INC-1001 "Root cause found, fix rolling out"')
    assert "on its way to 2 groups" in updated.text and "first response" not in updated.text
    await drain(worker, rounds=3)
    assert set(posts(messenger, "Root cause found")) == {ACME_CH, BIZ_CH}
    assert "CS-1001" in (await chat(CUSTOMER, ACME_CH, "/support sla")).text

    # what each customer sees: its own account's cases only
    mine = (await chat(CUSTOMER, ACME_CH, "/support incident")).text
    assert "INC-1001" in mine and "Root cause found, fix rolling out" in mine
    assert "CS-1001" in mine and "CS-1002" not in mine
    theirs = (await chat(CUSTOMER, BIZ_CH, "/support incident")).text
    assert "INC-1001" in theirs and "CS-1002" in theirs and "CS-1001" not in theirs
    assert "没有影响" in (await chat(CUSTOMER, "CZ1", "/support incident")).text

    # respond=yes: the first response of the linked cases still waiting, within target
    clock.advance(minutes=3)
    responded = await chat(TAM, NOWHERE_CH,
                           '/tam incident update INC-1001 "Recovering" respond=yes')
    assert "first response of 2 cases" in responded.text
    async with ctx.db.transaction() as s:
        for case_id in (1, 2):
            case = await Cases(s).get(case_id)
            assert case is not None and case.first_response_by == TAM
        audit = await Audit(s).by_action("case.first_response")
        assert {a.after["via"] for a in audit if a.after} == {"incident"}
    clock.advance(hours=2)
    await drain(worker, rounds=3)
    assert not [s for s in messenger.sent if "breach" in s.text.lower() and "CS-100" in s.text]

    # a third case, then the resolution: the linked cases still open are listed
    await chat(CUSTOMER, ACME_CH, "/support open S3 console slow")
    resolved = await chat(TAM, NOWHERE_CH, '/tam incident resolve INC-1001 "All recovered"')
    assert "<b>INC-1001</b> resolved" in resolved.text
    assert "3 linked cases are still open" in resolved.text
    for ref in ("CS-1001", "CS-1002", "CS-1003"):
        assert ref in resolved.text
    await drain(worker, rounds=3)
    final = posts(messenger, "All recovered")
    assert set(final) == {ACME_CH, BIZ_CH}
    assert "CS-1001" in final[ACME_CH][0] and "CS-1003" in final[ACME_CH][0]
    assert "CS-1002" not in final[ACME_CH][0] and "CS-1001" not in final[BIZ_CH][0]
    assert "already resolved" in (await chat(TAM, NOWHERE_CH,
                                             '/tam incident update INC-1001 "x"')).text
    # resolved: a new case is not linked any more
    assert "INC-1001" not in (await chat(CUSTOMER, ACME_CH, "/support open S2 again")).text
    listing = (await chat(ENGINEER, NOWHERE_CH, "/tam incident list")).text
    assert "<b>INC-1001</b> [resolved]" in listing and "reached 2 groups" in listing
    assert "3 cases linked, 1 waiting" in listing  # CS-1003 came after the update
    one = (await chat(ENGINEER, NOWHERE_CH, "/tam incident list INC-1001")).text
    assert "3 linked cases:" in one and "Resolved" in one

    # unlink
    assert "no longer linked" in (await chat(ENGINEER, NOWHERE_CH,
                                             "/tam incident unlink INC-1001 CS-1002")).text
    assert "is not linked" in (await chat(ENGINEER, NOWHERE_CH,
                                          "/tam incident unlink INC-1001 CS-1002")).text
    # every group got each post exactly once (outside case threads)
    for word in ("platform incident", "Root cause found", "Recovering", "All recovered"):
        per_group = posts(messenger, word, threads=False)
        assert per_group and all(len(v) == 1 for v in per_group.values()), word


async def test_without_products_the_whole_region_is_affected_and_region_tags_count(
        chat: Chat, ctx: AppContext, router: Router, worker: Worker,
        messenger: RecordingMessenger) -> None:
    reply = await chat(TAM, NOWHERE_CH, '/tam incident declare cn-east-3 "Network loss"')
    assert "on its way to 2 groups" in reply.text  # zeta's two groups
    await chat(ADMIN, NOWHERE_CH, "/tam account tag acme region=cn-east-3")
    preview = await chat(TAM, NOWHERE_CH, '/tam incident update INC-1001 "Still down"')
    assert "on its way to 3 groups" in preview.text
    await drain(worker, rounds=3)
    assert set(posts(messenger, "Still down")) == {ACME_CH, "CZ1", "CZ2"}
    # zeta reads Chinese: the status post, then the update
    assert len([t for t in posts(messenger, "Network loss")["CZ1"] if "平台故障 — " in t]) == 1

    # a case naming another region is not linked; one naming none (or its region) is
    async def open_form(region: str) -> str:
        reply = await router.dispatch(Request(
            root="support", text="open-form", team_id=TEAM, channel_id=ACME_CH,
            user_id=CUSTOMER, kind=Kind.FORM,
            fields={"severity": "S2", "summary": "hosts down", "region": region}), ctx)
        assert not reply.refused, reply.text
        return reply.text

    assert "INC-1001" not in await open_form("cn-north-4")
    assert "INC-1001" in await open_form("cn-east-3")
    assert "INC-1001" in await open_form("")


@pytest.mark.parametrize(("line", "expected"), [
    ("/tam incident declare", "Give the region and a title"),
    ('/tam incident declare mars "t"', "“mars” is not"),
    ("/tam incident declare cn-north-4", "title must be 1–150"),
    ('/tam incident declare cn-north-4 products=e$c "t"', "Products are short names"),
    ('/tam incident declare cn-north-4 colour=red "t"', "Unknown option “colour”"),
    ('/tam incident update INC-1 "x"', "not an incident reference"),
    ('/tam incident update INC-1009 "x"', "There is no incident INC-1009"),
    ("/tam incident update INC-1001", "Give the incident and the text"),
    ('/tam incident update INC-1001 "x" respond=maybe', "respond= takes yes or no"),
    ("/tam incident link INC-1001", "Give the incident and the case"),
    ("/tam incident link INC-1001 CS-1999", "No such case"),
    ("/tam incident resolve", "Give the incident"),
])
async def test_bad_incident_input_changes_nothing(chat: Chat, ctx: AppContext, line: str,
                                                  expected: str) -> None:
    await chat(TAM, NOWHERE_CH, '/tam incident declare cn-north-4 "Disk errors"')
    reply = await chat(TAM, NOWHERE_CH, line)
    assert reply.refused and expected in reply.text, reply.text
    async with ctx.db.transaction() as s:
        assert len(await Audit(s).by_action("incident.declare")) == 1
        assert await Audit(s).by_action("incident.update") == []
        assert await Audit(s).by_action("incident.link") == []


async def test_roles(chat: Chat) -> None:
    assert "for support staff" in (await chat(CUSTOMER, ACME_CH, DECLARE)).text
    refused = await chat(ENGINEER, NOWHERE_CH, DECLARE)
    assert refused.refused and "tam" in refused.text
    # an unbound channel has no account to show incidents for
    assert (await chat(CUSTOMER, NOWHERE_CH, "/support incident")).refused


async def test_the_form_declares_and_shows_errors_at_their_fields(
        chat: Chat, ctx: AppContext, router: Router) -> None:
    opened = await chat(TAM, NOWHERE_CH, "/tam incident declare", can_open_form=True)
    assert opened.form is not None and opened.form.kind == "incident"

    async def submit(**fields: str) -> object:
        return await router.dispatch(Request(
            root="tam", text="incident declare", team_id=TEAM, channel_id=NOWHERE_CH,
            user_id=TAM, kind=Kind.FORM, fields=fields), ctx)

    bad = await submit(region="mars", title="x")
    assert getattr(bad, "field_errors", {}).get("region")
    bad = await submit(region="cn-north-4", title="")
    assert getattr(bad, "field_errors", {}).get("title")
    ok = await submit(region="cn-north-4", title="RDS failover", products="rds")
    assert "<b>INC-1001</b> declared: “RDS failover” in cn-north-4 (rds)" in ok.text  # type: ignore[attr-defined]


async def test_each_group_gets_each_post_once_when_a_post_is_retried_elsewhere(
        chat: Chat, ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    first = Worker(ctx, messenger, name="first")
    await drain(first, rounds=3)
    messenger.sent.clear()
    original = messenger.post
    broken = {"CZ1"}

    async def post(channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        posted = await original(channel, message, thread_ts=thread_ts, key=key)
        if channel in broken and "Network loss" in message.text:
            broken.discard(channel)
            # it reached the group, then the connection dropped before the answer
            raise DeliveryError("connection reset")
        return posted

    messenger.post = post  # type: ignore[method-assign]
    await chat(TAM, NOWHERE_CH, '/tam incident declare cn-east-3 "Network loss"')
    await drain(first, rounds=3)
    # the retry runs on another worker (a restarted process), after the backoff
    clock.advance(minutes=5)
    second = Worker(ctx, messenger, name="second")
    await drain(second, rounds=3)
    clock.advance(minutes=5)
    await drain(second, rounds=3)
    assert {ch: len(v) for ch, v in posts(messenger, "Network loss").items()} == \
        {"CZ1": 1, "CZ2": 1}
    async with ctx.db.transaction() as s:
        assert await jobs.count(s, status=jobs.PENDING, kind="incident.post") == 0
    final = [s.text for s in messenger.sent if s.target in (TAM, f"DM-{TAM}")
             and "INC-1001" in s.text]
    assert "done: sent 2 / 2, failed 0" in final[-1]


async def test_a_group_the_bot_cannot_post_to_is_failed_once_and_reported(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger) -> None:
    await drain(worker, rounds=3)
    original = messenger.post
    tries: list[str] = []

    async def post(channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        if channel == "CZ2" and "Network loss" in message.text:
            tries.append(channel)
            raise DeliveryError("chat.postMessage: not_in_channel", permanent=True)
        return await original(channel, message, thread_ts=thread_ts, key=key)

    messenger.post = post  # type: ignore[method-assign]
    await chat(TAM, NOWHERE_CH, '/tam incident declare cn-east-3 "Network loss"')
    await drain(worker, rounds=4)
    assert tries == ["CZ2"]  # not retried
    final = [s.text for s in messenger.sent if s.target in (TAM, f"DM-{TAM}")
             and "INC-1001" in s.text][-1]
    assert "done: sent 1 / 2, failed 1" in final
    assert "CZ2 (zeta): chat.postMessage: not_in_channel" in final
    listing = (await chat(ENGINEER, NOWHERE_CH, "/tam incident list")).text
    assert "reached 1 group" in listing
