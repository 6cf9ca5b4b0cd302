"""Staff members (roles) and users' own settings (language)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import Lang, Role, StaffMember
from storage.tables import StaffRow, UserPrefRow

ANY_TEAM = "*"  # staff added from the command line, valid in every workspace


class Staff:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def get(self, team_id: str, user_id: str) -> StaffMember | None:
        """The staff entry for this workspace, or one added for every workspace (`*`)."""
        row = await self.s.get(StaffRow, (team_id, user_id))
        if row is None:
            row = await self.s.get(StaffRow, (ANY_TEAM, user_id))
        if row is None:
            return None
        pref = await self.lang(team_id, user_id)
        return StaffMember(team_id=row.team_id, user_id=row.user_id, role=Role(row.role),
                           lang=pref or Lang(row.lang))

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
