"""Repositories by aggregate: typed inputs in, domain objects out, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import event

from bot.domain.advisories import Delivery, NewAdvisory, Targeting, Unacknowledged
from bot.domain.model import (
    Account,
    AuditEntry,
    CaseChange,
    CaseStatus,
    DeliveryStatus,
    Lang,
    LedgerEntry,
    NewCase,
    NewPerkRequest,
    PlanChange,
    RequestStatus,
    Severity,
    Term,
    Tier,
)
from bot.domain.reports import CaseFact, ReportRecord
from storage.db import Database
from storage.repos import (
    Accounts,
    Advisories,
    Audit,
    Bindings,
    Cases,
    Inbox,
    PerkLedger,
    PlanChanges,
    Reports,
    Tags,
    Viewers,
)

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def account(key: str, region: str = "cn-north-4") -> Account:
    return Account(key=key, name=key.title(), tier=Tier.ENTERPRISE, term=Term.ANNUAL,
                   start=date(2026, 1, 1), end=date(2027, 1, 1), region=region,
                   timezone="Asia/Shanghai", lang=Lang.EN)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements sent to the database while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql)

    target = db.engine.sync_engine
    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)


async def test_audience_is_every_account_with_tags_and_groups_in_one_query(
        db: Database) -> None:
    async with db.transaction() as s:
        for key in ("acme", "bizco", "lone"):
            await Accounts(s).add(account(key), T0)
        await Bindings(s).bind("T1", "C2", "acme", "U1", T0)
        await Bindings(s).bind("T1", "C1", "acme", "U1", T0 + timedelta(seconds=1))
        await Bindings(s).bind("T1", "C3", "bizco", "U1", T0)
        await Tags(s).replace("acme", "product", {"ecs", "obs"})
        await Tags(s).replace("acme", "region", {"ap-southeast-1"})
    async with db.transaction() as s:
        with statements(db) as sql:
            audience = await Tags(s).audience()
        assert len([q for q in sql if q.lstrip().upper().startswith("SELECT")]) == 1
    by_key = {a.profile.account.key: a for a in audience}
    assert list(by_key) == ["acme", "bizco", "lone"]
    assert by_key["acme"].channels == ("C2", "C1")  # in the order they were bound
    assert by_key["acme"].profile.tags["product"] == frozenset({"ecs", "obs"})
    assert by_key["acme"].profile.tags["region"] == frozenset({"ap-southeast-1"})
    assert by_key["bizco"].channels == ("C3",)
    assert by_key["bizco"].profile.tags["product"] == frozenset()
    assert by_key["lone"].channels == ()  # no group: still known, reaches nobody
    assert by_key["lone"].profile.account == account("lone")
    async with db.transaction() as s:
        assert await Bindings(s).bound_accounts() == {"acme", "bizco"}


async def test_tags_replace_one_kind_only(db: Database) -> None:
    async with db.transaction() as s:
        await Accounts(s).add(account("acme"), T0)
        await Tags(s).replace("acme", "product", {"ecs"})
        await Tags(s).replace("acme", "software", {"mysql"})
        await Tags(s).replace("acme", "product", {"obs", "rds"})
        tags = await Tags(s).of("acme")
    assert tags == {"region": frozenset(), "product": frozenset({"obs", "rds"}),
                    "software": frozenset({"mysql"})}


async def test_account_save_writes_only_what_changed(db: Database) -> None:
    async with db.transaction() as s:
        await Accounts(s).add(account("acme"), T0)
    async with db.transaction() as s:
        before = await Accounts(s).get("acme")
    assert before is not None
    async with db.transaction() as s:  # meanwhile, another transaction names a TAM
        await Accounts(s).set_tam("acme", "UTAM")
    async with db.transaction() as s:
        saved = await Accounts(s).save(before, replace(before, tier=Tier.BUSINESS,
                                                       perk_tier=Tier.BUSINESS,
                                                       end=date(2027, 6, 1)))
    assert saved.tam_user_id == "UTAM"  # not overwritten by the stale copy
    assert (saved.tier, saved.perk_tier, saved.end) == (Tier.BUSINESS, Tier.BUSINESS,
                                                        date(2027, 6, 1))
    async with db.transaction() as s:
        assert await Accounts(s).get("acme") == saved


async def test_cases_take_a_new_case_and_typed_changes(db: Database) -> None:
    async with db.transaction() as s:
        await Accounts(s).add(account("acme"), T0)
        case = await Cases(s).add(NewCase(
            account_key="acme", team_id="T1", channel_id="C1", opener_user_id="U1",
            severity=Severity.S2, requested_severity=Severity.S1, summary="down",
            description="", region=None, software=None, opened_at=T0,
            due_at=T0 + timedelta(hours=1), warn_at=T0 + timedelta(minutes=45),
            target_label="1h"))
    assert (case.ref, case.status, case.version, case.sla_generation) == (
        f"CS-{1000 + case.id}", CaseStatus.OPEN, 1, 1)
    assert (case.severity, case.requested_severity) == (Severity.S2, Severity.S1)
    async with db.transaction() as s:
        await Cases(s).get(case.id, for_update=True)
        quiet = await Cases(s).update(case.id, CaseChange(warned=True), bump=False)
        acked = await Cases(s).update(case.id, CaseChange(
            status=CaseStatus.ACKNOWLEDGED, first_response_at=T0, first_response_by="UENG",
            sla_generation=2))
    assert (quiet.warned, quiet.version) == (True, 1)
    assert (acked.status, acked.first_response_by, acked.sla_generation, acked.version,
            acked.warned, acked.summary) == (CaseStatus.ACKNOWLEDGED, "UENG", 2, 2, True,
                                             "down")
    async with db.transaction() as s:
        assert await Cases(s).get(case.id) == acked
        assert await Cases(s).facts_between("acme", T0, T0 + timedelta(days=1)) == [
            CaseFact(acked.severity, acked.opened_at, acked.due_at, T0, None, False)]
        assert await Cases(s).facts_between("acme", T0 + timedelta(seconds=1),
                                            T0 + timedelta(days=1)) == []
        assert await Cases(s).facts_between("other", T0, T0 + timedelta(days=1)) == []


async def test_perk_requests_are_domain_objects_with_a_status(db: Database) -> None:
    year = date(2026, 1, 1)
    async with db.transaction() as s:
        await Accounts(s).add(account("acme"), T0)
        ledger = PerkLedger(s)
        first = await ledger.add_request(NewPerkRequest(
            account_key="acme", perk="escort", start_date=date(2026, 12, 1), amount=2,
            plan_year_start=year, channel_id="C1", requested_by="U1", requested_at=T0))
        second = await ledger.add_request(NewPerkRequest(
            account_key="acme", perk="escort", start_date=date(2027, 2, 1), amount=1,
            plan_year_start=year, channel_id="C1", requested_by="U1", requested_at=T0))
        await ledger.entry("acme", "escort", year, LedgerEntry.HOLD, 2, first.id, T0)
        await ledger.entry("acme", "escort", year, LedgerEntry.HOLD, 1, second.id, T0)
    assert first.status is RequestStatus.PENDING and first.decided_by is None
    later = T0 + timedelta(hours=1)
    async with db.transaction() as s:
        ledger = PerkLedger(s)
        await ledger.request(first.id, for_update=True)
        await ledger.entry("acme", "escort", year, LedgerEntry.RELEASE, 2, first.id, later)
        await ledger.entry("acme", "escort", year, LedgerEntry.CONSUME, 2, first.id, later)
        await ledger.entry("acme", "escort", year, LedgerEntry.RELEASE, 1, second.id, later)
        approved = await ledger.settle(first.id, RequestStatus.APPROVED, "UTAM", later)
        rejected = await ledger.settle(second.id, RequestStatus.REJECTED, "UTAM", later,
                                       "no staff that week")
    assert (approved.status, approved.decided_by, approved.decided_at, approved.reason) == (
        RequestStatus.APPROVED, "UTAM", later, None)
    assert (rejected.status, rejected.reason) == (RequestStatus.REJECTED, "no staff that week")
    async with db.transaction() as s:
        ledger = PerkLedger(s)
        assert await ledger.request(first.id) == approved
        assert await ledger.requests(["acme"]) == [approved, rejected]
        assert await ledger.requests(["acme"], RequestStatus.REJECTED) == [rejected]
        assert await ledger.requests(["acme"], limit=1) == [approved]
        assert await ledger.requests(["other"]) == []
        # as the ledger stood: nothing yet; both held; after the decisions, 2 used
        assert await ledger.taken_before("acme", year, T0) == {}
        assert await ledger.taken_before("acme", year, later) == {"escort": 3}
        assert await ledger.taken_before("acme", year, later + timedelta(1)) == {"escort": 2}
        assert await ledger.approved_starting_before("acme", date(2027, 1, 1)) == [
            ("escort", date(2026, 12, 1), 2)]
        assert await ledger.approved_starting_before("acme", date(2026, 12, 1)) == []


async def test_advisories_and_their_deliveries(db: Database) -> None:
    targeting = Targeting(products=frozenset({"ecs"}))
    async with db.transaction() as s:
        for key in ("acme", "bizco"):
            await Accounts(s).add(account(key), T0)
        adv = await Advisories(s).add(
            NewAdvisory(team_id="T1", title="Patch", kind="vulnerability", severity="high",
                        body="Patch now", targeting=targeting, created_by="UTAM",
                        created_at=T0, total=3, dedupe_key="k1"),
            [("acme", "C1"), ("acme", "C2"), ("bizco", "C3")])
    assert adv.targeting == targeting and adv.progress_ts is None
    later = T0 + timedelta(minutes=1)
    async with db.transaction() as s:
        repo = Advisories(s)
        assert await repo.by_dedupe_key("k1") == adv
        assert await repo.by_dedupe_key("k2") is None
        assert await repo.counts(adv.id) == {DeliveryStatus.PENDING: 3,
                                             DeliveryStatus.SENT: 0, DeliveryStatus.FAILED: 0}
        assert await repo.settle(adv.id, "C1", DeliveryStatus.SENT, later, ts="1.1") == "acme"
        assert await repo.settle(adv.id, "C3", DeliveryStatus.FAILED, later,
                                 error="x" * 300) == "bizco"
        assert await repo.settle(adv.id, "C9", DeliveryStatus.SENT, later) is None
        await repo.set_progress(adv.id, "D1", "9.9")
    async with db.transaction() as s:
        repo = Advisories(s)
        assert await repo.delivery(adv.id, "C1") == Delivery(
            adv.id, "acme", "C1", DeliveryStatus.SENT, ts="1.1", sent_at=later)
        failed = await repo.deliveries(adv.id, status=DeliveryStatus.FAILED)
        assert [(d.channel_id, len(d.error or "")) for d in failed] == [("C3", 200)]
        assert (await repo.get(adv.id)) == replace(adv, progress_channel="D1",
                                                   progress_ts="9.9")
        assert await repo.unacknowledged(["acme", "bizco"], 10) == [
            Unacknowledged(adv.id, "Patch", "high", 1)]
        assert not await repo.acknowledged(adv.id, "acme")
        await repo.acknowledge(adv.id, "acme", "UCUST", later)
    async with db.transaction() as s:
        repo = Advisories(s)
        assert await repo.acknowledged(adv.id, "acme")
        assert {d.acked_by for d in await repo.deliveries(adv.id, account_key="acme")} == {
            "UCUST"}
        assert await repo.unacknowledged(["acme", "bizco"], 10) == []
        [summary] = await repo.recent(10)
        assert (summary.advisory.id, summary.acked) == (adv.id, 1)
        assert summary.counts == {DeliveryStatus.PENDING: 1, DeliveryStatus.SENT: 1,
                                  DeliveryStatus.FAILED: 1}
        assert await repo.month_counts("acme", T0, T0 + timedelta(days=1)) == (1, 1)
        assert await repo.month_counts("bizco", T0, T0 + timedelta(days=1)) == (0, 0)
        assert await repo.month_counts("acme", later + timedelta(1), later + timedelta(2)) \
            == (0, 0)


async def test_recent_advisories_cost_two_queries_whatever_their_number(db: Database) -> None:
    async with db.transaction() as s:
        await Accounts(s).add(account("acme"), T0)
        for i in range(5):
            await Advisories(s).add(
                NewAdvisory(team_id="T1", title=f"A{i}", kind="new_feature", severity="low",
                            body="", targeting=Targeting(), created_by="U1", created_at=T0,
                            total=1), [("acme", f"C{i}")])
    async with db.transaction() as s:
        with statements(db) as sql:
            recent = await Advisories(s).recent(3)
    assert [r.advisory.title for r in recent] == ["A4", "A3", "A2"]
    assert all(r.counts[DeliveryStatus.PENDING] == 1 for r in recent)
    assert len([q for q in sql if q.lstrip().upper().startswith("SELECT")]) == 2


async def test_customer_home_accounts_follow_the_binding(db: Database) -> None:
    async with db.transaction() as s:
        for key in ("acme", "bizco"):
            await Accounts(s).add(account(key), T0)
        await Bindings(s).bind("T1", "C1", "acme", "U1", T0)
        await Bindings(s).bind("T1", "C2", "bizco", "U1", T0)
        viewers = Viewers(s)
        await viewers.saw_account("T1", "UC", "acme", "C1", T0)
        await viewers.saw_account("T1", "UC", "bizco", "C2", T0 + timedelta(1))
        await viewers.opened("T1", "UC", T0)
        await viewers.opened("T1", "UC", T0 + timedelta(1))
    async with db.transaction() as s:
        assert await Viewers(s).accounts_of("T1", "UC") == ["bizco", "acme"]
        assert await Viewers(s).all() == [("T1", "UC")]
        assert await Viewers(s).customers_of("acme") == {("T1", "UC")}
        await Bindings(s).bind("T1", "C2", "acme", "U1", T0)  # the group is re-linked
    async with db.transaction() as s:
        assert await Viewers(s).accounts_of("T1", "UC") == ["acme"]


async def test_plan_changes_reports_audit_and_inbox(db: Database) -> None:
    change = PlanChange(account_key="acme", kind="upgrade", old_tier="business",
                        new_tier="enterprise", effective=date(2026, 11, 24), due_now=100,
                        incremental_old=None, incremental_new=None, by="UADMIN", at=T0)
    record = ReportRecord(account_key="acme", month="2026-10", trigger="scheduled",
                          deadline=date(2026, 11, 10), created_at=T0, channel_id="C1",
                          ts="1.1", figures={"opened": 2})
    async with db.transaction() as s:
        await Accounts(s).add(account("acme"), T0)
        await PlanChanges(s).add(change)
        await Reports(s).add(record)
        await Audit(s).write(at=T0, actor="U1", action="case.open", case_id=7,
                             after={"severity": "S2"})
        assert await Inbox(s).first_time("old", T0 - timedelta(days=8))
        assert await Inbox(s).first_time("new", T0)
    async with db.transaction() as s:
        [stored] = await PlanChanges(s).for_account("acme")
        assert stored == replace(change, id=stored.id)
        assert await PlanChanges(s).for_account("acme", since=T0 + timedelta(1)) == []
        assert await PlanChanges(s).for_account("acme", since=T0,
                                                until=T0 + timedelta(1)) == [stored]
        assert await Reports(s).of("acme") == [record]
        [entry] = await Audit(s).for_case(7)
        assert isinstance(entry, AuditEntry)
        assert (entry.action, entry.actor, entry.after) == ("case.open", "U1",
                                                            {"severity": "S2"})
        assert await Audit(s).by_action("case.open") == [entry]
        assert await Inbox(s).prune(T0 - timedelta(days=7)) == 1
    async with db.transaction() as s:
        assert await Inbox(s).first_time("old", T0)  # forgotten
        assert not await Inbox(s).first_time("new", T0)
