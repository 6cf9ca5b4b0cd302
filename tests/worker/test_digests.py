"""Notice digests (both databases): near-breach and breach notices to one recipient within
the window are one message, posted once and updated in place, listing each case once: in a
storm of 200 cases, with two worker replicas, and across a crash mid-window."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta

import pytest

from bot.domain.model import Lang
from bot.messages import Message
from bot.services.base import AppContext
from bot.services.digests import render
from bot.services.messenger import Posted
from bot.worker import Worker
from storage import jobs
from storage.repos.digests import DigestItem
from testkit.chat import ACME_CH, ADMIN, CUSTOMER, TAM, Chat
from testkit.fakes import (
    REF,
    Clock,
    RecordingMessenger,
    final_notices,
    notice_refs,
    with_settings,
)

TAM2 = "UTAM2"
GLOBEX_CH = "CGLOBEX"
ACME_N, GLOBEX_N = 150, 50  # 200 cases, two TAMs


async def open_storm(chat: Chat) -> dict[str, list[str]]:
    """200 S1 cases opened at one moment: 150 of acme (TAM), 50 of globex (TAM2, who reads
    Chinese); the refs by TAM."""
    for line in (f"/tam staff add <user:{TAM2}> tam lang=zh",
                 '/tam account add globex enterprise annual start=2026-01-01 name="Globex"',
                 f"/tam account assign globex <user:{TAM2}>"):
        await chat(ADMIN, ACME_CH, line)
    assert "globex" in (await chat(ADMIN, GLOBEX_CH, "/tam link globex")).text
    for i in range(ACME_N):
        await chat(CUSTOMER, ACME_CH, f"/support open S1 outage {i}")
    for i in range(GLOBEX_N):
        await chat(CUSTOMER, GLOBEX_CH, f"/support open S1 outage {i}")
    refs = [f"CS-{1001 + i}" for i in range(ACME_N + GLOBEX_N)]
    return {TAM: refs[:ACME_N], TAM2: refs[ACME_N:]}


async def settle(workers: list[Worker], clock: Clock, rounds: int = 4) -> None:
    """Run the workers together; a second passes between rounds (updates wait 1 s)."""
    for _ in range(rounds):
        await asyncio.gather(*(w.run_once() for w in workers))
        clock.advance(seconds=1.5)


def posts_with(m: RecordingMessenger, mark: str) -> Counter[str]:
    """How many messages (posts, not updates) each recipient got that list `mark` lines."""
    return Counter(who for (who, _), text in final_notices(m).items()
                   if f"<mark:{mark}>" in text)


def expected(by_tam: dict[str, list[str]]) -> dict[str, Counter[str]]:
    everyone = [r for refs in by_tam.values() for r in refs]
    out = {tam: Counter(refs) for tam, refs in by_tam.items()}
    out["CDUTY"] = Counter(everyone)
    return out


@pytest.mark.parametrize("replicas", [1, 2])
async def test_200_cases_near_breach_and_breach_together_one_message_per_recipient(
        chat: Chat, ctx: AppContext, messenger: RecordingMessenger, clock: Clock,
        replicas: int) -> None:
    by_tam = await open_storm(chat)
    workers = [Worker(ctx, messenger, name=f"w{i}", batch=40) for i in range(replicas)]
    await settle(workers, clock, rounds=1)  # the cards and new-case notices
    cards_and_news = len(messenger.sent)
    opened = clock.now

    clock.now = opened + timedelta(minutes=8, seconds=1)  # all 200 near-breach together
    await settle(workers, clock)
    assert notice_refs(messenger, "warning") == expected(by_tam)
    assert posts_with(messenger, "warning") == {TAM: 1, TAM2: 1, "CDUTY": 1}

    clock.now = opened + timedelta(minutes=10, seconds=1)  # all 200 breach together
    await settle(workers, clock)
    assert notice_refs(messenger, "breach") == expected(by_tam)
    assert posts_with(messenger, "breach") == {TAM: 1, TAM2: 1, "CDUTY": 1}
    # one message per recipient and window: the rest are updates in place, a few at most
    sent = messenger.sent[cards_and_news:]
    notices = [s for s in sent if s.card is None]
    marked = [s for s in notices if "<mark:" in s.text]
    assert Counter(s.kind for s in marked if s.kind != "update") == {"dm": 4, "post": 2}
    assert sum(1 for s in marked if s.kind == "update") <= 3 * 2 * 4
    # the digest reads as one: counts, breaches before warnings, each case's card linked
    acme = next(text for (who, _), text in final_notices(messenger).items()
                if who == TAM and "<mark:breach>" in text)
    assert acme.startswith("<mark:breach> <b>SLA notices: 150 cases</b> (150 breaches)")
    assert acme.count("https://example.test/CACME/") == 150
    biz = next(text for (who, _), text in final_notices(messenger).items()
               if who == TAM2 and "<mark:breach>" in text)
    assert biz.startswith("<mark:breach> <b>SLA 提醒：50 个案例</b>（已超时 50 个）")
    async with ctx.db.read() as s:
        assert await jobs.count(s, status=jobs.DEAD) == 0
        assert await jobs.count(s, status=jobs.PENDING, kind="digest.sync") == 0


async def test_a_notice_alone_reads_as_the_notice(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    await chat(CUSTOMER, ACME_CH, "/support open S2 checkout API returns 500")
    await worker.run_once()
    clock.advance(minutes=30, seconds=20)
    await worker.run_once()
    await worker.run_once()
    dm = [s for s in messenger.sent if s.kind == "dm" and s.card is None and "breach" in s.text]
    assert len(dm) == 1 and dm[0].text.startswith(
        "<mark:breach> SLA breach: CS-1001 for Acme Corp (acme), S2, is 20s late (was due <t:")
    assert dm[0].text.count("\n") == 1
    assert dm[0].text.split("\n")[1].startswith("Case card: https://example.test/CACME/")


async def test_a_window_of_zero_sends_each_notice_alone(
        chat: Chat, ctx: AppContext, messenger: RecordingMessenger, clock: Clock) -> None:
    zero = with_settings(ctx, digest_window_seconds=0.0)
    worker = Worker(zero, messenger, name="w")
    for i in range(3):
        await chat(CUSTOMER, ACME_CH, f"/support open S1 outage {i}")
    await worker.run_once()
    clock.advance(minutes=10, seconds=1)
    await worker.run_once()
    await worker.run_once()
    duty = [s.text for s in messenger.sent if s.target == "CDUTY" and "SLA breach: " in s.text]
    assert sorted(t.split("SLA breach: ")[1].split()[0] for t in duty) == [
        "CS-1001", "CS-1002", "CS-1003"]
    assert not [s for s in messenger.sent if s.kind == "update" and s.card is None]


async def test_notices_after_the_window_start_a_new_message(
        chat: Chat, ctx: AppContext, worker: Worker, messenger: RecordingMessenger,
        clock: Clock) -> None:
    opened = clock.now
    await chat(CUSTOMER, ACME_CH, "/support open S1 first")
    clock.advance(seconds=20)
    await chat(CUSTOMER, ACME_CH, "/support open S1 second")  # breaches 20 s later
    clock.advance(seconds=40)
    await chat(CUSTOMER, ACME_CH, "/support open S1 third")  # 60 s after the first
    await worker.run_once()
    for seconds in (1, 21, 23, 61, 63):  # each breach as it comes due, and the updates
        clock.now = opened + timedelta(minutes=10, seconds=seconds)
        await worker.run_once()
        await worker.run_once()
    breaches = [sorted(REF.findall("\n".join(ln for ln in text.splitlines()
                                               if "<mark:breach>" in ln)))
                for (who, _), text in final_notices(messenger).items() if who == "CDUTY"]
    # CS-1001 opens a window, CS-1002 joins it 20 s later; CS-1003 (60 s) opens another
    assert sorted(b for b in breaches if b) == [["CS-1001", "CS-1002"], ["CS-1003"]]


async def test_a_sender_that_dies_after_posting_is_not_posted_again(
        chat: Chat, ctx: AppContext, clock: Clock) -> None:
    """A worker posts the digest and dies before recording it (its hold and lease stay);
    after a restart, more notices join the same window: the new worker finds the message
    it may have posted and updates it, never posting a second one."""
    ctx = with_settings(ctx, digest_window_seconds=120.0, worker_lease_seconds=30.0)
    messenger = DyingMessenger()
    for i in range(10):
        await chat(CUSTOMER, ACME_CH, f"/support open S1 early {i}")
    clock.advance(seconds=50)
    for i in range(10):
        await chat(CUSTOMER, ACME_CH, f"/support open S1 late {i}")
    first = Worker(ctx, messenger, name="before")
    await first.run_once()  # cards, and the new-case notices join their digests
    clock.advance(seconds=2)
    await first.run_once()  # a new-case digest that waited for its cards is out
    clock.advance(minutes=10, seconds=-52 + 1)  # the first ten breach
    # the duty digest's sender dies; the TAM's digest is sent by a job running beside it, in
    # either order, and that job is let finish (a job still running on in the dead worker
    # would race the restarted one for the TAM's message)
    messenger.die_posting_to = "CDUTY"
    with contextlib.suppress(asyncio.CancelledError):
        await first.run_once()
    assert messenger.died
    await asyncio.gather(*first._inflight, return_exceptions=True)
    duty_posts = [s for s in messenger.sent if s.target == "CDUTY" and s.card is None
                  and "<mark:breach>" in s.text]
    assert len(duty_posts) == 1  # posted, but its ts was never recorded

    clock.advance(seconds=50)  # restart; the second ten breach in the same window
    after = Worker(ctx, messenger, name="after")
    for _ in range(4):
        await after.run_once()
        clock.advance(seconds=1.5)
    refs = Counter(f"CS-{1001 + i}" for i in range(20))
    assert notice_refs(messenger) == {TAM: refs, "CDUTY": refs}
    assert sum(1 for s in messenger.sent if s.target == "CDUTY" and s.card is None
               and "<mark:breach>" in s.text and s.kind == "post") == 1
    async with ctx.db.read() as s:
        assert await jobs.count(s, status=jobs.DEAD) == 0


class DyingMessenger(RecordingMessenger):
    """Posts, then (once, when told which channel's digest) the worker dies before it hears
    the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.die_posting_to: str | None = None
        self.died = False

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        posted = await super().post(channel, message, thread_ts=thread_ts, key=key)
        if channel == self.die_posting_to and (key or "").startswith("digest:"):
            self.die_posting_to, self.died = None, True
            raise asyncio.CancelledError  # as if the process were killed here
        return posted


def test_render_groups_by_incident_most_urgent_first() -> None:
    from datetime import UTC, datetime
    now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)

    def item(case_id: int, kind: str, due_min: int, incident: str | None) -> DigestItem:
        return DigestItem(
            notice_key=f"k{case_id}{kind}", case_id=case_id, kind=kind,
            due_at=now + timedelta(minutes=due_min), fired_at=now,
            params={"ref": f"CS-{1000 + case_id}", "account": "Acme", "key": "acme",
                    "sev": "S1", "summary": f"s{case_id}"}, incident=incident)

    items = [item(1, "warn", 5, None), item(2, "breach", -3, "INC-7"),
             item(3, "warn", 2, "INC-7"), item(4, "breach", -9, None),
             item(5, "warn", -1, None),  # its deadline passed: not shown
             item(2, "warn", -3, "INC-7")]  # CS-1002's warning: its breach stands for it
    message = render(items, Lang.EN, now, {})
    assert message is not None
    lines = message.text.splitlines()
    assert lines[0] == ("<mark:breach> <b>SLA notices: 4 cases</b> "
                        "(2 breaches, 2 near breaches)")
    heads = [ln for ln in lines if ln.startswith("<b>")]
    assert heads == ["<b>Not linked to an incident</b> (2 cases)",
                     "<b>Incident INC-7</b> (2 cases)"]
    order = [ln.split("<b>")[1].split("</b>")[0] for ln in lines if ln.startswith("•")]
    assert order == ["CS-1004", "CS-1001", "CS-1002", "CS-1003"]
    zh = render(items[:2], Lang.ZH, now, {})
    assert zh is not None and zh.text.startswith(
        "<mark:breach> <b>SLA 提醒：2 个案例</b>（已超时 1 个、即将超时 1 个）")
    one = render([items[0]], Lang.EN, now, {1: "https://x/1"})
    assert one is not None and one.text == (
        "<mark:warning> Near breach: CS-1001 for Acme (acme), S1, has 5m left "
        f"(due <t:{int((now + timedelta(minutes=5)).timestamp())}>).\nCase card: https://x/1")
    assert render([items[4]], Lang.EN, now, {}) is None


def test_render_lists_new_cases_after_breaches_and_warnings() -> None:
    from datetime import UTC, datetime
    now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)

    def item(case_id: int, kind: str, due_min: int, **extra: object) -> DigestItem:
        return DigestItem(
            notice_key=f"k{case_id}{kind}", case_id=case_id, kind=kind,
            due_at=now + timedelta(minutes=due_min), fired_at=now,
            params={"ref": f"CS-{1000 + case_id}", "account": "Acme", "key": "acme",
                    "sev": "S1", "summary": f"s{case_id}", **extra})

    items = [item(1, "new", 15), item(2, "breach", -3), item(3, "new", 12),
             item(4, "warn", 4), item(2, "new", -3)]  # CS-1002's breach stands for it
    message = render(items, Lang.EN, now, {})
    assert message is not None
    lines = message.text.splitlines()
    assert lines[0] == ("<mark:breach> <b>SLA notices: 4 cases</b> "
                        "(1 breach, 1 near breach, 2 new cases)")
    assert lines[1:] == [
        "• <mark:breach> <b>CS-1002</b> Acme (acme), S1, 3m late: s2",
        "• <mark:warning> <b>CS-1004</b> Acme (acme), S1, 4m left: s4",
        "• <mark:ticket> <b>CS-1003</b> Acme (acme), S1, new, first response due in 12m: s3",
        "• <mark:ticket> <b>CS-1001</b> Acme (acme), S1, new, first response due in 15m: s1"]
    only_new = render([items[0], items[2]], Lang.ZH, now, {})
    assert only_new is not None and only_new.text.splitlines()[0] == (
        "<mark:ticket> <b>SLA 提醒：2 个案例</b>（新案例 2 个）")
    # a digest of one reads as the new-case notice alone, the service-area note included
    far = item(5, "new", 15, region="eu-paris", region_excluded=True)
    one = render([far], Lang.EN, now, {5: "https://x/5"})
    assert one is not None and one.text.startswith(
        "New case CS-1005 for Acme (acme), S1, first response due "
        f"<t:{int((now + timedelta(minutes=15)).timestamp())}>: s5. <mark:warning> Region "
        "eu-paris is outside the service area")
    assert one.text.endswith("\nCase card: https://x/5")
