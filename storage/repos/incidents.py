"""Platform incidents, their posts (one delivery per group) and the cases linked to them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.incidents import (
    Incident,
    IncidentPost,
    IncidentStatus,
    IncidentSummary,
    LinkedCase,
    PostKind,
    Scope,
)
from bot.domain.model import CaseStatus, DeliveryStatus
from storage import sql
from storage.repos import deliveries
from storage.tables import (
    CaseRow,
    IncidentCaseRow,
    IncidentDeliveryRow,
    IncidentPostRow,
    IncidentRow,
)

D = IncidentDeliveryRow
L = IncidentCaseRow
ACTIVE = (CaseStatus.OPEN.value, CaseStatus.ACKNOWLEDGED.value)


# Core, on every case opened: columns, not tracked objects
_OPEN = (select(*IncidentRow.__table__.columns)
         .where(IncidentRow.status == bindparam("status")).order_by(IncidentRow.id))


def _incident(r: Any) -> Incident:
    return Incident(id=r.id, team_id=r.team_id,
                    scope=Scope(r.region, frozenset(r.products or ())), title=r.title,
                    status=IncidentStatus(r.status), declared_by=r.declared_by,
                    declared_at=r.declared_at, latest=r.latest, latest_at=r.latest_at,
                    resolved_at=r.resolved_at, resolved_by=r.resolved_by)


def _post(r: IncidentPostRow, team_id: str) -> IncidentPost:
    return IncidentPost(id=r.id, incident_id=r.incident_id, kind=PostKind(r.kind),
                        body=r.body, respond=r.respond, created_by=r.created_by,
                        created_at=r.created_at, total=r.total, team_id=team_id,
                        progress_channel=r.progress_channel, progress_ts=r.progress_ts)


@dataclass(frozen=True)
class IncidentDelivery:
    """One incident post to one group."""

    post_id: int
    account_key: str
    channel_id: str
    status: DeliveryStatus
    ts: str | None = None
    error: str | None = None
    sent_at: datetime | None = None


def _delivery(r: IncidentDeliveryRow) -> IncidentDelivery:
    return IncidentDelivery(post_id=r.post_id, account_key=r.account_key,
                            channel_id=r.channel_id, status=DeliveryStatus(r.status), ts=r.ts,
                            error=r.error, sent_at=r.sent_at)


def _linked(r: CaseRow) -> LinkedCase:
    assert r.ref is not None
    return LinkedCase(case_id=r.id, ref=r.ref, account_key=r.account_key,
                      channel_id=r.channel_id, severity=r.severity, summary=r.summary,
                      status=r.status,
                      awaiting=r.status == CaseStatus.OPEN.value and r.first_response_at is None,
                      due_at=r.due_at)


class Incidents:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def add(self, team_id: str, scope: Scope, title: str, by: str,
                  at: datetime) -> Incident:
        row = IncidentRow(team_id=team_id, region=scope.region,
                          products=sorted(scope.products), title=title,
                          status=IncidentStatus.OPEN.value, declared_by=by, declared_at=at)
        self.s.add(row)
        await self.s.flush()
        return _incident(row)

    async def get(self, incident_id: int, *, for_update: bool = False) -> Incident | None:
        q = select(IncidentRow).where(IncidentRow.id == incident_id)
        if for_update:
            q = q.with_for_update()
        row = await self.s.scalar(q)
        return _incident(row) if row else None

    async def open(self) -> list[Incident]:
        """Open incidents, oldest first (a handful at most: one query on an index)."""
        rows = await sql.run(self.s, _OPEN, {"status": IncidentStatus.OPEN.value})
        return [_incident(r) for r in rows.all()]

    async def recent(self, limit: int, since: datetime | None = None) -> list[Incident]:
        """Open ones and those resolved since `since` (all when None), newest first."""
        q = select(IncidentRow)
        if since is not None:
            q = q.where((IncidentRow.status == IncidentStatus.OPEN.value) |
                        (IncidentRow.resolved_at >= since))
        rows = await self.s.scalars(q.order_by(IncidentRow.id.desc()).limit(limit))
        return [_incident(r) for r in rows.all()]

    async def note_latest(self, incident_id: int, text: str, at: datetime) -> None:
        await self.s.execute(update(IncidentRow).where(IncidentRow.id == incident_id)
                             .values(latest=text, latest_at=at))

    async def resolve(self, incident_id: int, by: str, at: datetime,
                      text: str | None) -> None:
        values: dict[str, object] = {"status": IncidentStatus.RESOLVED.value,
                                     "resolved_by": by, "resolved_at": at}
        if text:
            values.update(latest=text, latest_at=at)
        await self.s.execute(update(IncidentRow).where(IncidentRow.id == incident_id)
                             .values(**values))

    async def summaries(self, incidents: list[Incident]) -> list[IncidentSummary]:
        """Each incident with the groups reached so far and its linked (waiting) cases."""
        ids = [i.id for i in incidents]
        if not ids:
            return []
        groups = {i: int(n) for i, n in (await self.s.execute(
            select(D.incident_id, func.count(func.distinct(D.channel_id)))
            .where(D.incident_id.in_(ids), D.status == DeliveryStatus.SENT.value)
            .group_by(D.incident_id))).all()}
        linked: dict[int, tuple[int, int]] = {}
        for incident_id, status, answered, n in (await self.s.execute(
                select(L.incident_id, CaseRow.status, CaseRow.first_response_at.is_not(None),
                       func.count())
                .join(CaseRow, CaseRow.id == L.case_id).where(L.incident_id.in_(ids))
                .group_by(L.incident_id, CaseRow.status,
                          CaseRow.first_response_at.is_not(None)))).all():
            total, waiting = linked.get(incident_id, (0, 0))
            waiting += n if status == CaseStatus.OPEN.value and not answered else 0
            linked[incident_id] = (total + n, waiting)
        return [IncidentSummary(i, int(groups.get(i.id, 0)), *linked.get(i.id, (0, 0)))
                for i in incidents]

    # --- the groups an incident has reached

    async def groups(self, incident_id: int) -> list[tuple[str, str]]:
        """(account, channel) of every group an earlier post of the incident went to."""
        rows = (await self.s.execute(select(D.account_key, D.channel_id).distinct()
                                     .where(D.incident_id == incident_id))).all()
        return sorted((key, channel) for key, channel in rows)

    async def reached(self, account_key: str, channel_id: str | None = None) -> set[int]:
        """Incidents some post of which went to one of the account's groups (or to the
        group `channel_id`)."""
        q = select(D.incident_id).distinct().where(D.account_key == account_key)
        if channel_id is not None:
            q = q.where(D.channel_id == channel_id)
        return set((await self.s.scalars(q)).all())

    # --- linked cases

    async def link(self, incident_id: int, case_id: int, by: str, at: datetime) -> None:
        self.s.add(IncidentCaseRow(incident_id=incident_id, case_id=case_id, linked_by=by,
                                   linked_at=at))
        await self.s.flush()

    async def unlink(self, incident_id: int, case_id: int) -> bool:
        result = await self.s.execute(delete(L).where(L.incident_id == incident_id,
                                                      L.case_id == case_id))
        return bool(getattr(result, "rowcount", 0))

    async def is_linked(self, incident_id: int, case_id: int) -> bool:
        return await self.s.get(IncidentCaseRow, (incident_id, case_id)) is not None

    async def of_case(self, case_id: int) -> list[Incident]:
        """The incidents a case is linked to, oldest first."""
        rows = await self.s.scalars(select(IncidentRow).join(L, L.incident_id == IncidentRow.id)
                                    .where(L.case_id == case_id).order_by(IncidentRow.id))
        return [_incident(r) for r in rows.all()]

    async def cases(self, incident_id: int, *, active_only: bool = False,
                    account_key: str | None = None,
                    channel_id: str | None = None) -> list[LinkedCase]:
        """The incident's linked cases, by due time."""
        q = (select(CaseRow).join(L, L.case_id == CaseRow.id)
             .where(L.incident_id == incident_id))
        if active_only:
            q = q.where(CaseRow.status.in_(ACTIVE))
        if account_key is not None:
            q = q.where(CaseRow.account_key == account_key)
        if channel_id is not None:
            q = q.where(CaseRow.channel_id == channel_id)
        rows = await self.s.scalars(q.order_by(CaseRow.due_at, CaseRow.id))
        return [_linked(r) for r in rows.all()]


class IncidentPosts:
    """An incident's broadcasts and their deliveries, one per group."""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def add(self, incident: Incident, kind: PostKind, body: str, respond: bool,
                  by: str, at: datetime, groups: Iterable[tuple[str, str]]) -> IncidentPost:
        """Store a post and a pending delivery per (account, channel) group."""
        groups = list(groups)
        row = IncidentPostRow(incident_id=incident.id, kind=kind.value, body=body,
                              respond=respond, created_by=by, created_at=at,
                              total=len(groups))
        self.s.add(row)
        await self.s.flush()
        self.s.add_all(D(post_id=row.id, incident_id=incident.id, account_key=key,
                         channel_id=channel, status=DeliveryStatus.PENDING.value)
                       for key, channel in groups)
        await self.s.flush()
        return _post(row, incident.team_id)

    async def get(self, post_id: int) -> IncidentPost | None:
        found = (await self.s.execute(
            select(IncidentPostRow, IncidentRow.team_id)
            .join(IncidentRow, IncidentRow.id == IncidentPostRow.incident_id)
            .where(IncidentPostRow.id == post_id))).first()
        return _post(found[0], found[1]) if found else None

    async def set_progress(self, post_id: int, channel: str, ts: str) -> None:
        await self.s.execute(update(IncidentPostRow).where(IncidentPostRow.id == post_id)
                             .values(progress_channel=channel, progress_ts=ts))

    async def delivery(self, post_id: int, channel_id: str) -> IncidentDelivery | None:
        row = await self.s.scalar(select(D).where(D.post_id == post_id,
                                                  D.channel_id == channel_id))
        return _delivery(row) if row else None

    async def deliveries(self, post_id: int, status: DeliveryStatus | None = None,
                         limit: int | None = None) -> list[IncidentDelivery]:
        q = select(D).where(D.post_id == post_id)
        if status is not None:
            q = q.where(D.status == status.value)
        rows = await self.s.scalars(q.order_by(D.id).limit(limit))
        return [_delivery(r) for r in rows.all()]

    async def settle(self, post_id: int, channel_id: str, status: DeliveryStatus,
                     at: datetime, ts: str | None = None, error: str | None = None
                     ) -> str | None:
        row = await self.s.scalar(select(D).where(D.post_id == post_id,
                                                  D.channel_id == channel_id))
        return await deliveries.settle(self.s, row, status, at, ts, error)

    async def counts(self, post_id: int) -> dict[str, int]:
        return await deliveries.counts(self.s, D.status, D.post_id == post_id)
