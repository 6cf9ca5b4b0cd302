"""What every use case shares: the application context, the actor, refusals, roles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot import metrics
from bot.config import Settings
from bot.domain.calendar import BusinessCalendar, calendar_for
from bot.domain.catalog import Catalog
from bot.domain.model import Account, Lang, Role
from bot.i18n import Translator
from bot.services.mailer import Mailer
from storage.db import Database
from storage.repos import Audit, Inbox, Staff


def utcnow() -> datetime:
    return datetime.now(UTC)


class ReportProvider(Protocol):
    """Data the bot does not have (resources, security, spending, advice), per tenant."""

    async def sections(self, account: Account, year: int, month: int) -> dict[str, str]:
        """Text per section name (see `reports.SECTIONS`); a missing or empty one shows
        as "no data"."""
        ...


@dataclass
class AppContext:
    """Everything a use case needs from the outside world, passed in explicitly."""

    db: Database
    catalog: Catalog
    settings: Settings
    clock: Callable[[], datetime] = utcnow
    # where monthly reports get the sections the bot has no data for; None: "no data"
    report_provider: ReportProvider | None = None
    # (team, user, account, channel) -> when that customer was last noted (spares writes)
    noted_customers: dict[tuple[str, str, str, str], datetime] = field(default_factory=dict)
    # platforms (the prefix of their qualified ids) whose groups need a delivery address
    address_platforms: frozenset[str] = frozenset()
    # platforms whose groups cannot send the bot commands (WeLink): a group of theirs is
    # linked from another chat with `/tam link <account> group=<id> webhook=…`
    remote_platforms: frozenset[str] = frozenset()
    # how monthly reports are emailed (SMTP); None: email is off, reports go to groups only
    mailer: Mailer | None = None

    def calendar(self, account: Account) -> BusinessCalendar:
        return calendar_for(self.catalog.region(account.region).calendar)

    def tz(self, account: Account) -> ZoneInfo:
        return ZoneInfo(account.timezone)

    def tz_of_region(self, region: str) -> ZoneInfo:
        return ZoneInfo(self.catalog.region(region).timezone)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: a chat user in a workspace (or the bot itself)."""

    team_id: str
    user_id: str
    role: Role | None = None
    lang: Lang = Lang.EN

    @property
    def is_staff(self) -> bool:
        return self.role is not None

    def manages(self, account: Account) -> bool:
        """Admins manage every account; a TAM the accounts assigned to them (or to nobody)."""
        if self.role is Role.ADMIN:
            return True
        return self.role is Role.TAM and account.tam_user_id in (None, self.user_id)

    def at_least(self, role: Role) -> bool:
        order = [Role.ENGINEER, Role.TAM, Role.ADMIN]
        return self.role is not None and order.index(self.role) >= order.index(role)


class Refusal(Exception):
    """A use case declined: carries a message id and its parameters for the reply."""

    def __init__(self, msg_id: str, **params: Any) -> None:
        super().__init__(msg_id)
        self.msg_id = msg_id
        self.params = params

    def render(self, t: Translator) -> str:
        # perk and tier ids read better as their names in the reader's language
        params = dict(self.params)
        for name in ("perk", "tier", "status"):
            if isinstance(params.get(name), str):
                params[name] = t(f"{name}.{params[name]}")
        if isinstance(params.get("perk_status"), str):
            params["perk_status"] = t(f"perk.status.{params['perk_status']}")
        if isinstance(params.get("choices"), str):
            # services name choices as "a, b"; the reader's language separates its own lists
            params["choices"] = t.join(str(params["choices"]).split(", "))
        if isinstance(params.get("tiers"), str):
            params["tiers"] = t.join(t(f"tier.{x}") for x in str(params["tiers"]).split(", "))
        return t(self.msg_id, **params)


class Denied(Refusal):
    """A refusal that is an authorization decision: the reply stays the same as for a missing
    object (nothing leaks across tenants), and the attempt is written to the audit log."""

    def __init__(self, msg_id: str, *, action: str, reason: str,
                 account_key: str | None = None, **params: Any) -> None:
        super().__init__(msg_id, **params)
        self.action = action
        self.reason = reason
        self.account_key = account_key


def require_manager(actor: Actor, account: Account, action: str) -> None:
    """Refuse (and audit) an account-level change by staff who do not manage the account."""
    if not actor.manages(account):
        raise Denied("account.not_your_account", action=action, account_key=account.key,
                     reason="not the account's TAM or an admin", key=account.key)


async def resolve_actor(app: AppContext, team_id: str, user_id: str) -> Actor:
    """The actor with its role from SUPPORTBOT_ADMINS or the staff table (never membership)."""
    async with app.db.read() as s:
        member, pref = await Staff(s).who(team_id, user_id)
    if user_id in app.settings.admins:
        return Actor(team_id, user_id, Role.ADMIN, member.lang if member else pref or Lang.EN)
    if member is None:
        return Actor(team_id, user_id)
    return Actor(team_id, user_id, member.role, member.lang)


async def audit_denial(app: AppContext, actor: Actor, action: str, reason: str,
                       account_key: str | None = None, case_id: int | None = None) -> None:
    """Record a refused authorization with the actor and the reason."""
    async with app.db.transaction() as s:
        await Audit(s).write(at=app.clock(), actor=actor.user_id, team_id=actor.team_id,
                             action=f"denied:{action}", account_key=account_key,
                             case_id=case_id, reason=reason)


async def seen_event(app: AppContext, event_id: str) -> bool:
    """Whether an inbound event was processed already, without recording it (a cheap look
    before the work, which records it in its own transaction)."""
    async with app.db.read() as s:
        return await Inbox(s).seen(event_id)


async def record_event(app: AppContext, event_id: str | None) -> bool:
    """Note an inbound event whose only effect is a message; False when seen before."""
    if event_id is None:
        return True
    # one statement that cannot fail on a duplicate (ON CONFLICT DO NOTHING): it needs no
    # savepoint of its own inside a command's transaction
    async with app.db.transaction(savepoint=False) as s:
        first = await Inbox(s).first_time(event_id, app.clock())
    if not first:
        metrics.DUPLICATE_EVENTS.inc()
    return first
