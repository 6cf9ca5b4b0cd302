"""Use cases for platform incidents: declare, post updates, resolve, link cases.

An incident reaches the groups of the accounts it affects (region and product tags,
`bot.domain.incidents.affects`), every group an earlier post of it reached, and the groups
of its linked cases. Each post is a broadcast (`bot.services.broadcast`): one paced,
idempotent outbox job per group and the sender's progress by DM, as for advisories.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.advisories import AccountProfile
from bot.domain.incidents import (
    Incident,
    IncidentStatus,
    IncidentSummary,
    LinkedCase,
    PostKind,
    Scope,
    affects,
    incident_ref,
)
from bot.domain.model import Account, Case, CaseChange, DeliveryStatus
from bot.i18n import Translator
from bot.messages import Message
from bot.services import broadcast, cases, outbox
from bot.services.accounts import bound_account
from bot.services.base import Actor, AppContext, Refusal
from storage.repos import Accounts, Audit, Cases, IncidentPosts, Incidents, Tags
from storage.repos.incidents import IncidentDelivery

POST, PROGRESS = "incident.post", "incident.progress"
TITLE_MAX = 150
TEXT_MAX = 2500
CUSTOMER_RECENT = timedelta(days=7)  # resolved incidents a customer still sees
LIST_LIMIT = 15


@dataclass(frozen=True)
class Posted:
    """What a declaration, update or resolution did."""

    incident: Incident
    groups: int  # groups the post goes to
    responded: int = 0  # linked cases whose first response it recorded
    waiting: tuple[LinkedCase, ...] = ()  # linked cases still active (on resolution)


# --- who an incident reaches -------------------------------------------------------------

async def _audience(s: AsyncSession, app: AppContext, incident: Incident,
                    now: datetime) -> list[tuple[str, str]]:
    """(account, channel) of every group the incident's next post goes to: the affected
    accounts' groups, groups earlier posts reached, groups of its linked cases."""
    groups: dict[str, str] = {}  # channel -> account
    for a in await Tags(s).audience():
        account = a.profile.account
        if affects(app.catalog, a.profile, incident.scope,
                   now.astimezone(app.tz(account)).date()):
            for ch in a.channels:
                groups.setdefault(ch, account.key)
    for key, ch in await Incidents(s).groups(incident.id):
        groups.setdefault(ch, key)
    for c in await Incidents(s).cases(incident.id):
        groups.setdefault(c.channel_id, c.account_key)
    return sorted((key, ch) for ch, key in groups.items())


async def _post(s: AsyncSession, app: AppContext, actor: Actor, incident: Incident,
                kind: PostKind, body: str, respond: bool, now: datetime) -> int:
    groups = await _audience(s, app, incident, now)
    if not groups:
        return 0
    post = await IncidentPosts(s).add(incident, kind, body, respond, actor.user_id, now, groups)
    await BROADCAST.queue(s, post.id, [ch for _, ch in groups], now)
    return len(groups)


async def _load(s: AsyncSession, incident_id: int, *, for_update: bool = False) -> Incident:
    incident = await Incidents(s).get(incident_id, for_update=for_update)
    if incident is None:
        raise Refusal("incident.unknown", ref=incident_ref(incident_id))
    return incident


def _require_open(incident: Incident) -> None:
    if not incident.is_open:
        raise Refusal("incident.already_resolved", ref=incident.ref)


# --- staff ---------------------------------------------------------------------------------

async def preview(app: AppContext, scope: Scope) -> tuple[int, int]:
    """How many groups (and accounts) an incident in this scope affects now."""
    now = app.clock()
    async with app.db.transaction() as s:
        probe = Incident(0, "", scope, "", IncidentStatus.OPEN, "", now)
        groups = await _audience(s, app, probe, now)
    return len(groups), len({k for k, _ in groups})


async def declare(app: AppContext, actor: Actor, scope: Scope, title: str) -> Posted:
    """A new open incident and its status post to every group it affects."""
    now = app.clock()
    async with app.db.transaction() as s:
        incident = await Incidents(s).add(actor.team_id, scope, title, actor.user_id, now)
        groups = await _post(s, app, actor, incident, PostKind.DECLARED, "", False, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="incident.declare",
                             after={"incident": incident.ref, "region": scope.region,
                                    "products": sorted(scope.products), "title": title,
                                    "groups": groups})
    return Posted(incident, groups)


async def update(app: AppContext, actor: Actor, incident_id: int, text: str, *,
                 respond: bool) -> Posted:
    """Post a status update to every group the incident reaches. With `respond`, the
    update is the first response of its linked cases still waiting for one (each case's
    own clock decides whether that was within its target)."""
    now = app.clock()
    async with app.db.transaction() as s:
        incident = await _load(s, incident_id, for_update=True)
        _require_open(incident)
        await Incidents(s).note_latest(incident.id, text, now)
        groups = await _post(s, app, actor, incident, PostKind.UPDATE, text, respond, now)
        responded = 0
        if respond:
            waiting = [c.case_id for c in await Incidents(s).cases(incident.id,
                                                                   active_only=True)
                       if c.awaiting]
            # all their rows first, lowest id first, as SLA timers firing together take
            # them: taken one by one in another order, the two could deadlock
            await Cases(s).lock(sorted(waiting))
            for case_id in sorted(waiting):
                if await cases.first_response(app, actor, case_id, via="incident"):
                    responded += 1
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="incident.update",
                             after={"incident": incident.ref, "groups": groups,
                                    "respond": respond, "responded": responded})
        incident = await _load(s, incident_id)
    return Posted(incident, groups, responded)


async def resolve(app: AppContext, actor: Actor, incident_id: int, text: str) -> Posted:
    """Resolve: the resolution goes to every group; linked cases stay open (each is
    answered and resolved on its own), and the ones still active are listed."""
    now = app.clock()
    async with app.db.transaction() as s:
        incident = await _load(s, incident_id, for_update=True)
        _require_open(incident)
        await Incidents(s).resolve(incident.id, actor.user_id, now, text or None)
        incident = await _load(s, incident_id)
        groups = await _post(s, app, actor, incident, PostKind.RESOLVED, text, False, now)
        waiting = await Incidents(s).cases(incident.id, active_only=True)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="incident.resolve",
                             after={"incident": incident.ref, "groups": groups,
                                    "still_open": [c.ref for c in waiting]})
    return Posted(incident, groups, waiting=tuple(waiting))


async def link(app: AppContext, actor: Actor, incident_id: int, case_id: int) -> Case:
    """Staff link a case to an incident (its card says so from now on)."""
    now = app.clock()
    async with app.db.transaction() as s:
        incident = await _load(s, incident_id)
        _require_open(incident)
        case = await Cases(s).get(case_id, for_update=True)
        if case is None:
            raise Refusal("case.not_found")
        if await Incidents(s).is_linked(incident.id, case.id):
            raise Refusal("incident.already_linked", ref=incident.ref, case=case.ref)
        await Incidents(s).link(incident.id, case.id, actor.user_id, now)
        await _card_changed(s, case, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="incident.link", account_key=case.account_key,
                             case_id=case.id, after={"incident": incident.ref})
    return case


async def unlink(app: AppContext, actor: Actor, incident_id: int, case_id: int) -> Case:
    now = app.clock()
    async with app.db.transaction() as s:
        incident = await _load(s, incident_id)
        case = await Cases(s).get(case_id, for_update=True)
        if case is None:
            raise Refusal("case.not_found")
        if not await Incidents(s).unlink(incident.id, case.id):
            raise Refusal("incident.not_linked", ref=incident.ref, case=case.ref)
        await _card_changed(s, case, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="incident.unlink", account_key=case.account_key,
                             case_id=case.id, before={"incident": incident.ref})
    return case


async def _card_changed(s: AsyncSession, case: Case, now: datetime) -> None:
    updated = await Cases(s).update(case.id, CaseChange())  # a new card version
    await outbox.sync_card(s, now, updated.id, updated.version)


async def recent(app: AppContext) -> list[IncidentSummary]:
    """Open incidents and the latest resolved ones, newest first, with their figures."""
    async with app.db.transaction() as s:
        return await Incidents(s).summaries(await Incidents(s).recent(LIST_LIMIT))


async def linked_cases(app: AppContext, incident_id: int) -> tuple[Incident, list[LinkedCase]]:
    async with app.db.transaction() as s:
        incident = await _load(s, incident_id)
        return incident, await Incidents(s).cases(incident.id)


# --- customers -----------------------------------------------------------------------------

async def for_group(app: AppContext, channel_id: str
                    ) -> tuple[Account, list[tuple[Incident, list[LinkedCase]]]]:
    """What affects the account bound to this group: open incidents affecting it or that
    reached it, and those resolved lately that reached it, each with this account's own
    linked cases (never another account's)."""
    now = app.clock()
    async with app.db.transaction() as s:
        account = await bound_account(s, app, channel_id)
        profile = AccountProfile(account, await Tags(s).of(account.key))
        reached = await Incidents(s).reached(account.key)
        today = now.astimezone(app.tz(account)).date()
        out: list[tuple[Incident, list[LinkedCase]]] = []
        for incident in await Incidents(s).recent(LIST_LIMIT, since=now - CUSTOMER_RECENT):
            if incident.id in reached or (
                    incident.is_open and affects(app.catalog, profile, incident.scope, today)):
                out.append((incident, await Incidents(s).cases(incident.id,
                                                               account_key=account.key)))
    return account, out


# --- the broadcast: what each group reads -----------------------------------------------

class _Store:
    def __init__(self, s: AsyncSession) -> None:
        self.posts = IncidentPosts(s)

    async def head(self, post_id: int) -> broadcast.Head | None:
        p = await self.posts.get(post_id)
        return broadcast.Head(incident_ref(p.incident_id), p.team_id, p.created_by, p.total,
                              p.progress_channel, p.progress_ts, p.kind.value) if p else None

    async def delivery(self, post_id: int, channel_id: str) -> IncidentDelivery | None:
        return await self.posts.delivery(post_id, channel_id)

    async def failed(self, post_id: int, limit: int) -> list[broadcast.DeliveryRecord]:
        return list(await self.posts.deliveries(post_id, DeliveryStatus.FAILED, limit))

    async def counts(self, post_id: int) -> dict[str, int]:
        return await self.posts.counts(post_id)

    async def settle(self, post_id: int, channel_id: str, status: DeliveryStatus,
                     at: datetime, ts: str | None = None, error: str | None = None
                     ) -> str | None:
        return await self.posts.settle(post_id, channel_id, status, at, ts=ts, error=error)

    async def set_progress(self, post_id: int, channel: str, ts: str) -> None:
        await self.posts.set_progress(post_id, channel, ts)


class IncidentBroadcast(broadcast.Broadcast):
    prefix, id_field, post_kind, progress_kind = "inc", "post_id", POST, PROGRESS

    def store(self, s: AsyncSession) -> _Store:
        return _Store(s)

    async def message(self, s: AsyncSession, post_id: int,
                      delivery: broadcast.DeliveryRecord) -> Message | None:
        post = await IncidentPosts(s).get(post_id)
        incident = await Incidents(s).get(post.incident_id) if post else None
        account = await Accounts(s).get(delivery.account_key)
        if post is None or incident is None or account is None:
            return None
        t = Translator(account.lang)
        scope = incident.scope
        where = scope.region + (f" ({t.join(sorted(scope.products))})" if scope.products
                                else "")
        lines = [t(f"incident.post_{post.kind.value}", ref=incident.ref, title=incident.title,
                   where=where)]
        if post.body:
            lines.append(post.body)
        if post.kind is PostKind.RESOLVED:
            # only this group's own cases: a group never reads another tenant's references
            mine = await Incidents(s).cases(incident.id, active_only=True,
                                            account_key=delivery.account_key,
                                            channel_id=delivery.channel_id)
            if mine:
                lines.append(t("incident.post_still_open", refs=t.join(c.ref for c in mine)))
        lines.append(t(f"incident.post_footer_{post.kind.value}"))
        return Message("\n".join(lines))

    def progress_text(self, t: Translator, head: broadcast.Head, counts: dict[str, int],
                      done: bool, failed: list[broadcast.DeliveryRecord]) -> str:
        lines = [t("incident.progress_done" if done else "incident.progress", ref=head.ref,
                   what=t(f"incident.kind.{head.kind}"), sent=counts[DeliveryStatus.SENT],
                   total=head.total, failed=counts[DeliveryStatus.FAILED])]
        lines += [t("advisory.failed_group", account=f.account_key, channel=f.channel_id,
                    error=f.error or "") for f in failed]
        return "\n".join(lines)


BROADCAST = IncidentBroadcast()
