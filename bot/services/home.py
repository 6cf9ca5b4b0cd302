"""The App Home dashboards as neutral data: what each user sees, and when to refresh it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import Account, Case, Lang, RequestStatus, Role, advisory_ref, request_ref
from bot.domain.perks import PerkBalance
from bot.domain.sla import ClockState, clock_state
from bot.i18n import Translator
from bot.messages import Button, Message, Section, bold, mark
from bot.services.base import AppContext, resolve_actor
from bot.services.job import JobContext
from bot.services.quota import perk_balances
from storage import jobs
from storage.repos import Accounts, Advisories, Cases, PerkLedger, Viewers

REFRESH = "home.refresh"
MAX_ROWS = 15  # per list: Slack allows 100 blocks on a Home tab


@dataclass(frozen=True)
class CaseLine:
    account_key: str
    case: Case
    state: ClockState


@dataclass(frozen=True)
class PendingRequest:
    ref: str
    account_key: str
    perk: str
    start: str
    amount: int


@dataclass(frozen=True)
class AdvisoryLine:
    ref: str
    title: str
    severity: str
    waiting: int  # accounts that have not acknowledged


@dataclass
class StaffHome:
    user_id: str
    lang: Lang
    now: datetime
    accounts: list[Account] = field(default_factory=list)
    cases: list[CaseLine] = field(default_factory=list)
    pending: list[PendingRequest] = field(default_factory=list)
    advisories: list[AdvisoryLine] = field(default_factory=list)

    @property
    def breaches(self) -> list[CaseLine]:
        return [c for c in self.cases if c.state is ClockState.BREACHED]


@dataclass
class CustomerAccount:
    account: Account
    cases: list[CaseLine]
    perks: list[PerkBalance]


@dataclass
class CustomerHome:
    user_id: str
    lang: Lang
    now: datetime
    accounts: list[CustomerAccount] = field(default_factory=list)


async def note_customer(app: AppContext, team_id: str, user_id: str, account_key: str,
                        channel_id: str) -> None:
    """Remember which account's group a customer uses (their Home shows that account)."""
    now = app.clock()
    noted = app.noted_customers
    memo = (team_id, user_id, account_key, channel_id)
    seen = noted.get(memo)
    if seen is not None and now - seen < timedelta(minutes=10):
        return  # noted a moment ago: spare the write on every command
    if len(noted) > 10_000:
        noted.clear()
    # one upsert, which cannot fail on a concurrent first use: no savepoint needed
    async with app.db.transaction(savepoint=False) as s:
        await Viewers(s).saw_account(team_id, user_id, account_key, channel_id, now)
    noted[memo] = now  # after the commit: a failed write is tried again next time


async def opened(app: AppContext, team_id: str, user_id: str) -> StaffHome | CustomerHome:
    """A user opened the Home tab: remember them (for refreshes) and build their view."""
    now = app.clock()
    try:
        async with app.db.transaction() as s:
            await Viewers(s).opened(team_id, user_id, now)
    except IntegrityError:
        pass  # opened twice at once (two devices, two replicas): one row is enough
    return await build(app, team_id, user_id)


async def build(app: AppContext, team_id: str, user_id: str) -> StaffHome | CustomerHome:
    actor = await resolve_actor(app, team_id, user_id)
    now = app.clock()
    ratio = app.catalog.near_breach_ratio
    async with app.db.read() as s:  # a read: on SQLite no write lock, no queue
        if actor.is_staff:
            home = StaffHome(user_id, actor.lang, now)
            tam_only = actor.role is Role.TAM
            home.accounts = await Accounts(s).list(tam_user_id=user_id if tam_only else None)
            keys = [a.key for a in home.accounts]
            cases = await Cases(s).active(account_keys=keys)  # ordered by due time
            home.cases = [CaseLine(c.account_key, c, clock_state(c, now, ratio))
                          for c in cases if c.awaiting_first_response][:MAX_ROWS]
            requests = await PerkLedger(s).requests(keys, RequestStatus.PENDING, MAX_ROWS)
            home.pending = [PendingRequest(request_ref(r.id), r.account_key, r.perk,
                                           r.start_date.isoformat(), r.amount)
                            for r in requests]
            home.advisories = [
                AdvisoryLine(advisory_ref(a.advisory_id), a.title, a.severity, a.waiting)
                for a in await Advisories(s).unacknowledged(keys, MAX_ROWS)]
            return home
        customer = CustomerHome(user_id, actor.lang, now)
        # only while the group they used still belongs to the account (it may be re-linked)
        keys = await Viewers(s).accounts_of(team_id, user_id)
        for key in keys[:3]:
            account = await Accounts(s).get(key)
            if account is None:
                continue
            cases = await Cases(s).active(account_keys=[key])
            customer.accounts.append(CustomerAccount(
                account, [CaseLine(key, c, clock_state(c, now, ratio))
                          for c in cases][:MAX_ROWS],
                await perk_balances(s, app, account)))
        if customer.accounts:
            customer.lang = customer.accounts[0].account.lang
        return customer


async def touch(s: AsyncSession, account_key: str, now: datetime) -> None:
    """Something an account's dashboards show changed: refresh them (coalesced)."""
    # one refresh per account per 2-second bucket, run when the bucket closes, so a change
    # late in a bucket is not lost to a refresh that already ran earlier in it
    bucket = int(now.timestamp()) // 2
    due = datetime.fromtimestamp((bucket + 1) * 2, UTC)
    await jobs.enqueue(s, REFRESH, due, {"account": account_key},
                       f"home:{account_key}:{bucket}", now)


async def run_refresh(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    """Re-publish the Home of everyone who opened it and sees this account."""
    app, messenger = ctx.app, ctx.messenger
    key = str(job.payload["account"])
    async with app.db.read() as s:  # a read: on SQLite no write lock, no queue
        account = await Accounts(s).get(key)
        viewers = await Viewers(s).all()
        customers = await Viewers(s).customers_of(key)
    if account is None:
        return {"published": 0}
    published = 0
    for team_id, user_id in viewers:
        actor = await resolve_actor(app, team_id, user_id)
        sees = (actor.is_staff and (actor.role is not Role.TAM or
                                    account.tam_user_id == user_id)) or \
            (team_id, user_id) in customers
        if sees:
            await messenger.publish_home(user_id,
                                         home_message(await build(app, team_id, user_id)))
            published += 1
    return {"published": published}


def _case_row(t: Translator, line: CaseLine, now: datetime) -> str:
    c = line.case
    flag = {ClockState.BREACHED: mark("breach") + " ", ClockState.NEAR: mark("warning") + " "
            }.get(line.state, "")
    clock = t.time_left(c.due_at, now) if c.awaiting_first_response else \
        t(f"status.{c.status.value}")
    return f"{flag}{bold(c.ref)} [{c.severity.value}] {c.summary[:80]} — {clock}"


def home_message(home: StaffHome | CustomerHome) -> Message:
    """The dashboard as a neutral message: one titled section per list."""
    t = Translator(home.lang)
    sections: list[Section] = []

    def part(title: str, lines: list[str], empty: str) -> None:
        sections.append(Section("\n".join(lines) if lines else empty, title=title))

    if isinstance(home, StaffHome):
        part(t("home.staff.accounts", n=len(home.accounts)),
             [f"• {bold(a.key)} {a.name} — {t(f'tier.{a.tier}')}" for a in home.accounts[:30]],
             t("home.none"))
        part(t("home.staff.breaches", n=len(home.breaches)),
             [_case_row(t, c, home.now) for c in home.breaches], t("home.none"))
        part(t("home.staff.cases"),
             [f"{c.account_key}: " + _case_row(t, c, home.now) for c in home.cases],
             t("home.none"))
        if not home.pending:
            part(t("home.staff.requests"), [], t("home.none"))
        for i, r in enumerate(home.pending):
            approve = Button(t("perk.button_approve"), f"/tam approve {r.ref}", "primary")
            reject = Button(t("perk.button_reject"), f"/tam reject {r.ref}", "danger",
                            ask=t("perk.reject_reason"))
            sections.append(Section(
                t("home.request_line", ref=r.ref, account=r.account_key,
                  perk=t(f"perk.{r.perk}"),
                  when=t.perk_window(r.perk, date.fromisoformat(r.start), r.amount)),
                title=t("home.staff.requests") if i == 0 else None, buttons=(approve, reject)))
        part(t("home.staff.advisories"),
             [t("home.advisory_line", ref=a.ref, title=a.title[:80],
                severity=t(f"advisory.severity.{a.severity}"), n=a.waiting)
              for a in home.advisories], t("home.none"))
    else:
        if not home.accounts:
            part(t("home.customer.welcome"), [t("home.customer.no_account")], "")
        for acc in home.accounts:
            a = acc.account
            part(t("home.customer.account", name=a.name, tier=t(f"tier.{a.tier}")),
                 [t("plan.header", name=a.name, tier=t(f"tier.{a.tier}"),
                    term=t(f"term.{a.term}"), start=a.start.isoformat(),
                    end=a.last_day.isoformat(), region=a.region)] +
                 [t("plan.perk_line", perk=t(f"perk.{b.perk}"), used=b.used, held=b.held,
                    left=b.left, quota=b.quota) for b in acc.perks if b.quota], "")
            part(t("home.customer.cases", n=len(acc.cases)),
                 [_case_row(t, c, home.now) for c in acc.cases], t("home.none"))
    text = "\n\n".join(f"{bold(sec.title)}\n{sec.text}" if sec.title else sec.text
                        for sec in sections)
    return Message(text, sections=tuple(sections))
