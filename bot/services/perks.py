"""Use cases for annual perks: request, approve, reject, cancel; the ledger keeps the count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import (
    Account,
    Lang,
    LedgerEntry,
    NewPerkRequest,
    PerkRequest,
    RequestStatus,
    request_ref,
)
from bot.domain.perks import check_request, granted
from bot.i18n import Translator
from bot.messages import Button
from bot.services import home, outbox
from bot.services.accounts import bound_account
from bot.services.base import Actor, AppContext, Denied, Refusal, audit_denial
from bot.services.quota import perk_balances
from storage.repos import Accounts, Audit, PerkLedger, Staff


@dataclass(frozen=True)
class Requested:
    ref: str
    account: Account
    perk: str
    start: date
    amount: int
    warnings: list[tuple[str, dict[str, object]]]


async def request_perk(app: AppContext, actor: Actor, channel_id: str, perk: str,
                       start: date, amount: int) -> Requested:
    now = app.clock()
    async with app.db.transaction() as s:
        bound = await bound_account(s, app, channel_id)
        # one request at a time per account: the quota check and the hold are one step
        account = await Accounts(s).get(bound.key, for_update=True) or bound
        today = now.astimezone(app.tz(account)).date()
        balance = next(b for b in await perk_balances(s, app, account) if b.perk == perk)
        decision = check_request(app.catalog, account, perk, start, amount, today,
                                 app.calendar(account), balance)
        if decision.refusal is not None:
            msg_id, params = decision.refusal
            refusal = Refusal(msg_id, **params)
        else:
            refusal = None
            row = await PerkLedger(s).add_request(NewPerkRequest(
                account_key=account.key, perk=perk, start_date=start, amount=amount,
                plan_year_start=account.start, channel_id=channel_id,
                requested_by=actor.user_id, requested_at=now))
            await PerkLedger(s).entry(account.key, perk, account.start, LedgerEntry.HOLD,
                                      amount, row.id, now)
            ref = request_ref(row.id)
            await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                                 action="perk.request", account_key=account.key,
                                 after={"request": ref, "perk": perk, "start": str(start),
                                        "amount": amount,
                                        "warnings": [w[0] for w in decision.warnings]})
            await _tell_approvers(s, app, account, row, decision.warnings)
            await home.touch(s, account.key, now)
            t = Translator(account.lang)
            await outbox.post(s, now, channel=channel_id, key=f"perk:{row.id}:requested",
                              text=t("perk.requested_notice", user=actor.user_id, ref=ref,
                                     perk=t(f"perk.{perk}"),
                                     when=t.perk_window(perk, start, amount)))
    if refusal is not None:
        raise refusal
    return Requested(ref, account, perk, start, amount, decision.warnings)


async def _tell_approvers(s: AsyncSession, app: AppContext, account: Account,
                          row: PerkRequest, warnings: list[tuple[str, dict[str, object]]]
                          ) -> None:
    """The request goes to the account's TAM (DM, with buttons) and the duty channel."""
    ref = request_ref(row.id)

    def text(t: Translator) -> str:
        lines = [t("perk.approval_needed", ref=ref, account=account.name, key=account.key,
                   perk=t(f"perk.{row.perk}"),
                   when=t.perk_window(row.perk, row.start_date, row.amount),
                   user=row.requested_by)]
        lines += [t(w, **p) for w, p in warnings]
        return "\n".join(lines)

    def buttons(t: Translator) -> list[Button]:
        return [Button(t("perk.button_approve"), f"/tam approve {ref}", "primary"),
                Button(t("perk.button_reject"), f"/tam reject {ref}", "danger",
                       ask=t("perk.reject_reason"))]

    if account.tam_user_id:
        member = await Staff(s).get(account.team_id or "", account.tam_user_id)
        t = Translator(member.lang if member else Lang.EN)
        await outbox.post(s, row.requested_at, user=account.tam_user_id, text=text(t),
                          buttons=buttons(t), key=f"perk:{row.id}:approval:tam")
    if app.settings.duty_channel:
        en = Translator(Lang.EN)
        await outbox.post(s, row.requested_at, channel=app.settings.duty_channel,
                          text=text(en), buttons=buttons(en), key=f"perk:{row.id}:approval:duty")


async def decide(app: AppContext, actor: Actor, request_id: int, approve: bool,
                 reason: str = "") -> tuple[str, Account, PerkRequest]:
    """Approve (consume the held quota) or reject (release it); the group hears the outcome."""
    now = app.clock()
    if not approve and not reason.strip():
        raise Refusal("perk.reason_required")
    async with app.db.transaction() as s:
        row = await PerkLedger(s).request(request_id, for_update=True)
        account = await Accounts(s).get(row.account_key, for_update=True) if row else None
        if row is None or account is None:
            raise Refusal("perk.unknown_request")
        ref = request_ref(row.id)
        if not actor.manages(account):
            denied = True
        else:
            denied = False
            if row.status != RequestStatus.PENDING:
                raise Refusal("perk.already_decided", ref=ref, perk_status=row.status)
            if approve:
                # the plan may have changed since the request (downgrade, unsubscribe)
                _, used = await PerkLedger(s).totals(account.key, row.plan_year_start)
                quota = granted(app.catalog, account)[row.perk]
                if row.plan_year_start != account.start or not account.in_force(
                        now.astimezone(app.tz(account)).date()) or \
                        used.get(row.perk, 0) + row.amount > quota:
                    raise Refusal("perk.no_longer_available", ref=ref, perk=row.perk)
            ledger = PerkLedger(s)
            await ledger.entry(account.key, row.perk, row.plan_year_start,
                               LedgerEntry.RELEASE, row.amount, row.id, now)
            if approve:
                await ledger.entry(account.key, row.perk, row.plan_year_start,
                                   LedgerEntry.CONSUME, row.amount, row.id, now)
            decision = RequestStatus.APPROVED if approve else RequestStatus.REJECTED
            row = await ledger.settle(row.id, decision, actor.user_id, now,
                                      reason.strip() or None)
            await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                                 action=f"perk.{row.status}", account_key=account.key,
                                 before={"request": ref, "status": RequestStatus.PENDING},
                                 after={"request": ref, "status": row.status,
                                        "reason": row.reason})
            t = Translator(account.lang)
            await home.touch(s, account.key, now)
            msg = "perk.approved_notice" if approve else "perk.rejected_notice"
            await outbox.post(s, now, channel=row.channel_id, key=f"perk:{row.id}:{row.status}",
                              text=t(msg, ref=ref, perk=t(f"perk.{row.perk}"),
                                     when=t.perk_window(row.perk, row.start_date, row.amount),
                                     reason=row.reason or ""))
    if denied:
        await audit_denial(app, actor, "perk.decide", "not the account's TAM or an admin",
                           account_key=account.key)
        raise Refusal("perk.not_your_account", ref=ref)
    return ref, account, row


async def cancel(app: AppContext, actor: Actor, channel_id: str, request_id: int) -> str:
    """The customer withdraws a pending request; the held quota is released."""
    now = app.clock()
    async with app.db.transaction() as s:
        account = await bound_account(s, app, channel_id)
        await Accounts(s).get(account.key, for_update=True)
        row = await PerkLedger(s).request(request_id, for_update=True)
        if row is None:
            raise Refusal("perk.unknown_request")
        if row.account_key != account.key:
            raise Denied("perk.unknown_request", action="perk.cancel", account_key=account.key,
                         reason=f"{request_ref(row.id)} belongs to another account")
        ref = request_ref(row.id)
        if row.status != RequestStatus.PENDING:
            raise Refusal("perk.already_decided", ref=ref, perk_status=row.status)
        await PerkLedger(s).entry(account.key, row.perk, row.plan_year_start,
                                  LedgerEntry.RELEASE, row.amount, row.id, now)
        await PerkLedger(s).settle(row.id, RequestStatus.CANCELLED, actor.user_id, now)
        await Audit(s).write(at=now, actor=actor.user_id, team_id=actor.team_id,
                             action="perk.cancelled", account_key=account.key,
                             before={"request": ref, "status": RequestStatus.PENDING},
                             after={"request": ref, "status": RequestStatus.CANCELLED})
        await home.touch(s, account.key, now)
    return ref


async def group_requests(app: AppContext, channel_id: str
                         ) -> tuple[Account, list[PerkRequest]]:
    async with app.db.transaction() as s:
        account = await bound_account(s, app, channel_id)
        return account, await PerkLedger(s).requests([account.key])
