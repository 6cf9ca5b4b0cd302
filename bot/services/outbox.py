"""Outbound messages as durable jobs, written in the transaction of the change they announce,
and their relays: the job handlers that deliver them."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Button, Message
from bot.services import incident_links
from bot.services.cards import card_message
from bot.services.job import JobContext, NotReady
from bot.services.messenger import DeliveryError
from storage import jobs
from storage.repos import Accounts, Cases

log = logging.getLogger(__name__)

MSG_POST = "msg.post"
CARD_SYNC = "card.sync"
CARD_WAIT_ATTEMPTS = 5  # after this many tries a notice goes out without its card link


async def post(s: AsyncSession, now: datetime, *, text: str, key: str,
               channel: str | None = None, user: str | None = None,
               thread_case_id: int | None = None, link_case_id: int | None = None,
               link_text: str | None = None, buttons: list[Button] | None = None,
               expires_at: datetime | None = None) -> bool:
    """Queue a message to a channel or a user's DM (exactly one of `channel`, `user`).

    `thread_case_id` posts into that case card's thread; `link_case_id` appends a link to
    it, worded by `link_text` (a translated template with a `{link}` field). A message
    with `expires_at` is dropped, not posted, once that moment has passed (a near-breach
    warning must not arrive after the deadline it counts down to).
    """
    if (channel is None) == (user is None):
        raise ValueError("post needs exactly one of channel or user")
    payload: dict[str, object] = {"text": text}
    if channel is not None:
        payload["channel"] = channel
    if user is not None:
        payload["user"] = user
    if thread_case_id is not None:
        payload["thread_case_id"] = thread_case_id
    if link_case_id is not None:
        payload["link_case_id"] = link_case_id
        payload["link_text"] = link_text or "{link}"
    if expires_at is not None:
        payload["expires_at"] = expires_at.isoformat()
    if buttons:
        payload["buttons"] = [b.to_dict() for b in buttons]
    return await jobs.enqueue(s, MSG_POST, now, payload, f"msg:{key}", now)


async def relay_post(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    """Deliver a queued message (`MSG_POST`); one into or linking to a case card waits for
    the card, a few tries at most."""
    p = job.payload
    expires = p.get("expires_at")
    if expires is not None and ctx.clock() >= datetime.fromisoformat(str(expires)):
        # it would say something no longer true (time left before a passed deadline)
        log.info("message %s expired before it could be posted; dropped", job.key)
        return {"outcome": "expired"}
    text = str(p["text"])
    thread_ts = None
    case_id = p.get("thread_case_id") or p.get("link_case_id")
    if case_id is not None:
        # the card may be being posted right now, by a job claimed with this one: wait for it
        await ctx.settled(card_tag(int(case_id)))
        async with ctx.app.db.read() as s:  # a read: on SQLite no write lock, no queue
            case = await Cases(s).get(int(case_id))
        if case is None:
            raise DeliveryError("case vanished", permanent=True)
        if case.card_ts is None and job.attempts < CARD_WAIT_ATTEMPTS:
            raise NotReady(f"card of {case.ref} not posted yet")
        if case.card_ts is not None:
            if "thread_case_id" in p:
                thread_ts = case.card_ts
            else:
                link = ctx.messenger.link(case.channel_id, case.card_ts)
                text += "\n" + str(p.get("link_text", "{link}")).format(link=link)
        # else: the card could not be posted; staff still get the notice, without a link
    buttons = [Button.from_dict(b) for b in p.get("buttons") or []] or None
    if "user" in p:
        channel = await ctx.messenger.dm_channel(str(p["user"]))
    else:
        channel = str(p["channel"])
    posted = await ctx.deliver(job.key, channel, Message.of(text, buttons or ()),
                               recover=job.attempts > 1, thread_ts=thread_ts)
    return {"channel": posted.channel, "ts": posted.ts}


async def sync_card(s: AsyncSession, now: datetime, case_id: int, version: int) -> None:
    """Queue posting or updating the case card at this version of the case."""
    await jobs.enqueue(s, CARD_SYNC, now, {"case_id": case_id, "version": version},
                       f"card:{case_id}:v{version}", now)


def card_tag(case_id: int) -> str:
    """How a card job in flight is known to the messages that wait for it."""
    return f"card:{case_id}"


def card_job_tag(job: jobs.Job) -> str:
    return card_tag(int(job.payload["case_id"]))


async def relay_card(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    """Post the case card (`CARD_SYNC`), or update it in place; a sync for an older version
    than the case's is superseded by the newer one's."""
    case_id = int(job.payload["case_id"])
    async with ctx.lock(card_tag(case_id)):
        async with ctx.app.db.read() as s:  # a read: on SQLite no write lock, no queue
            case = await Cases(s).get(case_id)
            account = await Accounts(s).get(case.account_key) if case else None
            linked = await incident_links.card_incidents(s, case_id) if case else []
        if case is None or account is None:
            raise DeliveryError("case vanished", permanent=True)
        if case.version > int(job.payload["version"]) and case.card_ts is not None:
            return {"outcome": "superseded"}  # a newer sync renders the latest state
        card = card_message(case, account.lang,
                            excluded=case.region in ctx.app.catalog.service_exclusions,
                            incidents=linked)
        if case.card_ts is None:
            # one key per case (not per version): an earlier sync job of this case may
            # have posted the card and died before storing its ts; find it, don't repost
            posted = await ctx.deliver(f"card:{case.id}", case.channel_id, card,
                                       recover=job.attempts > 1 or case.version > 1)
            async with ctx.app.db.transaction() as s:
                await Cases(s).set_card_ts(case.id, posted.ts)
            return {"ts": posted.ts}
        await ctx.messenger.update(case.channel_id, case.card_ts, card)
        return {"ts": case.card_ts}
