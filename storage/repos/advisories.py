"""Proactive-care advisories and their deliveries, one per group."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.advisories import (
    Advisory,
    AdvisorySummary,
    Delivery,
    NewAdvisory,
    Targeting,
    Unacknowledged,
)
from bot.domain.model import DeliveryStatus
from storage.repos import deliveries
from storage.sql import core
from storage.tables import AdvisoryDeliveryRow, AdvisoryRow

D = AdvisoryDeliveryRow
_D = core(D)
# built once (Core, bound parameters): each monthly report runs it
_MONTH_COUNTS = (
    select(func.count(func.distinct(case((_D.c.status == DeliveryStatus.SENT.value,
                                          _D.c.advisory_id)))),
           func.count(func.distinct(case((_D.c.acked_at.is_not(None), _D.c.advisory_id)))))
    .where(_D.c.account_key == bindparam("account_key"), _D.c.sent_at >= bindparam("start"),
           _D.c.sent_at < bindparam("end")))


def _advisory(r: AdvisoryRow) -> Advisory:
    return Advisory(id=r.id, team_id=r.team_id, title=r.title, kind=r.kind,
                    severity=r.severity, body=r.body,
                    targeting=Targeting.from_dict(r.targeting), created_by=r.created_by,
                    created_at=r.created_at, total=r.total,
                    progress_channel=r.progress_channel, progress_ts=r.progress_ts)


def _delivery(r: AdvisoryDeliveryRow) -> Delivery:
    return Delivery(advisory_id=r.advisory_id, account_key=r.account_key,
                    channel_id=r.channel_id, status=DeliveryStatus(r.status), ts=r.ts,
                    error=r.error, sent_at=r.sent_at, acked_by=r.acked_by, acked_at=r.acked_at)


def _count(status: DeliveryStatus) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((D.status == status.value, 1), else_=0)), 0)


class Advisories:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def add(self, new: NewAdvisory, groups: Iterable[tuple[str, str]]) -> Advisory:
        """Store an advisory and a pending delivery per (account, channel) group."""
        row = AdvisoryRow(team_id=new.team_id, title=new.title, kind=new.kind,
                          severity=new.severity, body=new.body,
                          targeting=new.targeting.to_dict(), created_by=new.created_by,
                          created_at=new.created_at, total=new.total,
                          dedupe_key=new.dedupe_key)
        self.s.add(row)
        await self.s.flush()  # assigns the id the deliveries refer to
        self.s.add_all(D(advisory_id=row.id, account_key=key, channel_id=channel,
                         status=DeliveryStatus.PENDING.value) for key, channel in groups)
        await self.s.flush()
        return _advisory(row)

    async def get(self, advisory_id: int) -> Advisory | None:
        row = await self.s.get(AdvisoryRow, advisory_id)
        return _advisory(row) if row else None

    async def by_dedupe_key(self, key: str) -> Advisory | None:
        row = await self.s.scalar(select(AdvisoryRow).where(AdvisoryRow.dedupe_key == key))
        return _advisory(row) if row else None

    async def set_progress(self, advisory_id: int, channel: str, ts: str) -> None:
        """Where the sender's progress message is (updated in place from now on)."""
        await self.s.execute(update(AdvisoryRow).where(AdvisoryRow.id == advisory_id)
                             .values(progress_channel=channel, progress_ts=ts))

    async def recent(self, limit: int) -> list[AdvisorySummary]:
        """The latest advisories, newest first, with delivery counts and acknowledgements."""
        rows = (await self.s.scalars(select(AdvisoryRow).order_by(AdvisoryRow.id.desc())
                                     .limit(limit))).all()
        if not rows:
            return []
        figures = {i: (p, s, f, a) for i, p, s, f, a in (await self.s.execute(
            select(D.advisory_id, _count(DeliveryStatus.PENDING), _count(DeliveryStatus.SENT),
                   _count(DeliveryStatus.FAILED),
                   func.count(func.distinct(case((D.acked_at.is_not(None), D.account_key)))))
            .where(D.advisory_id.in_([r.id for r in rows]))
            .group_by(D.advisory_id))).all()}
        out = []
        for r in rows:
            p, s, f, a = figures.get(r.id, (0, 0, 0, 0))
            out.append(AdvisorySummary(_advisory(r), {
                DeliveryStatus.PENDING: int(p), DeliveryStatus.SENT: int(s),
                DeliveryStatus.FAILED: int(f)}, int(a)))
        return out

    async def unacknowledged(self, account_keys: list[str], limit: int
                             ) -> list[Unacknowledged]:
        """Sent advisories, newest first, that some of these accounts have not acknowledged."""
        rows = (await self.s.execute(
            select(AdvisoryRow.id, AdvisoryRow.title, AdvisoryRow.severity,
                   func.count(func.distinct(D.account_key)))
            .join(D, D.advisory_id == AdvisoryRow.id)
            .where(D.account_key.in_(account_keys), D.acked_at.is_(None),
                   D.status == DeliveryStatus.SENT.value)
            .group_by(AdvisoryRow.id, AdvisoryRow.title, AdvisoryRow.severity)
            .order_by(AdvisoryRow.id.desc()).limit(limit))).all()
        return [Unacknowledged(i, t, sev, int(n)) for i, t, sev, n in rows]

    # deliveries

    async def delivery(self, advisory_id: int, channel_id: str) -> Delivery | None:
        row = await self.s.scalar(select(D).where(D.advisory_id == advisory_id,
                                                  D.channel_id == channel_id))
        return _delivery(row) if row else None

    async def deliveries(self, advisory_id: int, account_key: str | None = None,
                         status: DeliveryStatus | None = None,
                         limit: int | None = None) -> list[Delivery]:
        q = select(D).where(D.advisory_id == advisory_id)
        if account_key is not None:
            q = q.where(D.account_key == account_key)
        if status is not None:
            q = q.where(D.status == status.value)
        if limit is not None:
            q = q.limit(limit)
        return [_delivery(r) for r in (await self.s.scalars(q)).all()]

    async def settle(self, advisory_id: int, channel_id: str, status: DeliveryStatus,
                     at: datetime, ts: str | None = None, error: str | None = None
                     ) -> str | None:
        """Record how a delivery went; the account it was for (None if it vanished)."""
        row = await self.s.scalar(select(D).where(D.advisory_id == advisory_id,
                                                  D.channel_id == channel_id))
        return await deliveries.settle(self.s, row, status, at, ts, error)

    async def counts(self, advisory_id: int) -> dict[str, int]:
        """Deliveries per status, keyed by `DeliveryStatus` (every status present)."""
        return await deliveries.counts(self.s, D.status, D.advisory_id == advisory_id)

    async def acknowledged(self, advisory_id: int, account_key: str) -> bool:
        """Whether the account has acknowledged the advisory (in any of its groups)."""
        n = await self.s.scalar(select(func.count()).select_from(D).where(
            D.advisory_id == advisory_id, D.account_key == account_key,
            D.acked_at.is_not(None)))
        return bool(n)

    async def acknowledge(self, advisory_id: int, account_key: str, by: str,
                          at: datetime) -> None:
        """The account acknowledged: every one of its groups' deliveries says so."""
        await self.s.execute(update(D).where(D.advisory_id == advisory_id,
                                             D.account_key == account_key)
                             .values(acked_by=by, acked_at=at))

    async def month_counts(self, account_key: str, start: datetime, end: datetime
                           ) -> tuple[int, int]:
        """(sent, acknowledged): distinct advisories delivered to the account in
        [start, end), and how many of those it acknowledged."""
        sent, acked = (await self.s.execute(_MONTH_COUNTS, {
            "account_key": account_key, "start": start, "end": end})).one()
        return int(sent or 0), int(acked or 0)
