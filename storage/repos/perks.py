"""Perk requests and the append-only perk ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import LedgerEntry, NewPerkRequest, PerkRequest, RequestStatus
from storage.sql import core
from storage.tables import AccountRow, PerkLedgerRow, PerkRequestRow


def _request(r: PerkRequestRow) -> PerkRequest:
    return PerkRequest(
        id=r.id, account_key=r.account_key, perk=r.perk, start_date=r.start_date,
        amount=r.amount, plan_year_start=r.plan_year_start, status=RequestStatus(r.status),
        channel_id=r.channel_id, requested_by=r.requested_by, requested_at=r.requested_at,
        decided_by=r.decided_by, decided_at=r.decided_at, reason=r.reason)


# how each ledger line counts towards what is taken of a quota (held or used)
_TAKEN = {LedgerEntry.HOLD.value: 1, LedgerEntry.RELEASE.value: -1,
          LedgerEntry.CONSUME.value: 1}


# built once (Core, bound parameters): each monthly report runs both
_LEDGER, _REQUESTS = core(PerkLedgerRow), core(PerkRequestRow)
_TAKEN_BEFORE = (
    select(_LEDGER.c.perk, _LEDGER.c.entry, func.sum(_LEDGER.c.amount))
    .where(_LEDGER.c.account_key == bindparam("account_key"),
           _LEDGER.c.plan_year_start == bindparam("plan_year_start"),
           _LEDGER.c.at < bindparam("before"))
    .group_by(_LEDGER.c.perk, _LEDGER.c.entry))
_APPROVED_BEFORE = (
    select(_REQUESTS.c.perk, _REQUESTS.c.start_date, _REQUESTS.c.amount)
    .where(_REQUESTS.c.account_key == bindparam("account_key"),
           _REQUESTS.c.status == RequestStatus.APPROVED.value,
           _REQUESTS.c.start_date < bindparam("end")))


class PerkLedger:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def escort_windows(self, account_key: str) -> list[tuple[datetime, datetime]]:
        """Approved escort requests as [start, end) instants in the account's time zone."""
        rows = (await self.s.execute(
            select(PerkRequestRow.start_date, PerkRequestRow.amount, AccountRow.timezone)
            .join(AccountRow, AccountRow.key == PerkRequestRow.account_key)
            .where(PerkRequestRow.account_key == account_key, PerkRequestRow.perk == "escort",
                   PerkRequestRow.status == RequestStatus.APPROVED.value))).all()
        windows = []
        for start, days, tz_name in rows:
            tz = ZoneInfo(tz_name)
            begin = datetime.combine(start, time(0), tzinfo=tz)
            end = datetime.combine(start + timedelta(days=days), time(0), tzinfo=tz)
            windows.append((begin.astimezone(UTC), end.astimezone(UTC)))
        return windows

    async def totals(self, account_key: str, plan_year_start: date
                     ) -> tuple[dict[str, int], dict[str, int]]:
        """(held, used) per perk for one plan year, summed from the ledger."""
        rows = (await self.s.execute(
            select(PerkLedgerRow.perk, PerkLedgerRow.entry, func.sum(PerkLedgerRow.amount))
            .where(PerkLedgerRow.account_key == account_key,
                   PerkLedgerRow.plan_year_start == plan_year_start)
            .group_by(PerkLedgerRow.perk, PerkLedgerRow.entry))).all()
        held: dict[str, int] = {}
        used: dict[str, int] = {}
        for perk, entry, amount in rows:
            if entry == LedgerEntry.HOLD:
                held[perk] = held.get(perk, 0) + int(amount)
            elif entry == LedgerEntry.RELEASE:
                held[perk] = held.get(perk, 0) - int(amount)
            elif entry == LedgerEntry.CONSUME:
                used[perk] = used.get(perk, 0) + int(amount)
        return held, used

    async def taken_before(self, account_key: str, plan_year_start: date,
                           before: datetime) -> dict[str, int]:
        """Held + used per perk of one plan year, as the ledger stood at `before`."""
        rows = (await self.s.execute(_TAKEN_BEFORE, {
            "account_key": account_key, "plan_year_start": plan_year_start,
            "before": before})).all()
        taken: dict[str, int] = {}
        for perk, entry, amount in rows:
            if entry in _TAKEN:
                taken[perk] = taken.get(perk, 0) + _TAKEN[entry] * int(amount)
        return taken

    async def approved_starting_before(self, account_key: str, end: date
                                       ) -> list[tuple[str, date, int]]:
        """(perk, first day, amount) of approved requests that start before `end`."""
        rows = (await self.s.execute(_APPROVED_BEFORE, {"account_key": account_key,
                                                         "end": end})).all()
        return [(perk, start, int(amount)) for perk, start, amount in rows]

    async def add_request(self, new: NewPerkRequest) -> PerkRequest:
        """A new request, pending until decided."""
        row = PerkRequestRow(
            account_key=new.account_key, perk=new.perk, start_date=new.start_date,
            amount=new.amount, plan_year_start=new.plan_year_start,
            status=RequestStatus.PENDING.value, channel_id=new.channel_id,
            requested_by=new.requested_by, requested_at=new.requested_at)
        self.s.add(row)
        await self.s.flush()
        return _request(row)

    async def request(self, request_id: int, *, for_update: bool = False
                      ) -> PerkRequest | None:
        q = select(PerkRequestRow).where(PerkRequestRow.id == request_id)
        if for_update:
            q = q.with_for_update()
        row = await self.s.scalar(q)
        return _request(row) if row else None

    async def settle(self, request_id: int, status: RequestStatus, by: str, at: datetime,
                     reason: str | None = None) -> PerkRequest:
        """Record a decision (or the customer's withdrawal) on a request."""
        # the identity map holds the row this transaction loaded (and locked): no re-read
        row = await self.s.get(PerkRequestRow, request_id)
        assert row is not None
        row.status, row.decided_by, row.decided_at = status.value, by, at
        if reason is not None:
            row.reason = reason
        await self.s.flush()
        return _request(row)

    async def requests(self, account_keys: list[str] | None = None,
                       status: RequestStatus | None = None,
                       limit: int | None = None) -> list[PerkRequest]:
        """Requests in the order they were made (the first `limit` of them)."""
        q = select(PerkRequestRow).order_by(PerkRequestRow.id)
        if account_keys is not None:
            q = q.where(PerkRequestRow.account_key.in_(account_keys))
        if status is not None:
            q = q.where(PerkRequestRow.status == status.value)
        if limit is not None:
            q = q.limit(limit)
        return [_request(r) for r in (await self.s.scalars(q)).all()]

    async def entry(self, account_key: str, perk: str, plan_year_start: date,
                    entry: LedgerEntry, amount: int, request_id: int | None,
                    at: datetime) -> None:
        """Append to the ledger (never updated or deleted)."""
        self.s.add(PerkLedgerRow(account_key=account_key, perk=perk,
                                 plan_year_start=plan_year_start, entry=entry.value,
                                 amount=amount, request_id=request_id, at=at))
        await self.s.flush()
