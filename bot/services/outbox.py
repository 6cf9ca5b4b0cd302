"""Outbound messages as durable jobs, written in the transaction of the change they announce."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Button
from storage import jobs

MSG_POST = "msg.post"
CARD_SYNC = "card.sync"


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


async def sync_card(s: AsyncSession, now: datetime, case_id: int, version: int) -> None:
    """Queue posting or updating the case card at this version of the case."""
    await jobs.enqueue(s, CARD_SYNC, now, {"case_id": case_id, "version": version},
                       f"card:{case_id}:v{version}", now)
