"""Notice digests: the near-breach and breach notices to one recipient within a window, as
one message (a row in `digests`) listing its cases (`digest_items`).

Appending is serialized per recipient: on PostgreSQL by a transaction-scoped advisory lock
on the recipient, taken in one global order (SQLite's one writer already serializes), so
replicas firing timers at the same moment append to the same open digest. Sending is
serialized per digest by a hold with an expiry (a crashed sender's hold runs out).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import AccountRow, CaseRow, DigestItemRow, DigestRow


@dataclass(frozen=True, slots=True)
class Digest:
    id: int
    recipient: str
    lang: str
    opened_at: datetime
    closes_at: datetime
    version: int
    shown_version: int
    channel: str | None
    ts: str | None
    posts_tried: int


@dataclass(frozen=True, slots=True)
class DigestItem:
    notice_key: str
    case_id: int
    kind: str  # warn | breach
    due_at: datetime
    fired_at: datetime
    params: dict[str, Any]
    incident: str | None = None


def _digest(row: DigestRow) -> Digest:
    return Digest(id=row.id, recipient=row.recipient, lang=row.lang, opened_at=row.opened_at,
                  closes_at=row.closes_at, version=row.version,
                  shown_version=row.shown_version, channel=row.channel, ts=row.ts,
                  posts_tried=row.posts_tried)


def lock_key(recipient: str) -> int:
    """A signed 64-bit advisory lock key for a recipient."""
    digest = hashlib.sha1(f"digest:{recipient}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Digests:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def lock(self, recipients: Iterable[str]) -> None:
        """Take the recipients' append locks for this transaction, in one global order:
        users before channels (the duty channel, which every timer needs, last), then by
        key; so two transactions appending for several recipients never wait on each other
        in a circle. PostgreSQL only: SQLite has one writer."""
        if self.s.get_bind().dialect.name != "postgresql":
            return
        held: set[int] = self.s.info.setdefault("digest_locks", set())
        wanted = sorted({(r.startswith("channel:"), lock_key(r)) for r in recipients})
        for _, key in wanted:
            if key not in held:
                await self.s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
                held.add(key)

    async def tams_of_cases(self, case_ids: list[int]) -> list[str]:
        """The TAM user ids of these cases' accounts."""
        if not case_ids:
            return []
        rows = await self.s.execute(
            select(AccountRow.tam_user_id).distinct()
            .join(CaseRow, CaseRow.account_key == AccountRow.key)
            .where(CaseRow.id.in_(case_ids), AccountRow.tam_user_id.is_not(None)))
        return [str(r[0]) for r in rows]

    async def add(self, recipient: str, lang: str, now: datetime, window: timedelta,
                  item: DigestItem) -> tuple[int, int] | None:
        """Append a notice to the recipient's open digest (opening one for `window` if none
        is open); (digest id, its new version), or None when the notice is already in a
        digest."""
        await self.lock([recipient])
        if await self.s.scalar(select(DigestItemRow.id).where(
                DigestItemRow.notice_key == item.notice_key)) is not None:
            return None
        digest_id = await self.s.scalar(
            select(DigestRow.id).where(DigestRow.recipient == recipient,
                                       DigestRow.closes_at > now)
            .order_by(DigestRow.closes_at.desc()).limit(1))
        if digest_id is None:
            row = DigestRow(recipient=recipient, lang=lang, opened_at=now,
                            closes_at=now + window, version=0, shown_version=0,
                            posts_tried=0)
            self.s.add(row)
            await self.s.flush()
            digest_id = row.id
        self.s.add(DigestItemRow(digest_id=digest_id, notice_key=item.notice_key,
                                 case_id=item.case_id, kind=item.kind, due_at=item.due_at,
                                 fired_at=item.fired_at, incident=item.incident,
                                 params=item.params))
        await self.s.flush()
        version = await self.s.scalar(
            update(DigestRow).where(DigestRow.id == digest_id)
            .values(version=DigestRow.version + 1).returning(DigestRow.version))
        return int(digest_id), int(version or 0)

    async def get(self, digest_id: int) -> Digest | None:
        row = await self.s.get(DigestRow, digest_id, populate_existing=True)
        return _digest(row) if row else None

    async def items(self, digest_id: int) -> list[DigestItem]:
        rows = await self.s.scalars(select(DigestItemRow)
                                    .where(DigestItemRow.digest_id == digest_id)
                                    .order_by(DigestItemRow.id))
        return [DigestItem(notice_key=r.notice_key, case_id=r.case_id, kind=r.kind,
                           due_at=r.due_at, fired_at=r.fired_at, params=r.params,
                           incident=r.incident) for r in rows]

    async def cards(self, case_ids: list[int]) -> dict[int, tuple[str, str | None]]:
        """Each case's group and card ts (None while the card is not posted)."""
        if not case_ids:
            return {}
        rows = await self.s.execute(select(CaseRow.id, CaseRow.channel_id, CaseRow.card_ts)
                                    .where(CaseRow.id.in_(case_ids)))
        return {int(r[0]): (str(r[1]), r[2]) for r in rows}

    async def hold(self, digest_id: int, holder: str, now: datetime, until: datetime,
                   version: int) -> Digest | None:
        """Hold the digest to post or update it, unless `version` is already shown or
        another sender holds it; the digest as held, else None. A hold while the message is
        not posted yet counts a posting try (a later try first looks for an earlier one's
        message)."""
        result = await self.s.execute(
            update(DigestRow)
            .where(DigestRow.id == digest_id, DigestRow.shown_version < version,
                   or_(DigestRow.held_until.is_(None), DigestRow.held_until < now))
            .values(held_by=holder, held_until=until,
                    posts_tried=DigestRow.posts_tried + case((DigestRow.ts.is_(None), 1),
                                                             else_=0))
            .returning(DigestRow.id))
        if result.first() is None:
            return None
        return await self.get(digest_id)

    async def shown(self, digest_id: int, holder: str, version: int, channel: str | None,
                    ts: str | None) -> bool:
        """Record what the holder showed (and where) and release the hold; False when the
        hold had run out and another sender took over."""
        values: dict[str, Any] = dict(held_by=None, held_until=None,
                                      shown_version=func.max(DigestRow.shown_version, version)
                                      if self.s.get_bind().dialect.name == "sqlite"
                                      else func.greatest(DigestRow.shown_version, version))
        if ts is not None:
            values.update(channel=channel, ts=ts)
        result = await self.s.execute(update(DigestRow).where(DigestRow.id == digest_id,
                                                              DigestRow.held_by == holder)
                                      .values(**values))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, digest_id: int, holder: str) -> None:
        await self.s.execute(update(DigestRow).where(DigestRow.id == digest_id,
                                                     DigestRow.held_by == holder)
                             .values(held_by=None, held_until=None))

    async def prune(self, before: datetime) -> int:
        """Forget digests closed before `before`; how many."""
        old = select(DigestRow.id).where(DigestRow.closes_at < before)
        await self.s.execute(delete(DigestItemRow).where(DigestItemRow.digest_id.in_(old)))
        result = await self.s.execute(delete(DigestRow).where(DigestRow.closes_at < before))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
