"""The incidents repository on SQLite and PostgreSQL: incidents, posts with one delivery per
group, settling and counts, linked cases and the figures staff lists show."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from bot.domain.incidents import IncidentStatus, PostKind, Scope
from bot.domain.model import (
    Account,
    CaseChange,
    CaseStatus,
    DeliveryStatus,
    Lang,
    NewCase,
    Severity,
    Term,
    Tier,
)
from storage.db import Database
from storage.repos import Accounts, Bindings, Cases, IncidentPosts, Incidents

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def account(key: str) -> Account:
    return Account(key=key, name=key.title(), tier=Tier.ENTERPRISE, term=Term.ANNUAL,
                   start=date(2026, 1, 1), end=date(2027, 1, 1), region="cn-north-4",
                   timezone="Asia/Shanghai", lang=Lang.EN)


def new_case(key: str, channel: str, minutes: int) -> NewCase:
    return NewCase(account_key=key, team_id="T1", channel_id=channel, opener_user_id="U1",
                   severity=Severity.S1, requested_severity=Severity.S1, summary="down",
                   description="", region=None, software=None, opened_at=T0,
                   due_at=T0 + timedelta(minutes=minutes),
                   warn_at=T0 + timedelta(minutes=minutes * 0.8), target_label="10m")


async def test_incidents_posts_deliveries_and_links(db: Database) -> None:
    async with db.transaction() as s:
        for key, channel in (("acme", "C1"), ("zeta", "C2")):
            await Accounts(s).add(account(key), T0)
            await Bindings(s).bind("T1", channel, key, "UADMIN", T0)
        a = await Cases(s).add(new_case("acme", "C1", 10))
        b = await Cases(s).add(new_case("zeta", "C2", 5))
        incident = await Incidents(s).add("T1", Scope("cn-north-4", frozenset({"rds", "ecs"})),
                                          "ECS down", "UTAM", T0)
        assert incident.ref == "INC-1001" and incident.status is IncidentStatus.OPEN
        assert incident.scope.products == frozenset({"ecs", "rds"})
        post = await IncidentPosts(s).add(incident, PostKind.DECLARED, "", False, "UTAM", T0,
                                          [("acme", "C1"), ("zeta", "C2")])
        assert post.total == 2 and post.team_id == "T1"
        await Incidents(s).link(incident.id, a.id, "bot", T0)
        await Incidents(s).link(incident.id, b.id, "UENG", T0)

    async with db.transaction() as s:
        posts = IncidentPosts(s)
        assert (await posts.counts(post.id))[DeliveryStatus.PENDING] == 2
        assert await posts.settle(post.id, "C1", DeliveryStatus.SENT, T0, ts="1.1") == "acme"
        assert await posts.settle(post.id, "C2", DeliveryStatus.FAILED, T0,
                                  error="x" * 300) == "zeta"
        assert await posts.settle(post.id, "C9", DeliveryStatus.SENT, T0) is None
        counts = await posts.counts(post.id)
        assert (counts[DeliveryStatus.SENT], counts[DeliveryStatus.FAILED]) == (1, 1)
        failed = await posts.deliveries(post.id, DeliveryStatus.FAILED, 5)
        assert [(f.channel_id, len(f.error or "")) for f in failed] == [("C2", 200)]
        await posts.set_progress(post.id, "D1", "9.9")
        again = await posts.get(post.id)
        assert again is not None and (again.progress_channel, again.progress_ts) == ("D1", "9.9")

        repo = Incidents(s)
        assert await repo.groups(incident.id) == [("acme", "C1"), ("zeta", "C2")]
        assert await repo.reached("acme") == {incident.id}
        assert await repo.reached("nobody") == set()
        assert await repo.reached("acme", "C1") == {incident.id}
        assert await repo.reached("acme", "C2") == set()
        assert [i.ref for i in await repo.of_case(a.id)] == ["INC-1001"]
        # by due time: zeta's case is due first
        assert [c.ref for c in await repo.cases(incident.id)] == [b.ref, a.ref]
        assert [c.ref for c in await repo.cases(incident.id, account_key="acme")] == [a.ref]
        assert [c.ref for c in await repo.cases(incident.id, channel_id="C2")] == [b.ref]
        await Cases(s).update(b.id, CaseChange(status=CaseStatus.ACKNOWLEDGED,
                                               first_response_at=T0))
        summary, = await repo.summaries([incident])
        assert (summary.groups, summary.linked, summary.waiting) == (1, 2, 1)
        await Cases(s).update(a.id, CaseChange(status=CaseStatus.RESOLVED, resolved_at=T0))
        assert [c.ref for c in await repo.cases(incident.id, active_only=True)] == [b.ref]

        assert await repo.unlink(incident.id, b.id)
        assert not await repo.unlink(incident.id, b.id)
        assert not await repo.is_linked(incident.id, b.id)
        assert await repo.is_linked(incident.id, a.id)

        await repo.note_latest(incident.id, "fix rolling out", T0 + timedelta(minutes=5))
        assert [i.id for i in await repo.open()] == [incident.id]
        await repo.resolve(incident.id, "UTAM", T0 + timedelta(hours=1), "recovered")
        done = await repo.get(incident.id)
        assert done is not None and done.status is IncidentStatus.RESOLVED
        assert (done.latest, done.resolved_by) == ("recovered", "UTAM")
        assert await repo.open() == []
        assert [i.id for i in await repo.recent(5)] == [incident.id]
        assert await repo.recent(5, since=T0 + timedelta(hours=2)) == []


async def test_a_case_is_linked_to_an_incident_once(db: Database) -> None:
    async with db.transaction() as s:
        await Accounts(s).add(account("acme"), T0)
        case = await Cases(s).add(new_case("acme", "C1", 10))
        incident = await Incidents(s).add("T1", Scope("cn-north-4"), "t", "U", T0)
        await Incidents(s).link(incident.id, case.id, "bot", T0)
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            await Incidents(s).link(incident.id, case.id, "U", T0)
    async with db.transaction() as s:
        assert len(await Incidents(s).cases(incident.id)) == 1
