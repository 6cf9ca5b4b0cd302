"""Use cases for support cases and their SLA clocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.domain.model import (
    Account,
    Case,
    CaseChange,
    CaseStatus,
    Lang,
    NewCase,
    Role,
    Severity,
)
from bot.domain.sla import SlaTerms, sla_terms
from bot.i18n import Translator, time_token
from bot.services import digests, home, incident_links, outbox
from bot.services.accounts import bound_account, usable_account
from bot.services.base import Actor, AppContext, Denied, Refusal
from bot.services.job import JobContext
from storage import jobs
from storage.repos import Accounts, Audit, Cases, Inbox, Incidents, PerkLedger, Staff

SLA_WARN = "sla.warn"
SLA_BREACH = "sla.breach"
NEW_CASE_NOTICE = "case.new_notice"  # the staff's notice of a new case, joining their digests
MAX_SUMMARY = 300
MAX_DESCRIPTION = 3000


@dataclass
class Opened:
    case: Case
    account: Account
    notices: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _timer_keys(case_id: int, generation: int) -> list[str]:
    return [f"sla:{case_id}:g{generation}:warn", f"sla:{case_id}:g{generation}:breach"]


async def _schedule_timers(s: AsyncSession, case: Case, warn_at: datetime,
                           now: datetime) -> None:
    """Durable near-breach and breach timers for the case's current SLA generation."""
    warn_key, breach_key = _timer_keys(case.id, case.sla_generation)
    payload = {"case_id": case.id, "generation": case.sla_generation}
    if warn_at > now:
        await jobs.enqueue(s, SLA_WARN, warn_at, payload, warn_key, now)
    await jobs.enqueue(s, SLA_BREACH, case.due_at, payload, breach_key, now)


async def escort_windows(s: AsyncSession, account_key: str) -> list[tuple[datetime, datetime]]:
    """Approved escort windows of the account, from the perk ledger."""
    return await PerkLedger(s).escort_windows(account_key)


def _terms_for(app: AppContext, account: Account, severity: Severity, opened_at: datetime,
               windows: list[tuple[datetime, datetime]]) -> SlaTerms:
    return sla_terms(app.catalog, account.tier, severity, opened_at, app.calendar(account),
                     app.tz(account), windows)




async def check_intake(app: AppContext, channel_id: str) -> Account:
    """Refuse early (before a form opens) when this channel cannot take a case."""
    async with app.db.transaction() as s:
        return await bound_account(s, app, channel_id)


async def open_case(app: AppContext, actor: Actor, channel_id: str, severity: Severity,
                    summary: str, description: str = "", region: str | None = None,
                    software: str | None = None, *, bound: Account | None = None) -> Opened:
    """Open a case in a customer group. `bound` is the channel's account when the caller
    read it in this transaction already (the router did): it is not read again."""
    summary = " ".join(summary.split())
    if not summary:
        raise Refusal("case.summary_required")
    if len(summary) > MAX_SUMMARY:
        raise Refusal("case.summary_too_long", max=MAX_SUMMARY, n=len(summary))
    if len(description) > MAX_DESCRIPTION:
        raise Refusal("case.description_too_long", max=MAX_DESCRIPTION, n=len(description))
    now = app.clock()
    # no savepoint: everything up to the writes below only reads (a refusal there leaves
    # nothing to undo), and nothing after them refuses
    async with app.db.transaction(savepoint=False) as s:
        account = usable_account(app, bound) if bound is not None else \
            await bound_account(s, app, channel_id)
        region = (region or "").strip().lower() or None
        if region is not None and region not in app.catalog.regions:
            raise Refusal("account.bad_region", region=region,
                          choices=", ".join(sorted(app.catalog.regions)))
        # a case is for the region named, else for the account's own: the service-area
        # notice applies to either (seed §3: Paris and Atlanta are outside it); an incident
        # link looks at the region named only
        named, region = region, region or account.region
        # escort windows only change targets of the severities they cover (as filed)
        filed, _ = app.catalog.plan(account.tier).target_for(severity)
        windows = await escort_windows(s, account.key) \
            if filed in app.catalog.escort_severities else []
        terms = _terms_for(app, account, severity, now, windows)
        # every check is behind us: what follows only writes, in the caller's transaction
        # (no savepoint to take and release), its jobs in one statement
        async with app.db.transaction(savepoint=False) as w, jobs.batched(w):
            return await _write_case(w, app, actor, account, channel_id, severity, terms,
                                     summary, description, region, named, software, now)
    raise AssertionError("unreachable")


async def _write_case(s: AsyncSession, app: AppContext, actor: Actor, account: Account,
                      channel_id: str, severity: Severity, terms: SlaTerms, summary: str,
                      description: str, region: str, named: str | None,
                      software: str | None, now: datetime) -> Opened:
    case = await Cases(s).add(NewCase(
        account_key=account.key, team_id=actor.team_id, channel_id=channel_id,
        opener_user_id=actor.user_id, severity=terms.severity,
        requested_severity=severity, summary=summary, description=description,
        region=region, software=(software or None), opened_at=now, due_at=terms.due_at,
        warn_at=terms.warn_at, target_label=terms.target.label, escort=terms.escort))
    await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                         action="case.open", account_key=account.key, case_id=case.id,
                         after={"severity": case.severity.value,
                                "requested": severity.value, "due_at": str(case.due_at),
                                "target": case.target_label, "escort": case.escort})
    await _schedule_timers(s, case, terms.warn_at, now)
    await outbox.sync_card(s, now, case.id, case.version)
    await home.touch(s, account.key, now)
    excluded = region in app.catalog.service_exclusions
    # the TAM's and the duty channel's notice joins their digests in the worker: a regional
    # outage's hundreds of new cases are one message each, and the command does less
    await jobs.enqueue(s, NEW_CASE_NOTICE, now, {"case_id": case.id}, f"case:{case.id}:new",
                       now)
    opened = Opened(case=case, account=account)
    opened.notices += await incident_links.link_new_case(s, app, account, case, now, named)
    if terms.refiled:
        opened.notices.append(("case.refiled", {"requested": severity.value,
                                                "filed": terms.severity.value,
                                                "tier": account.tier.value}))
    if excluded:
        opened.notices.append(("case.region_excluded", {"region": region}))
    t = Translator(account.lang)
    for msg_id, params in opened.notices:
        await outbox.post(s, now, channel=channel_id, thread_case_id=case.id,
                          text=t(msg_id, **params), key=f"case:{case.id}:{msg_id}")
    return opened


async def _notify_digest(s: AsyncSession, app: AppContext, account: Account, case: Case,
                         kind: str, now: datetime) -> None:
    """A new-case, near-breach or breach notice for the account's TAM (by DM) and the duty
    channel, never the customer group, joining each recipient's digest of the moment
    (`bot.services.digests`)."""
    recipients: list[tuple[str, Lang]] = []
    if app.settings.duty_channel:
        recipients.append((digests.for_channel(app.settings.duty_channel), Lang.EN))
    if account.tam_user_id:
        member = await Staff(s).get(account.team_id or case.team_id, account.tam_user_id)
        recipients.append((digests.for_user(account.tam_user_id),
                           member.lang if member else Lang.EN))
    # grouped under the case's incident in the digest (the first, if linked to several)
    linked = await Incidents(s).of_case(case.id)
    item = digests.DigestItem(
        notice_key=f"case:{case.id}:g{case.sla_generation}:{kind}", case_id=case.id, kind=kind,
        due_at=case.due_at, fired_at=now,
        params={"ref": case.ref, "account": account.name, "key": account.key,
                "sev": case.severity.value, "summary": case.summary,
                # a new case outside the service area says so (seed §3)
                **({"region": case.region, "region_excluded": True}
                   if kind == digests.NEW and case.region in app.catalog.service_exclusions
                   else {})},
        incident=linked[0].ref if linked else None)
    await digests.notify(s, app, now, recipients, item)


async def _load(s: AsyncSession, case_id: int, scope_account: str | None) -> Case:
    """Load a case; a customer's scope makes another account's case indistinguishable from
    a missing one, so references leak nothing across tenants."""
    case = await Cases(s).get(case_id, for_update=True)
    if case is None:
        raise Refusal("case.not_found")
    if scope_account is not None and case.account_key != scope_account:
        raise Denied("case.not_found", action="case", account_key=scope_account,
                     reason=f"{case.ref} belongs to another account")
    return case


async def first_response(app: AppContext, actor: Actor, case_id: int, via: str,
                         event_id: str | None = None) -> Case | None:
    """Record the first response by staff; None when it was already recorded (or when the
    inbound event `event_id` was processed before: the inbox row commits with the work)."""
    if not actor.is_staff:
        raise Refusal("case.ack_staff_only")
    now = app.clock()
    async with app.db.transaction() as s:
        if event_id is not None and not await Inbox(s).first_time(event_id, now):
            metrics.DUPLICATE_EVENTS.inc()
            return None
        case = await _load(s, case_id, None)
        if not case.awaiting_first_response:
            return None
        updated = await Cases(s).update(case.id, CaseChange(
            status=CaseStatus.ACKNOWLEDGED, first_response_at=now,
            first_response_by=actor.user_id, sla_generation=case.sla_generation + 1))
        await jobs.cancel(s, _timer_keys(case.id, case.sla_generation))
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="case.first_response", account_key=case.account_key,
                             case_id=case.id, before={"status": case.status.value},
                             after={"status": updated.status.value, "via": via,
                                    "within_target": now <= case.due_at})
        await outbox.sync_card(s, now, updated.id, updated.version)
        await home.touch(s, case.account_key, now)
    return updated


async def regrade(app: AppContext, actor: Actor, case_id: int, severity: Severity) -> Case:
    """Staff re-grade: the target is recomputed from the opening time; audit keeps both."""
    now = app.clock()
    async with app.db.transaction() as s:
        case = await _load(s, case_id, None)
        if not case.status.is_active:
            raise Refusal("case.not_active", ref=case.ref, status=case.status)
        account = await Accounts(s).get(case.account_key)
        assert account is not None
        windows = await escort_windows(s, account.key)
        terms = _terms_for(app, account, severity, case.opened_at, windows)
        if terms.severity is case.severity:
            raise Refusal("case.same_severity", ref=case.ref, sev=case.severity.value)
        gen = case.sla_generation + 1
        awaiting = case.awaiting_first_response
        updated = await Cases(s).update(case.id, CaseChange(
            severity=terms.severity, due_at=terms.due_at, warn_at=terms.warn_at,
            target_label=terms.target.label, escort=terms.escort, sla_generation=gen,
            warned=False, breached=False if awaiting else case.breached))
        await jobs.cancel(s, _timer_keys(case.id, case.sla_generation))
        if awaiting:
            await _schedule_timers(s, updated, terms.warn_at, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="case.regrade", account_key=case.account_key,
                             case_id=case.id,
                             before={"severity": case.severity.value,
                                     "due_at": str(case.due_at), "target": case.target_label},
                             after={"severity": updated.severity.value,
                                    "due_at": str(updated.due_at),
                                    "target": updated.target_label})
        await outbox.sync_card(s, now, updated.id, updated.version)
        await home.touch(s, case.account_key, now)
        t = Translator(account.lang)
        msg = "case.regraded_notice" if awaiting else "case.regraded_answered_notice"
        await outbox.post(s, now, channel=case.channel_id, thread_case_id=case.id,
                          key=f"case:{case.id}:regrade:g{gen}",
                          text=t(msg, ref=case.ref, old=case.severity.value,
                                 new=updated.severity.value, due=time_token(updated.due_at)))
    return updated


async def finish(app: AppContext, actor: Actor, case_id: int, *, scope_account: str | None,
                 status: CaseStatus) -> Case:
    """Resolve (staff) or close (the customer) a case; pending timers are cancelled."""
    now = app.clock()
    async with app.db.transaction() as s:
        case = await _load(s, case_id, scope_account)
        if not case.status.is_active:
            raise Refusal("case.not_active", ref=case.ref, status=case.status)
        updated = await Cases(s).update(case.id, CaseChange(
            status=status, resolved_at=now, sla_generation=case.sla_generation + 1))
        await jobs.cancel(s, _timer_keys(case.id, case.sla_generation))
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action=f"case.{status.value}", account_key=case.account_key,
                             case_id=case.id, before={"status": case.status.value},
                             after={"status": status.value})
        await outbox.sync_card(s, now, updated.id, updated.version)
        await home.touch(s, case.account_key, now)
        account = await Accounts(s).get(case.account_key)
        assert account is not None
        t = Translator(account.lang)
        await outbox.post(s, now, channel=case.channel_id, thread_case_id=case.id,
                          key=f"case:{case.id}:{status.value}",
                          text=t(f"case.{status.value}_notice", ref=case.ref,
                                 user=actor.user_id))
    return updated


async def get_case(app: AppContext, case_id: int, scope_account: str | None) -> Case:
    async with app.db.transaction() as s:
        return await _load(s, case_id, scope_account)


async def channel_cases(app: AppContext, channel_id: str) -> tuple[Account, list[Case]]:
    """Active cases of the account bound to this channel."""
    async with app.db.transaction() as s:
        account = await bound_account(s, app, channel_id)
        return account, await Cases(s).active(account_keys=[account.key])


async def staff_cases(app: AppContext, actor: Actor) -> list[tuple[Account, Case]]:
    """Active cases across the actor's accounts (TAM) or all accounts (admin, engineer)."""
    async with app.db.transaction() as s:
        tam_only = actor.role is Role.TAM
        accounts = await Accounts(s).list(tam_user_id=actor.user_id if tam_only else None)
        by_key = {a.key: a for a in accounts}
        cases = await Cases(s).active(account_keys=list(by_key))
    return [(by_key[c.account_key], c) for c in cases]


async def case_by_card(app: AppContext, channel_id: str, ts: str) -> Case | None:
    async with app.db.transaction() as s:
        return await Cases(s).by_card(channel_id, ts)


async def fire_timer(s: AsyncSession, app: AppContext, kind: str, payload: dict[str, Any],
                     now: datetime) -> str:
    """Run one SLA timer inside the caller's transaction (which also completes the job).
    A stale generation or an answered case makes it a no-op."""
    case = await Cases(s).get(int(payload["case_id"]), for_update=True)
    if case is None or case.sla_generation != payload.get("generation") or \
            not case.awaiting_first_response:
        return "stale"
    account = await Accounts(s).get(case.account_key)
    assert account is not None
    if kind == SLA_WARN:
        if case.warned:
            return "duplicate"
        await Cases(s).update(case.id, CaseChange(warned=True), bump=False)
        if now >= case.due_at:
            # fired late (the bot was down through the deadline): the breach notice says
            # what is true; a warning now would claim time left on an overdue case
            return "superseded"
        await _notify_digest(s, app, account, case, digests.WARN, now)
        await Audit(s).write(at=now, actor="bot", action="case.near_breach",
                             account_key=account.key, case_id=case.id)
        return "warned"
    if case.breached:
        return "duplicate"
    updated = await Cases(s).update(case.id, CaseChange(breached=True))
    await _notify_digest(s, app, account, case, digests.BREACH, now)
    await Audit(s).write(at=now, actor="bot", action="case.breach",
                         account_key=account.key, case_id=case.id,
                         after={"late_seconds": (now - case.due_at).total_seconds()})
    await outbox.sync_card(s, now, updated.id, updated.version)
    await home.touch(s, account.key, now)
    return "breached"


async def lock_timers(s: AsyncSession, batch: list[jobs.Job]) -> None:
    """Timers firing together lock all their cases before any effect. A command that
    acknowledges one of the cases locks its case and then queues the account's Home
    refresh; a batch that queued that refresh for an earlier case and then waited for this
    case's lock would deadlock with it on PostgreSQL."""
    case_ids = sorted({int(j.payload["case_id"]) for j in batch})
    await Cases(s).lock(case_ids)
    await digests.lock_for(s, case_ids)  # then their TAMs' digests, in one order too


async def run_new_case_notice(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    """The new-case notice of a case (`NEW_CASE_NOTICE`, atomic: it joins the digests in
    the transaction that completes the job, so each recipient gets it once)."""
    s = ctx.tx
    case = await Cases(s).get(int(job.payload["case_id"]))
    if case is None:
        return {"outcome": "gone"}
    account = await Accounts(s).get(case.account_key)
    assert account is not None
    await _notify_digest(s, ctx.app, account, case, digests.NEW, ctx.started)
    return {"outcome": "noted"}


async def run_timer(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    """An SLA timer job (atomic: `ctx.tx` also completes the job), fired as of when the
    worker took it up."""
    return {"outcome": await fire_timer(ctx.tx, ctx.app, job.kind, job.payload, ctx.started)}
