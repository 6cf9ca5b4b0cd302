"""Cases and open incidents: the link a new case gets in the transaction opening it, the
incidents its card names, an incident's latest status in a reader's language. Kept apart
from `bot.services.incidents` (which uses `bot.services.cases`) so that the case use cases
can call it without an import circle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.advisories import AccountProfile
from bot.domain.incidents import Incident, IncidentStatus, affects, links_new_case
from bot.domain.model import Account, Case
from bot.i18n import Translator, time_token
from bot.services.base import AppContext
from storage.repos import Audit, Incidents, Tags


async def link_new_case(s: AsyncSession, app: AppContext, account: Account, case: Case,
                        now: datetime, named_region: str | None
                        ) -> list[tuple[str, dict[str, Any]]]:
    """In the transaction opening `case`: link it to every open incident affecting its
    group (by the account's tags now, or because a post of it went to this group), and say
    so (notices for the confirmation and the case thread, with each
    incident's latest status). `named_region`: the region the opener named, if any (a case
    naming another region is not linked). One indexed query when no incident is open."""
    open_incidents = await Incidents(s).open()
    if not open_incidents:
        return []
    profile = AccountProfile(account, await Tags(s).of(account.key))
    reached = await Incidents(s).reached(account.key, case.channel_id)
    today = now.astimezone(app.tz(account)).date()
    t = Translator(account.lang)
    linked: list[Incident] = []
    for incident in open_incidents:
        if not links_new_case(incident.scope, named_region) or not (
                incident.id in reached or affects(app.catalog, profile, incident.scope, today)):
            continue
        await Incidents(s).link(incident.id, case.id, "bot", now)
        await Audit(s).write(at=now, actor="bot", action="incident.link",
                             account_key=account.key, case_id=case.id,
                             after={"incident": incident.ref, "auto": True})
        linked.append(incident)
    if len(linked) > 1:  # one notice: the case thread takes one per message id
        return [("incident.case_linked_many", {"refs": t.join(i.ref for i in linked)})]
    return [("incident.case_linked", {"ref": i.ref, "title": i.title,
                                      "latest": latest_line(t, i)}) for i in linked]


def latest_line(t: Translator, incident: Incident) -> str:
    """The incident's latest status as one line in the reader's language."""
    if incident.status is IncidentStatus.RESOLVED and incident.resolved_at is not None:
        head = t("incident.latest_resolved", at=time_token(incident.resolved_at))
        return f"{head} {incident.latest}" if incident.latest else head
    if incident.latest and incident.latest_at is not None:
        return t("incident.latest_update", at=time_token(incident.latest_at),
                 text=incident.latest)
    return t("incident.latest_investigating", at=time_token(incident.declared_at))


async def card_incidents(s: AsyncSession, case_id: int) -> list[str]:
    """`INC-1001 title` of each incident the case is linked to, for its card."""
    return [f"{i.ref} {i.title}" for i in await Incidents(s).of_case(case_id)]
