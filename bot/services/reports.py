"""Monthly service reports: figures from the bot's own data (per tenant), sections a deployment
provides, a chart, posted to the account's group on schedule or on demand, and emailed to
the account's recipients (one outbox job per recipient and month). An account whose data
cannot be collected (a proof-of-concept stage, dedicated cloud) may have its report skipped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.catalog import PERKS
from bot.domain.model import Account
from bot.domain.perks import granted
from bot.domain.reports import (
    SKIP_REASONS,
    CaseStats,
    PerkMonth,
    ReportRecord,
    case_stats,
    month_bounds,
    parse_address,
    plan_year_of,
    previous_month,
    report_deadline,
    units_in_month,
)
from bot.i18n import Translator
from bot.messages import Message, Section
from bot.services import failures
from bot.services.base import Actor, AppContext, Refusal, ReportProvider, require_manager
from bot.services.job import JobContext
from bot.services.mailer import Email, Image
from bot.services.messenger import DeliveryError
from storage import jobs
from storage.repos import (
    Accounts,
    Advisories,
    Audit,
    Bindings,
    Cases,
    PerkLedger,
    PlanChanges,
    ReportRecipients,
    Reports,
    ReportSettings,
)

log = logging.getLogger(__name__)

POST, SCHEDULE, EMAIL = "report.post", "report.schedule", "report.email"
# what a deployment's ReportProvider may supply (the bot has no such data)
SECTIONS = ("summary", "resources", "security", "advice", "spending")
# the report's sections: the seed's own list (5.8: 概要, 服务总结, 资源概况, 服务工单, 安全防护,
# 优化建议) in its order, then the bot's extras
OUTLINE = ("overview", "summary", "resources", "tickets", "security", "advice",
           "spending", "perks", "care", "plan_changes")
MAX_RECIPIENTS = 20
CHART_CID = "chart"
RUN_AT = time(10, 0)  # local time on the 1st when scheduled reports are produced


class NoData:
    async def sections(self, account: Account, year: int, month: int) -> dict[str, str]:
        return {}


@dataclass
class Report:
    account: Account
    year: int
    month: int
    deadline: date
    stats: CaseStats
    perks: list[PerkMonth]
    advisories_sent: int
    advisories_acked: int
    plan_changes: list[tuple[str, str, str | None, date]]
    sections: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def figures(self) -> dict[str, Any]:
        """The numbers, as stored with the report row (and checked by tests)."""
        s = self.stats
        return {"opened": s.total_opened, "responded": s.responded,
                "unanswered_overdue": s.unanswered_overdue,
                "within_target": s.within_target, "attainment_pct": s.attainment_pct,
                "fr_p50_min": s.first_response_p50_min, "fr_p90_min": s.first_response_p90_min,
                "breaches": s.breaches, "resolved": s.resolved,
                "res_p50_h": s.resolution_p50_h, "res_p90_h": s.resolution_p90_h,
                "by_severity": {r.severity.value: [r.opened, r.responded, r.within_target,
                                                   r.breached] for r in s.rows},
                "advisories": [self.advisories_sent, self.advisories_acked],
                "perks": {b.perk: [b.used, b.left] for b in self.perks},
                "plan_changes": len(self.plan_changes)}


async def perks_of_month(s: AsyncSession, app: AppContext, account: Account, year: int,
                         month: int) -> list[PerkMonth]:
    """Perks used in the month, by the date each is used (an escort approved in November
    for January counts in January), and what was left of that plan year's quota at the
    month's end (from the ledger as it stood then). Quotas are the account's current ones."""
    first = date(year, month, 1)
    end = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    _, end_at = month_bounds(year, month, app.tz(account))
    plan_start = plan_year_of(account.start, first)
    ledger = PerkLedger(s)
    used = dict.fromkeys(PERKS, 0)
    for perk, start, amount in await ledger.approved_starting_before(account.key, end):
        if perk in used:
            used[perk] += units_in_month(start, amount, first, end)
    # held + consumed of the plan year as the ledger stood when the month ended
    taken = dict.fromkeys(PERKS, 0)
    for perk, n in (await ledger.taken_before(account.key, plan_start, end_at)).items():
        if perk in taken:
            taken[perk] += n
    quotas = granted(app.catalog, account)
    return [PerkMonth(p, quotas[p], used[p], max(0, quotas[p] - taken[p])) for p in PERKS]


def parse_month(text: str) -> tuple[int, int] | None:
    try:
        d = date.fromisoformat(text.strip() + "-01")
    except ValueError:
        return None
    return d.year, d.month


async def build(app: AppContext, s: AsyncSession, account: Account, year: int,
                month: int) -> Report:
    """Gather one account's month. Every query is filtered by this account's key."""
    start, end = month_bounds(year, month, app.tz(account))
    facts = await Cases(s).facts_between(account.key, start, end)
    sent, acked = await Advisories(s).month_counts(account.key, start, end)
    changes = await PlanChanges(s).for_account(account.key, since=start, until=end)
    ry, rm = (year, month + 1) if month < 12 else (year + 1, 1)
    return Report(
        account=account, year=year, month=month,
        deadline=report_deadline(ry, rm, app.calendar(account)),
        stats=case_stats(facts, as_of=app.clock()),
        perks=await perks_of_month(s, app, account, year, month), advisories_sent=sent,
        advisories_acked=acked,
        plan_changes=[(c.kind, c.old_tier, c.new_tier, c.effective) for c in changes])


def _fmt(value: float | None, unit: str, t: Translator) -> str:
    return t("report.none") if value is None else t(f"report.unit.{unit}", n=f"{value:g}")


def _cases_text(s: CaseStats, t: Translator) -> str:
    """The month's cases in words; a figure is shown only where one can exist."""
    if not s.total_opened:
        return t("report.no_cases_overview")
    if s.attainment_pct is None:
        return t("report.cases_unanswered", n=s.total_opened)
    return t("report.cases", n=s.total_opened, responded=s.responded,
             attainment=_fmt(s.attainment_pct, "pct", t))


def _tickets_text(s: CaseStats, t: Translator) -> str:
    """Per-severity counts and percentiles; "no cases" rather than "p50 none"."""
    if (not s.total_opened and s.first_response_p50_min is None and not s.resolved
            and not s.breaches):
        return t("report.tickets_none")
    by_sev = " · ".join(t("report.sev_cell", sev=r.severity.value, opened=r.opened,
                          within=r.within_target, responded=r.responded)
                        for r in s.rows if r.opened)
    response = t("report.no_response") if s.first_response_p50_min is None else t(
        "report.response", p50=_fmt(s.first_response_p50_min, "min", t),
        p90=_fmt(s.first_response_p90_min, "min", t))
    resolution = t("report.no_resolution") if not s.resolved or s.resolution_p50_h is None \
        else t("report.resolution", n=s.resolved, p50=_fmt(s.resolution_p50_h, "h", t),
               p90=_fmt(s.resolution_p90_h, "h", t))
    return t("report.tickets", by_severity=by_sev or t("report.no_cases"), response=response,
             breaches=s.breaches, resolution=resolution)


def _summary_text(report: Report, t: Translator) -> str:
    """Service summary (服务总结): what support did this month, in figures."""
    s = report.stats
    return t("report.summary", handled=s.total_opened, resolved=s.resolved,
             breaches=s.breaches, perks=sum(b.used for b in report.perks),
             advisories=report.advisories_sent)


def outline(report: Report, t: Translator) -> list[tuple[str, str]]:
    """(heading, text) of each section, in the order of `OUTLINE`."""
    s = report.stats
    perks = t("list.sep_major").join(t("report.perk_cell", perk=t(f"perk.{b.perk}"), used=b.used,
                        left=b.left) for b in report.perks if b.quota)
    changes = t("list.sep_major").join(
        t("report.change_cell", kind=t(f"report.kind.{kind}"), old=t(f"tier.{old}"),
          new=t(f"tier.{new}") if new else "—", on=on.isoformat())
        for kind, old, new, on in report.plan_changes)
    texts = {
        "overview": t("report.overview", tier=t(f"tier.{report.account.tier}"),
                      term=t(f"term.{report.account.term}"), cases=_cases_text(s, t)),
        "summary": report.sections.get("summary") or _summary_text(report, t),
        "tickets": _tickets_text(s, t),
        "perks": perks or t("report.none"),
        "care": t("report.advisories", sent=t("count.advisories", n=report.advisories_sent),
                  acked=report.advisories_acked),
        "plan_changes": changes or t("report.none"),
    }
    for name in ("resources", "security", "advice", "spending"):
        texts[name] = report.sections.get(name) or t("report.no_data")
    return [(t(f"report.heading.{name}"), texts[name]) for name in OUTLINE]


def title(report: Report, t: Translator) -> str:
    return t("report.title", name=report.account.name, month=report.label,
             deadline=report.deadline.isoformat())


def render(report: Report, t: Translator) -> str:
    """The report as text: it stands alone when charts are off."""
    return "\n".join([title(report, t), *(t("report.line", heading=h, text=x)
                                          for h, x in outline(report, t))])


def email_message(report: Report, t: Translator) -> Message:
    """The same report laid out for email: a title and one section per heading."""
    return Message(render(report, t), title=title(report, t),
                   sections=tuple(Section(x, title=h) for h, x in outline(report, t)),
                   footer=t("report.email_footer", key=report.account.key))


@dataclass(frozen=True)
class Requested:
    """What `/tam report` queued: the post, and the emails (None: email is off)."""

    account: Account
    label: str
    emails: int | None  # mails queued now
    already: int = 0  # recipients who have (or are getting) this month's report already
    skipped: str | None = None  # the account's reports are skipped, for this reason


async def queue_emails(s: AsyncSession, app: AppContext, account_key: str, label: str,
                       now: datetime) -> tuple[int, int]:
    """One email job per recipient of the account for the month, keyed by account, month
    and address: queued at most once ever, whoever asks and however often. Returns (queued
    now, recipients). Nothing without a mailer (email is off)."""
    if app.mailer is None:
        return 0, 0
    addresses = await ReportRecipients(s).of(account_key)
    queued = 0
    for address in addresses:
        queued += await jobs.enqueue(s, EMAIL, now, {"account": account_key, "month": label,
                                                     "to": address},
                                     email_key(account_key, label, address), now)
    return queued, len(addresses)


def email_key(account_key: str, label: str, address: str) -> str:
    return f"report-email:{account_key}:{label}:{address}"


async def request(app: AppContext, actor: Actor, key: str, year: int | None,
                  month: int | None) -> Requested:
    """On demand: queue a report for an enterprise account (default: the previous month),
    posted to its group and emailed to its recipients who have not had that month's yet.
    Staff asking for a skipped account's report get it (and are told it is skipped)."""
    now = app.clock()
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key.lower())
        if account is None:
            raise Refusal("account.unknown", key=key)
        require_manager(actor, account, "report.request")
        if "monthly_report" not in app.catalog.plan(account.tier).items:
            raise Refusal("report.not_included", key=account.key, tier=account.tier.value)
        if not await Bindings(s).channels_of(account.key):
            raise Refusal("report.no_group", key=account.key)
        local = now.astimezone(app.tz(account)).date()
        if year is None or month is None:
            year, month = previous_month(local.year, local.month)
        if (year, month) >= (local.year, local.month):
            raise Refusal("report.future_month", month=f"{year:04d}-{month:02d}")
        label = f"{year:04d}-{month:02d}"
        await jobs.enqueue(s, POST, now, {"account": account.key, "month": label,
                                          "trigger": "on_demand"},
                           f"report:{account.key}:{label}:demand:{now.timestamp()}", now)
        queued, total = await queue_emails(s, app, account.key, label, now)
        skipped = await ReportSettings(s).skip_reason(account.key)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="report.request", account_key=account.key,
                             after={"month": label, "emails": queued})
    return Requested(account, label, None if app.mailer is None else queued, total - queued,
                     skipped)


async def _managed(s: AsyncSession, app: AppContext, actor: Actor, key: str, action: str,
                   *, enterprise: bool) -> Account:
    account = await Accounts(s).get(key.lower())
    if account is None:
        raise Refusal("account.unknown", key=key)
    require_manager(actor, account, action)
    if enterprise and "monthly_report" not in app.catalog.plan(account.tier).items:
        raise Refusal("report.not_included", key=account.key, tier=account.tier.value)
    return account


def _address(text: str) -> str:
    """The email address a command names, or a refusal."""
    address = parse_address(text)
    if address is None:
        raise Refusal("report.email_bad", given=text)
    return address


async def recipients(app: AppContext, actor: Actor, key: str) -> tuple[Account, list[str]]:
    """The addresses an account's report is emailed to (staff only: the router sees to it)."""
    async with app.db.transaction() as s:
        account = await _managed(s, app, actor, key, "report.email_list", enterprise=False)
        return account, await ReportRecipients(s).of(account.key)


async def add_recipient(app: AppContext, actor: Actor, key: str, text: str
                        ) -> tuple[Account, str]:
    """Add an address the account's monthly report is emailed to."""
    address = _address(text)
    now = app.clock()
    async with app.db.transaction() as s:
        account = await _managed(s, app, actor, key, "report.email_add", enterprise=True)
        repo = ReportRecipients(s)
        if address in await repo.of(account.key):
            raise Refusal("report.email_exists", key=account.key, address=address)
        if await repo.count(account.key) >= MAX_RECIPIENTS:
            raise Refusal("report.email_too_many", key=account.key, n=MAX_RECIPIENTS)
        await repo.add(account.key, address, actor.user_id, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="report.email_add", account_key=account.key,
                             after={"address": address})
    return account, address


async def remove_recipient(app: AppContext, actor: Actor, key: str, text: str
                           ) -> tuple[Account, str]:
    """Remove an address; a report already queued for it is not sent."""
    address = _address(text)
    now = app.clock()
    async with app.db.transaction() as s:
        account = await _managed(s, app, actor, key, "report.email_remove", enterprise=False)
        if not await ReportRecipients(s).remove(account.key, address):
            raise Refusal("report.email_unknown", key=account.key, address=address)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="report.email_remove", account_key=account.key,
                             before={"address": address})
    return account, address


async def set_skip(app: AppContext, actor: Actor, key: str, reason: str | None
                   ) -> tuple[Account, str | None]:
    """Skip an account's scheduled reports (`reason`: poc or dedicated), or produce them
    again (None). Returns the account and the reason it had before."""
    if reason is not None and reason not in SKIP_REASONS:
        raise Refusal("report.skip_bad_reason", given=reason,
                      choices=", ".join(SKIP_REASONS))
    now = app.clock()
    async with app.db.transaction() as s:
        account = await _managed(s, app, actor, key, "report.skip", enterprise=True)
        before = await ReportSettings(s).set_skip(account.key, reason, actor.user_id, now)
        if before != reason:
            await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                                 action="report.skip", account_key=account.key,
                                 before={"skip": before}, after={"skip": reason})
    return account, before


@dataclass(frozen=True)
class Status:
    """An account's report setting, as `/tam account show` tells it."""

    included: bool
    skip_reason: str | None
    recipients: int
    email_on: bool


async def status(app: AppContext, account: Account) -> Status:
    async with app.db.read() as s:
        return Status("monthly_report" in app.catalog.plan(account.tier).items,
                      await ReportSettings(s).skip_reason(account.key),
                      await ReportRecipients(s).count(account.key), app.mailer is not None)


async def _add_sections(app: AppContext, report: Report) -> None:
    """The report provider's sections (those the report knows, not empty) into the report."""
    provider: ReportProvider = app.report_provider or NoData()
    sections = await provider.sections(report.account, report.year, report.month)
    report.sections = {k: v for k, v in sections.items() if k in SECTIONS and v}


async def _render_chart(ctx: JobContext, report: Report, t: Translator, label: str) -> bytes:
    """The report's chart, as PNG. matplotlib is CPU work: rendered in the worker's chart
    processes, so the charts of the reports claimed together render on every core, off the
    event loop."""
    labels = {"cases": t("report.chart_cases"), "attainment": t("report.chart_attainment"),
              "severity": t("report.chart_severity")}
    return await ctx.charts.render(report.stats, t("report.chart_title", month=label), labels)


async def run_post(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    """Generate and post one report: the text, then the chart in its thread."""
    key, label = str(job.payload["account"]), str(job.payload["month"])
    year, month = int(label[:4]), int(label[5:])
    app = ctx.app
    async with app.db.read() as s:  # only reads: on SQLite, beside the one writer
        account = await Accounts(s).get(key)
        channels = await Bindings(s).channels_of(key) if account else []
        if account is None or not channels:
            raise DeliveryError(f"account {key} has no group to post to", permanent=True)
        report = await build(app, s, account, year, month)
    await _add_sections(app, report)
    t = Translator(account.lang)
    text = render(report, t)
    channel = channels[0]
    posted = await ctx.deliver(job.key, channel, Message(text), recover=job.attempts > 1)
    now = app.clock()
    async with app.db.transaction() as s:
        # recorded as soon as the report is in the group: the chart is an extra
        await Reports(s).add(ReportRecord(
            account_key=key, month=label, trigger=str(job.payload.get("trigger", "scheduled")),
            deadline=report.deadline, created_at=now, channel_id=channel, ts=posted.ts,
            figures=report.figures()))
    if app.settings.report_charts and report.stats.total_opened:
        try:
            png = await _render_chart(ctx, report, t, label)
        except Exception as exc:
            # the text is posted and recorded: retrying the job would post it again, so the
            # report stands without its chart and staff are told (as for a refused upload)
            reason = str(exc) or type(exc).__name__
            log.warning("chart of the %s report of %s could not be rendered: %s", label, key,
                        reason)
            async with app.db.transaction() as s:
                await failures.tell_staff(s, app, app.clock(), once=f"chart:{job.key}",
                                          msg_id="notice.chart_failed", needed=None,
                                          month=label, key=key, error=reason)
            return {"ts": posted.ts, "chart": "failed", "error": reason}
        try:
            await ctx.messenger.upload(channel, f"service-report-{key}-{label}.png", png,
                                       title=t("report.chart_title", month=label),
                                       thread_ts=posted.ts)
        except DeliveryError as exc:
            # the text report stands alone; retrying the job would post the text again, so
            # the job ends here and staff learn the chart is missing (and which scope, if any)
            log.warning("chart of the %s report of %s could not be uploaded: %s", label, key,
                        exc.reason)
            async with app.db.transaction() as s:
                await failures.tell_staff(s, app, app.clock(), once=f"chart:{job.key}",
                                          msg_id="notice.chart_failed", needed=exc.needed,
                                          month=label, key=key, error=exc.reason)
            return {"ts": posted.ts, "chart": "failed", "error": exc.reason}
    return {"ts": posted.ts}


async def run_email(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    """Email one account's report for a month to one recipient: HTML with a plain-text
    part and the chart inline. A 4xx or a lost connection is retried with backoff (the
    worker's policy); a 5xx is final: logged once, staff told once, the job ends. The lease
    is checked (and extended) just before the mail leaves: a mail server cannot be asked
    whether it already has a mail, so no two workers may send it."""
    key, label, to = (str(job.payload["account"]), str(job.payload["month"]),
                      str(job.payload["to"]))
    year, month = int(label[:4]), int(label[5:])
    app = ctx.app
    if app.mailer is None:
        raise DeliveryError("email is off (SUPPORTBOT_SMTP_HOST is not set)", permanent=True)
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key)
        if account is None:
            raise DeliveryError(f"account {key} vanished", permanent=True)
        if to not in await ReportRecipients(s).of(key):
            log.info("report email %s not sent: %s is no longer a recipient", job.key, to)
            return {"outcome": "recipient removed"}
        report = await build(app, s, account, year, month)
    await _add_sections(app, report)
    t = Translator(account.lang)
    images: tuple[Image, ...] = ()
    if app.settings.report_charts and report.stats.total_opened:
        try:
            png: bytes | None = await _render_chart(ctx, report, t, label)
        except Exception as exc:
            # the mail is the report; a chart that cannot be made leaves it without one
            log.warning("chart of the %s report email %s could not be rendered: %s", label,
                        job.key, str(exc) or type(exc).__name__)
            png = None
        if png is not None:
            images = (Image(CHART_CID, f"service-report-{key}-{label}.png", png),)
    mail = Email(to=to, subject=t("report.email_subject", name=account.name, month=label),
                 message=email_message(report, t), key=job.key, timezone=account.timezone,
                 images=images)
    await ctx.keep_lease(job)
    try:
        message_id = await app.mailer.send(mail)
    except DeliveryError as exc:
        if not exc.permanent:
            raise
        log.warning("report email %s to %s refused for good: %s", job.key, to, exc.reason)
        async with app.db.transaction() as s:
            await failures.tell_staff(s, app, app.clock(), once=f"email:{job.key}",
                                      msg_id="notice.email_failed", month=label, key=key,
                                      address=to, error=exc.reason[:300])
        return {"outcome": "refused", "error": exc.reason[:300]}
    return {"message_id": message_id, "chart": bool(images)}


def next_run(app: AppContext, after: datetime) -> tuple[datetime, str]:
    """When the next scheduled run is (the 1st at RUN_AT, default region time) and its label."""
    tz = app.tz_of_region(app.catalog.default_region)
    local = after.astimezone(tz)
    y, m = (local.year, local.month + 1) if local.month < 12 else (local.year + 1, 1)
    first = datetime.combine(date(local.year, local.month, 1), RUN_AT, tzinfo=tz)
    if first > local:
        y, m = local.year, local.month
    else:
        first = datetime.combine(date(y, m, 1), RUN_AT, tzinfo=tz)
    return first.astimezone(UTC), f"{y:04d}-{m:02d}"


async def ensure_schedule(app: AppContext) -> None:
    """Make sure the next monthly run is queued (idempotent: one job per month)."""
    now = app.clock()
    due, label = next_run(app, now)
    async with app.db.transaction() as s:
        await jobs.enqueue(s, SCHEDULE, due, {"month": label}, f"reports:schedule:{label}", now)


async def run_schedule(ctx: JobContext, job: jobs.Job) -> dict[str, Any]:
    """Queue every enterprise account's report for the previous month, exactly once each,
    then the next month's run."""
    app = ctx.app
    label = str(job.payload["month"])
    py, pm = previous_month(int(label[:4]), int(label[5:]))
    report_month = f"{py:04d}-{pm:02d}"
    now = app.clock()
    queued = emails = 0
    skipped: list[str] = []
    async with app.db.transaction() as s:
        bound = await Bindings(s).bound_accounts()
        skips = await ReportSettings(s).skipped()
        for account in await Accounts(s).list():
            if "monthly_report" not in app.catalog.plan(account.tier).items or \
                    not account.in_force(now.astimezone(app.tz(account)).date()) or \
                    account.key not in bound:
                continue
            if account.key in skips:
                # seed 5.8: no report where its data cannot be collected (POC, dedicated)
                skipped.append(account.key)
                continue
            queued += await jobs.enqueue(s, POST, now, {"account": account.key,
                                                         "month": report_month,
                                                         "trigger": "scheduled"},
                                         f"report:{account.key}:{report_month}", now)
            emails += (await queue_emails(s, app, account.key, report_month, now))[0]
        due, next_label = next_run(app, max(now, job.due_at))
        await jobs.enqueue(s, SCHEDULE, due, {"month": next_label},
                           f"reports:schedule:{next_label}", now)
    return {"queued": queued, "month": report_month, "emails": emails, "skipped": skipped}


async def reports_of(app: AppContext, key: str) -> list[ReportRecord]:
    async with app.db.transaction() as s:
        return await Reports(s).of(key)
