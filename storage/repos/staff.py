"""Staff members (roles) and users' own settings (language)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, bindparam, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import Lang, Role, StaffMember
from storage import sql
from storage.tables import StaffRow, UserPrefRow

ANY_TEAM = "*"  # staff added from the command line, valid in every workspace


# one round trip for who someone is: their staff entries (this workspace's, every
# workspace's) and their own language setting
_WHO: CompoundSelect[Any] = union_all(
    select(StaffRow.team_id, StaffRow.role, StaffRow.lang)
    .where(StaffRow.user_id == bindparam("user"),
           StaffRow.team_id.in_([bindparam("team"), literal(ANY_TEAM)])),
    select(literal("").label("team_id"), null().label("role"), UserPrefRow.lang)
    .where(UserPrefRow.team_id == bindparam("team"), UserPrefRow.user_id == bindparam("user")))


class Staff:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def get(self, team_id: str, user_id: str) -> StaffMember | None:
        """The staff entry for this workspace, or one added for every workspace (`*`)."""
        return (await self.who(team_id, user_id))[0]

    async def who(self, team_id: str, user_id: str) -> tuple[StaffMember | None, Lang | None]:
        """The staff entry (as `get`) and the user's own language setting, in one query."""
        rows = (await sql.run(self.s, _WHO, {"team": team_id, "user": user_id})).all()
        pref = next((Lang(lang) for team, role, lang in rows if role is None), None)
        staff = {team: (role, lang) for team, role, lang in rows if role is not None}
        team = team_id if team_id in staff else ANY_TEAM if ANY_TEAM in staff else None
        if team is None:
            return None, pref
        role, lang = staff[team]
        return StaffMember(team_id=team, user_id=user_id, role=Role(role),
                           lang=pref or Lang(lang)), pref

    async def lang(self, team_id: str, user_id: str) -> Lang | None:
        row = await self.s.get(UserPrefRow, (team_id, user_id))
        return Lang(row.lang) if row else None

    async def set_lang(self, team_id: str, user_id: str, lang: Lang,
                       now: datetime) -> Lang | None:
        row = await self.s.get(UserPrefRow, (team_id, user_id))
        if row is None:
            self.s.add(UserPrefRow(team_id=team_id, user_id=user_id, lang=lang.value,
                                   updated_at=now))
            await self.s.flush()
            return None
        before = Lang(row.lang)
        row.lang, row.updated_at = lang.value, now
        await self.s.flush()
        return before

    async def upsert(self, m: StaffMember, by: str, now: datetime) -> StaffMember | None:
        """Insert or change a staff member; return the previous entry, if any."""
        row = await self.s.get(StaffRow, (m.team_id, m.user_id))
        before = None
        if row is None:
            self.s.add(StaffRow(team_id=m.team_id, user_id=m.user_id, role=m.role.value,
                                lang=m.lang.value, added_by=by, added_at=now))
        else:
            before = StaffMember(row.team_id, row.user_id, Role(row.role), Lang(row.lang))
            row.role, row.lang, row.added_by, row.added_at = m.role.value, m.lang.value, by, now
        await self.s.flush()
        return before
