"""Notice digests: the new-case, near-breach and breach notices to one recipient (a TAM's DM,
the duty channel) within a short window (`SUPPORTBOT_DIGEST_WINDOW`) are one message listing
the cases, most urgent first (breaches, then warnings, then new cases, each by due time),
grouped by incident
where a case is linked to one, with counts. The first notice opens the window and is posted
at once; later ones update that message in place while the window is open (a platform that
cannot edit posts the new state as a new message). A digest of one reads as the notice alone.

Exactly once: a notice joins a digest in the transaction of the timer that fired it (unique
by the notice's key), and the message is sent by `digest.sync` jobs, one per version of the
digest; a sender holds the digest in the database while it posts or updates, renders the
latest version, and a retried post first looks for the message an earlier try may have left.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import Lang
from bot.i18n import Translator, time_token
from bot.messages import Message
from bot.pacing import Later
from bot.services.base import AppContext
from bot.services.job import JobContext, NotReady
from bot.services.messenger import DeliveryError
from bot.services.outbox import CARD_WAIT_ATTEMPTS, card_tag
from storage import jobs
from storage.repos.digests import DigestItem, Digests

log = logging.getLogger(__name__)

SYNC = "digest.sync"
WARN, BREACH, NEW = "warn", "breach", "new"
_RANK = {BREACH: 0, WARN: 1, NEW: 2}  # most urgent first; a case shows its most urgent
# later notices wait this long (at most the window) before the message is updated, so a
# burst of timers firing in several batches costs one update rather than one per batch
UPDATE_DELAY = timedelta(seconds=1)
SUMMARY_CHARS = 60  # of a case's summary on its line in a digest of several

__all__ = ["BREACH", "NEW", "SYNC", "WARN", "DigestItem", "for_channel", "for_user", "lock_for",
           "notify", "relay", "render"]


def for_user(user_id: str) -> str:
    return f"user:{user_id}"


def for_channel(channel_id: str) -> str:
    return f"channel:{channel_id}"


async def lock_for(s: AsyncSession, case_ids: list[int]) -> None:
    """Take the append locks of the TAMs these cases' notices go to, before any of them is
    appended to (the duty channel's, needed by every timer, comes last in the order)."""
    digests = Digests(s)
    await digests.lock([for_user(u) for u in await digests.tams_of_cases(case_ids)])


async def notify(s: AsyncSession, app: AppContext, now: datetime, recipients: Iterable[
        tuple[str, Lang]], item: DigestItem) -> None:
    """Add the notice to each recipient's open digest (key suffixed by the recipient's role
    is the caller's), in the caller's transaction; queue the message's post or update."""
    window = timedelta(seconds=app.settings.digest_window_seconds)
    delay = min(UPDATE_DELAY, window)
    pairs = sorted(recipients)
    digests = Digests(s)
    await digests.lock(r for r, _ in pairs)
    for recipient, lang in pairs:
        key = f"{item.notice_key}:{recipient}"
        added = await digests.add(recipient, lang.value, now, window,
                                  replace(item, notice_key=key))
        if added is None:
            continue
        digest_id, version = added
        due = now if version == 1 else now + delay
        await jobs.enqueue(s, SYNC, due, {"digest_id": digest_id, "version": version},
                           f"digest:{digest_id}:v{version}", now)


def _delta(item: DigestItem) -> timedelta:
    """Time left (a warning, a new case's first response) or late (a breach)."""
    return item.fired_at - item.due_at if item.kind == BREACH else item.due_at - item.fired_at


def visible(items: list[DigestItem], now: datetime) -> list[DigestItem]:
    """What the message shows: one line per case (its breach over its warning), no warning
    whose deadline has passed (its breach notice says what is true), most urgent first."""
    by_case: dict[int, DigestItem] = {}
    for item in items:
        if item.kind == WARN and now >= item.due_at:
            continue
        seen = by_case.get(item.case_id)
        if seen is None or _RANK[item.kind] < _RANK[seen.kind]:
            by_case[item.case_id] = item
    return sorted(by_case.values(), key=lambda i: (_RANK[i.kind], i.due_at, i.case_id))


def render(items: list[DigestItem], lang: Lang, now: datetime,
           links: dict[int, str]) -> Message | None:
    """The digest's message as of `now` (None when nothing is left to show); `links` are the
    case cards' links by case id."""
    shown = visible(items, now)
    if not shown:
        return None
    t = Translator(lang)
    if len(shown) == 1:
        item = shown[0]
        msg_id = {BREACH: "notice.breach", WARN: "notice.near_breach"}.get(item.kind) or (
            "notice.new_case_excluded" if item.params.get("region_excluded")
            else "notice.new_case")
        text = t(msg_id, **item.params, due=time_token(item.due_at),
                 d=t.duration(_delta(item)))
        if item.case_id in links:
            text += "\n" + t("notice.card_link", link=links[item.case_id])
        return Message.of(text)
    breaches = sum(1 for i in shown if i.kind == BREACH)
    warnings = sum(1 for i in shown if i.kind == WARN)
    new = len(shown) - breaches - warnings
    counts = [t("digest.breaches", n=breaches)] if breaches else []
    if warnings:
        counts.append(t("digest.warnings", n=warnings))
    if new:
        counts.append(t("digest.new_cases", n=new))
    lines = [t("digest.title", n=len(shown), counts=t.join(counts),
               mark="<mark:breach>" if breaches else "<mark:warning>" if warnings
               else "<mark:ticket>")]

    def line(item: DigestItem) -> str:
        # one short line per case (the due time is on its card): hundreds fit one message
        summary = str(item.params.get("summary", ""))
        if len(summary) > SUMMARY_CHARS:
            summary = summary[:SUMMARY_CHARS - 1] + "…"
        text = t(f"digest.line.{item.kind}", **{**item.params, "summary": summary},
                 d=t.duration(_delta(item)))
        link = links.get(item.case_id)
        return t("digest.with_link", line=text, link=link) if link else text

    if any(i.incident for i in shown):
        groups: dict[str | None, list[DigestItem]] = {}
        for item in shown:  # in order of each group's most urgent case
            groups.setdefault(item.incident, []).append(item)
        for incident, group in groups.items():
            lines.append("")
            lines.append(t("digest.incident", ref=incident, n=len(group)) if incident
                         else t("digest.no_incident", n=len(group)))
            lines.extend(line(i) for i in group)
    else:
        lines.extend(line(i) for i in shown)
    return Message.of("\n".join(lines))


async def relay(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    """Post the digest's message, or update it to the latest version (`SYNC`)."""
    digest_id = int(job.payload["digest_id"])
    version = int(job.payload["version"])
    async with ctx.lock(f"digest:{digest_id}"):  # this worker's own jobs of one digest
        return await _relay(ctx, job, digest_id, version)


async def _relay(ctx: JobContext, job: jobs.Job, digest_id: int,
                 version: int) -> dict[str, Any]:
    db = ctx.app.db
    async with db.read() as s:
        digest = await Digests(s).get(digest_id)
        if digest is None:
            raise DeliveryError("digest vanished", permanent=True)
        if digest.shown_version >= version:
            return {"outcome": "shown", "version": digest.shown_version}
        items = await Digests(s).items(digest_id)
        cards = await Digests(s).cards(sorted({i.case_id for i in items}))
    missing = [c for c, (_, ts) in cards.items() if ts is None]
    if missing:
        # a card may be being posted by a job claimed with this one: wait for it, and for
        # cards not posted yet a few tries at most (as a single notice does)
        for case_id in missing:
            await ctx.settled(card_tag(case_id))
        async with db.read() as s:
            cards = await Digests(s).cards(sorted(cards))
        if any(ts is None for _, ts in cards.values()) and job.attempts < CARD_WAIT_ATTEMPTS:
            raise NotReady(f"a card of digest {digest_id} is not posted yet")
    holder = uuid.uuid4().hex
    now = ctx.clock()
    lease = timedelta(seconds=ctx.app.settings.worker_lease_seconds)
    async with db.transaction() as s:
        held = await Digests(s).hold(digest_id, holder, now, now + lease, version)
        if held is not None:  # everything appended so far (by any replica), with cards
            items = await Digests(s).items(digest_id)
            cards = await Digests(s).cards(sorted({i.case_id for i in items}))
    if held is None:
        async with db.read() as s:
            digest = await Digests(s).get(digest_id)
        if digest is not None and digest.shown_version >= version:
            return {"outcome": "shown", "version": digest.shown_version}
        raise Later(1.0)  # another sender holds it: come back when it is done
    try:
        links = {c: ctx.messenger.link(ch, ts) for c, (ch, ts) in cards.items() if ts}
        message = render(items, Lang(held.lang), ctx.clock(), links)
        channel, ts = held.channel, held.ts
        outcome = "updated"
        if message is None:
            outcome = "expired"  # only warnings whose deadlines passed: nothing to say
        elif ts is None:
            kind, _, who = held.recipient.partition(":")
            channel = await ctx.messenger.dm_channel(who) if kind == "user" else who
            found = None
            if held.posts_tried > 1:  # an earlier try may have posted before it died
                found = await ctx.messenger.find(channel, f"digest:{digest_id}")
            if found is None:
                posted = await ctx.deliver(f"digest:{digest_id}", channel, message,
                                           recover=False)
                channel, ts, outcome = posted.channel, posted.ts, "posted"
            else:
                # it reads as that try rendered it: bring it up to this version
                log.info("digest %s was already posted as %s; updating it", digest_id,
                         found.ts)
                channel, ts = found.channel, found.ts
        if message is not None and outcome == "updated":
            assert channel is not None and ts is not None
            try:
                await ctx.messenger.update(channel, ts, message)
            except DeliveryError as exc:
                if exc.retry_after:
                    ctx.pacer.pause(exc.retry_after, channel if exc.per_channel else None)
                raise
    except Exception as exc:
        async with db.transaction() as s:
            if isinstance(exc, DeliveryError) and exc.permanent:
                # given up (told to staff once, by this job): the jobs of the versions it
                # covered have nothing left to try; a later notice tries again
                await Digests(s).shown(digest_id, holder, held.version, None, None)
            else:
                await Digests(s).release(digest_id, holder)
        raise
    async with db.transaction() as s:
        if not await Digests(s).shown(digest_id, holder, held.version, channel, ts):
            log.warning("hold on digest %s ran out while sending; another sender has it",
                        digest_id)
    return {"outcome": outcome, "version": held.version, "items": len(items)}
