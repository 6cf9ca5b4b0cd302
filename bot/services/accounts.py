"""Use cases for accounts, staff and channel bindings."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import Account, Lang, Role, StaffMember, Term, Tier
from bot.i18n import Translator
from bot.services import addresses, home, outbox
from bot.services.base import Actor, AppContext, Refusal, audit_denial
from storage.repos import Accounts, Audit, Bindings, Staff

ACCOUNT_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,62}$")


def add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


async def add_account(app: AppContext, actor: Actor, key: str, tier: Tier, term: Term,
                      start: date, region: str | None, name: str | None,
                      lang: Lang) -> Account:
    key = key.lower()
    if not ACCOUNT_KEY.match(key):
        raise Refusal("account.bad_key", key=key)
    region = region or app.catalog.default_region
    if region not in app.catalog.regions:
        raise Refusal("account.bad_region", region=region,
                      choices=", ".join(sorted(app.catalog.regions)))
    tz = app.catalog.regions[region].timezone
    ZoneInfo(tz)  # fail here, not later, on a catalog time zone Python does not know
    end = add_years(start, 1) if term is Term.ANNUAL else add_months(start, 1)
    account = Account(key=key, name=name or key, tier=tier, term=term, start=start, end=end,
                      region=region, timezone=tz, lang=lang, team_id=actor.team_id)
    now = app.clock()
    async with app.db.transaction() as s:
        if await Accounts(s).get(key) is not None:
            raise Refusal("account.exists", key=key)
        await Accounts(s).add(account, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="account.add", account_key=key,
                             after=_jsonable(asdict(account)))
    return account


async def channel_account(app: AppContext, channel_id: str) -> Account | None:
    """The account bound to a channel (tenant scope of everything typed there)."""
    async with app.db.read() as s:
        return await Bindings(s).account_for(channel_id)


async def get_account(app: AppContext, key: str) -> Account:
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key.lower())
    if account is None:
        raise Refusal("account.unknown", key=key)
    return account


async def assign_tam(app: AppContext, actor: Actor, key: str, user_id: str) -> Account:
    now = app.clock()
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key.lower())
        if account is None:
            raise Refusal("account.unknown", key=key)
        if not app.catalog.plan(account.tier).tam:
            raise Refusal("account.no_tam", key=account.key, tier=account.tier.value)
        member = await Staff(s).get(actor.team_id, user_id)
        if (member is None or member.role is Role.ENGINEER) and \
                user_id not in app.settings.admins:
            raise Refusal("account.tam_not_staff", user=user_id)
        await Accounts(s).set_tam(account.key, user_id)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="account.assign_tam", account_key=account.key,
                             before={"tam": account.tam_user_id}, after={"tam": user_id})
        await home.touch(s, account.key, now)
    return account


async def add_staff(app: AppContext, actor: Actor, user_id: str, role: Role,
                    lang: Lang = Lang.EN) -> StaffMember:
    now = app.clock()
    member = StaffMember(actor.team_id, user_id, role, lang)
    async with app.db.transaction() as s:
        before = await Staff(s).upsert(member, actor.user_id, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="staff.add",
                             before={"role": before.role.value} if before else None,
                             after={"user": user_id, "role": role.value})
    return member


async def set_staff_lang(app: AppContext, actor: Actor, lang: Lang) -> None:
    """A staff member's own language for staff-only replies and notices."""
    if actor.role is None:
        raise Refusal("case.ack_staff_only")
    now = app.clock()
    async with app.db.transaction() as s:
        # a preference, not a staff row: an admin from SUPPORTBOT_ADMINS stays removable
        before = await Staff(s).set_lang(actor.team_id, actor.user_id, lang, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="staff.language",
                             before={"lang": before.value} if before else None,
                             after={"lang": lang.value})


async def link_channel(app: AppContext, actor: Actor, channel_id: str, key: str,
                       force: bool = False, address: str | None = None) -> Account:
    """Bind a channel to an account whose tier includes IM group support (rulebook §2).
    `address` is the group's delivery address, for platforms that need one (kept
    encrypted; see `addresses`)."""
    if address is None and addresses.needs_address(app, channel_id):
        raise Refusal("link.needs_address", key=key)
    async with app.db.transaction() as s:
        account = await Accounts(s).get(key.lower())
        if account is None:
            raise Refusal("account.unknown", key=key)
        if actor.role is not Role.ADMIN and account.tam_user_id not in (None, actor.user_id):
            raise Refusal("link.not_your_account", key=account.key)
        refused = account if not app.catalog.plan(account.tier).im_group else None
        if refused is None:
            current = await Bindings(s).bound_account_key(channel_id)
            if current is not None and current != account.key and not force:
                # re-binding would show this group another tenant's plan and cases
                raise Refusal("link.already_bound", current=current, key=account.key)
            if current is not None and current != account.key and \
                    actor.role is not Role.ADMIN:
                raise Refusal("link.force_admin_only")
            if address is not None:
                await addresses.store(s, app, channel_id, address)
            await _bind(s, app, actor, channel_id, account)
    if refused is not None:
        # audited in its own transaction: the refusal rolls nothing back
        await audit_denial(app, actor, "link", f"tier {refused.tier.value} has no IM group "
                           "support", account_key=refused.key)
        raise Refusal("link.tier_without_im", key=refused.key, tier=refused.tier.value)
    return account


async def _bind(s: AsyncSession, app: AppContext, actor: Actor, channel_id: str,
                account: Account) -> None:
    now = app.clock()
    previous = await Bindings(s).bound_account_key(channel_id)
    await Bindings(s).bind(actor.team_id, channel_id, account.key, actor.user_id, now)
    await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                         action="channel.link", account_key=account.key,
                         before={"account": previous} if previous else None,
                         after={"channel": channel_id, "account": account.key})
    await home.touch(s, account.key, now)
    t = Translator(account.lang)
    # a group that cannot send commands (WeLink) is told what it will receive instead
    remote = channel_id.partition(":")[0] in app.remote_platforms
    await outbox.post(s, now, channel=channel_id,
                      text=t("link.welcome_remote" if remote else "link.welcome",
                             name=account.name, tier=t(f"tier.{account.tier}")),
                      key=f"link:{channel_id}:{account.key}:{int(now.timestamp())}")


def _jsonable(d: dict[str, object]) -> dict[str, object]:
    return {k: (v.isoformat() if isinstance(v, date) else str(v) if v is not None and not
                isinstance(v, bool | int | str) else v) for k, v in d.items()}

async def bound_account(s: AsyncSession, app: AppContext, channel_id: str) -> Account:
    """The account bound to a channel, refusing when there is none or it has no IM support."""
    return usable_account(app, await Bindings(s).account_for(channel_id))


def usable_account(app: AppContext, account: Account | None) -> Account:
    """The channel's account (as `bound_account` read it), refusing when there is none or
    it has no IM support."""
    if account is None:
        raise Refusal("case.unbound")
    if not app.catalog.plan(account.tier).im_group:
        raise Refusal("case.tier_without_im", tier=account.tier.value)
    if not account.in_force(app.clock().astimezone(app.tz(account)).date()):
        raise Refusal("case.plan_cancelled", on=str(account.cancelled_on))
    return account
