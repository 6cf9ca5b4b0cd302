"""Use cases for proactive-care advisories: tags, preview, broadcast, acknowledgement."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.advisories import (
    REMINDED,
    Advisory,
    AdvisorySummary,
    Delivery,
    NewAdvisory,
    Targeting,
    proactive_care,
    reaches,
)
from bot.domain.model import Account, DeliveryStatus, Lang, advisory_ref
from bot.i18n import Translator
from bot.messages import Button, Message
from bot.services import broadcast, home, outbox
from bot.services.base import Actor, AppContext, Denied, Refusal, require_manager
from bot.services.job import JobContext
from storage import jobs
from storage.repos import Accounts, Advisories, Audit, Bindings, Staff, Tags

POST, PROGRESS, REMIND = "advisory.post", "advisory.progress", "advisory.remind"


@dataclass(frozen=True)
class AdvisorySpec:
    title: str
    kind: str
    severity: str
    body: str
    targeting: Targeting


async def set_tags(app: AppContext, actor: Actor, key: str,
                   tags: dict[str, list[str]]) -> dict[str, list[str]]:
    """Replace the given tag kinds of an account (kinds not named stay as they are)."""
    now = app.clock()
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key.lower())
        if account is None:
            raise Refusal("account.unknown", key=key)
        require_manager(actor, account, "account.tags")
        before = await Tags(s).of(account.key)
        for kind, values in tags.items():
            await Tags(s).replace(account.key, kind, set(values))
        after = await Tags(s).of(account.key)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="account.tags", account_key=account.key,
                             before={k: sorted(v) for k, v in before.items()},
                             after={k: sorted(v) for k, v in after.items()})
    return {k: sorted(v) for k, v in after.items()}


async def get_tags(app: AppContext, key: str) -> dict[str, list[str]]:
    async with app.db.transaction() as s:
        if await Accounts(s).get(key.lower()) is None:
            raise Refusal("account.unknown", key=key)
        return {k: sorted(v) for k, v in (await Tags(s).of(key.lower())).items()}


async def _targets(s: AsyncSession, app: AppContext, targeting: Targeting,
                   now: datetime) -> list[tuple[Account, str]]:
    """(account, channel) for every group the advisory reaches."""
    audience = await Tags(s).audience()  # every account, its tags and groups: one query
    unknown = sorted(targeting.accounts - {a.profile.account.key for a in audience})
    if unknown:
        raise Refusal("account.unknown", key=unknown[0])
    for a in sorted(audience, key=lambda a: a.profile.account.key):
        account = a.profile.account
        if account.key in targeting.accounts and not proactive_care(app.catalog, account):
            # naming an account does not widen the entitlement: say the rule, send nothing
            raise Refusal("advisory.not_enterprise", key=account.key, tier=account.tier.value)
    found: list[tuple[Account, str]] = []
    for a in audience:
        account = a.profile.account
        if reaches(app.catalog, a.profile, targeting, now.astimezone(app.tz(account)).date()):
            found += [(account, ch) for ch in a.channels]
    return found


async def preview(app: AppContext, spec: AdvisorySpec) -> tuple[int, int]:
    """How many groups (and accounts) a broadcast would reach."""
    async with app.db.transaction() as s:
        targets = await _targets(s, app, spec.targeting, app.clock())
    return len(targets), len({a.key for a, _ in targets})


async def send(app: AppContext, actor: Actor, spec: AdvisorySpec) -> tuple[str, int]:
    """Queue the broadcast: one paced, idempotent outbox job per group, progress to the TAM,
    and a one-time reminder for high-severity ones that go unacknowledged."""
    now = app.clock()
    # the same advisory confirmed again within ten minutes (a double click, a retried
    # button) is the same broadcast: the unique key makes the second one fail
    dedupe = hashlib.sha256(json.dumps(
        [actor.team_id, spec.title, spec.kind, spec.severity, spec.body,
         spec.targeting.to_dict(), int(now.timestamp()) // 600]).encode()).hexdigest()
    try:
        return await _send(app, actor, spec, now, dedupe)
    except IntegrityError:
        async with app.db.transaction() as s:
            first = await Advisories(s).by_dedupe_key(dedupe)
        raise Refusal("advisory.duplicate",
                      ref=advisory_ref(first.id) if first else "?") from None


async def _send(app: AppContext, actor: Actor, spec: AdvisorySpec, now: datetime,
                dedupe: str) -> tuple[str, int]:
    async with app.db.transaction() as s:
        targets = await _targets(s, app, spec.targeting, now)
        if not targets:
            raise Refusal("advisory.no_targets")
        row = await Advisories(s).add(
            NewAdvisory(team_id=actor.team_id, title=spec.title, kind=spec.kind,
                        severity=spec.severity, body=spec.body, targeting=spec.targeting,
                        created_by=actor.user_id, created_at=now, total=len(targets),
                        dedupe_key=dedupe),
            [(account.key, channel) for account, channel in targets])
        ref = advisory_ref(row.id)
        await BROADCAST.queue(s, row.id, [channel for _, channel in targets], now)
        if spec.severity in REMINDED:
            due = now + timedelta(hours=app.settings.advisory_ack_hours)
            for key in sorted({a.key for a, _ in targets}):
                await jobs.enqueue(s, REMIND, due, {"advisory_id": row.id, "account": key},
                                   f"adv:{row.id}:{key}:remind", now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="advisory.send",
                             after={"advisory": ref, "groups": len(targets),
                                    "severity": spec.severity, "kind": spec.kind,
                                    **spec.targeting.to_dict()})
    return ref, len(targets)


def advisory_text(t: Translator, a: Advisory) -> str:
    targeting = a.targeting
    lines = [t("advisory.header", ref=advisory_ref(a.id), kind=t(f"advisory.kind.{a.kind}"),
               severity=t(f"advisory.severity.{a.severity}"), title=a.title), a.body]
    scope = [t.join(sorted(v)) for v in (targeting.regions, targeting.products,
                                         targeting.software) if v]
    if scope:
        lines.append(t("advisory.affects", what=t("list.sep_major").join(scope)))
    lines.append(t("advisory.footer"))
    return "\n".join(lines)


class _Store:
    """The advisory tables as a broadcast store."""

    def __init__(self, s: AsyncSession) -> None:
        self.repo = Advisories(s)

    async def head(self, advisory_id: int) -> broadcast.Head | None:
        a = await self.repo.get(advisory_id)
        return broadcast.Head(advisory_ref(a.id), a.team_id, a.created_by, a.total,
                              a.progress_channel, a.progress_ts) if a else None

    async def delivery(self, advisory_id: int, channel_id: str) -> Delivery | None:
        return await self.repo.delivery(advisory_id, channel_id)

    async def failed(self, advisory_id: int, limit: int) -> list[broadcast.DeliveryRecord]:
        return list(await self.repo.deliveries(advisory_id, status=DeliveryStatus.FAILED,
                                               limit=limit))

    async def counts(self, advisory_id: int) -> dict[str, int]:
        return await self.repo.counts(advisory_id)

    async def settle(self, advisory_id: int, channel_id: str, status: DeliveryStatus,
                     at: datetime, ts: str | None = None, error: str | None = None
                     ) -> str | None:
        return await self.repo.settle(advisory_id, channel_id, status, at, ts=ts, error=error)

    async def set_progress(self, advisory_id: int, channel: str, ts: str) -> None:
        await self.repo.set_progress(advisory_id, channel, ts)


class AdvisoryBroadcast(broadcast.Broadcast):
    """An advisory to its groups, with the Acknowledged button; the App Home shows them."""

    prefix, id_field, post_kind, progress_kind = "adv", "advisory_id", POST, PROGRESS
    touch_home = True

    def store(self, s: AsyncSession) -> _Store:
        return _Store(s)

    async def message(self, s: AsyncSession, advisory_id: int,
                      delivery: broadcast.DeliveryRecord) -> Message | None:
        advisory = await Advisories(s).get(advisory_id)
        account = await Accounts(s).get(delivery.account_key)
        if advisory is None or account is None:
            return None
        t = Translator(account.lang)
        return Message.of(advisory_text(t, advisory),
                          [Button(t("advisory.button_ack"),
                                  f"/support acknowledge {advisory_ref(advisory_id)}",
                                  "primary")])

    def progress_text(self, t: Translator, head: broadcast.Head, counts: dict[str, int],
                      done: bool, failed: list[broadcast.DeliveryRecord]) -> str:
        lines = [t("advisory.progress_done" if done else "advisory.progress",
                   ref=head.ref, sent=counts[DeliveryStatus.SENT], total=head.total,
                   failed=counts[DeliveryStatus.FAILED])]
        lines += [t("advisory.failed_group", account=f.account_key, channel=f.channel_id,
                    error=f.error or "") for f in failed]
        return "\n".join(lines)


BROADCAST = AdvisoryBroadcast()
run_post = BROADCAST.run_post
run_progress = BROADCAST.run_progress
PROGRESS_EVERY = broadcast.PROGRESS_EVERY


async def run_remind(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    """Remind the account's TAM, once, of a high-severity advisory still unacknowledged."""
    app = ctx.app
    advisory_id, key = int(job.payload["advisory_id"]), str(job.payload["account"])
    now = app.clock()
    async with app.db.transaction() as s:
        acked = await Advisories(s).acknowledged(advisory_id, key)
        account = await Accounts(s).get(key)
        advisory = await Advisories(s).get(advisory_id)
        if acked or account is None or advisory is None or not account.tam_user_id:
            return {"outcome": "not needed"}
        member = await Staff(s).get(advisory.team_id, account.tam_user_id)
        t = Translator(member.lang if member else Lang.EN)
        await outbox.post(s, now, user=account.tam_user_id,
                          key=f"adv:{advisory_id}:{key}:reminder",
                          text=t("advisory.reminder", ref=advisory_ref(advisory_id),
                                 title=advisory.title, account=account.name, key=key,
                                 n=app.settings.advisory_ack_hours))
    return {"outcome": "reminded"}


async def acknowledge(app: AppContext, actor: Actor, channel_id: str, advisory_id: int) -> str:
    """A customer acknowledges an advisory for their account (the first one counts)."""
    if actor.is_staff:
        # the point is to know the customer's team read it; staff cannot stand in for them
        raise Refusal("advisory.staff_ack")
    now = app.clock()
    async with app.db.transaction() as s:
        key = await Bindings(s).bound_account_key(channel_id)
        rows = await Advisories(s).deliveries(advisory_id, account_key=key) if key else []
        if not rows or key is None:
            exists = await Advisories(s).get(advisory_id)
            if exists is not None and key is not None:
                raise Denied("advisory.not_found", action="advisory.ack", account_key=key,
                             reason=f"{advisory_ref(advisory_id)} was not sent to this account")
            raise Refusal("advisory.not_found")
        ref = advisory_ref(advisory_id)
        if any(r.acked_at for r in rows):
            first = next(r for r in rows if r.acked_at)
            raise Refusal("advisory.already_acked", ref=ref, user=first.acked_by)
        await Advisories(s).acknowledge(advisory_id, key, actor.user_id, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="advisory.ack", account_key=key,
                             after={"advisory": ref})
        await home.touch(s, key, now)
    return ref


@dataclass(frozen=True)
class AdvisoryStatus:
    ref: str
    title: str
    severity: str
    total: int
    counts: dict[str, int]  # keyed by DeliveryStatus
    acked: list[tuple[str, str, datetime]]  # account, user, when
    waiting: list[str]  # accounts with a group sent (or still to send) to, not acknowledged
    failed: list[tuple[str, str, str]]  # account, channel, error: groups it could not reach


async def status(app: AppContext, advisory_id: int) -> AdvisoryStatus:
    async with app.db.transaction() as s:
        advisory = await Advisories(s).get(advisory_id)
        if advisory is None:
            raise Refusal("advisory.unknown", ref=advisory_ref(advisory_id))
        rows = await Advisories(s).deliveries(advisory_id)
        counts = await Advisories(s).counts(advisory_id)
    acked: dict[str, tuple[str, str, datetime]] = {}
    reachable: set[str] = set()  # accounts with a group the advisory reached or may reach
    for r in rows:
        if r.status != DeliveryStatus.FAILED:
            reachable.add(r.account_key)
        if r.acked_at and r.acked_by:
            acked[r.account_key] = (r.account_key, r.acked_by, r.acked_at)
    # an account none of whose groups could be reached is not "waiting for an ack": it never
    # got the advisory, and shows under the failed groups instead
    return AdvisoryStatus(
        advisory_ref(advisory_id), advisory.title, advisory.severity, advisory.total, counts,
        sorted(acked.values()), sorted(reachable - set(acked)),
        sorted((r.account_key, r.channel_id, r.error or "") for r in rows
               if r.status == DeliveryStatus.FAILED))


async def recent(app: AppContext, limit: int = 10) -> list[AdvisorySummary]:
    """Latest advisories with delivery counts and how many accounts acknowledged."""
    async with app.db.transaction() as s:
        return await Advisories(s).recent(limit)
