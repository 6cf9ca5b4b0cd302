"""Test helpers: drive the neutral router like a chat user, and seed a small world."""

from __future__ import annotations

from bot.services.base import AppContext
from handlers.core import Reply, Request, Router

TEAM = "T1"
ADMIN, TAM, ENGINEER, CUSTOMER, OTHER_CUSTOMER = "UADMIN", "UTAM", "UENG", "UCUST", "UOTHER"
ACME_CH, BIZ_CH, NOWHERE_CH = "CACME", "CBIZ", "CNOWHERE"


class Chat:
    """Types slash commands as a given user in a given channel."""

    def __init__(self, ctx: AppContext, router: Router) -> None:
        self.ctx = ctx
        self.router = router

    async def __call__(self, user: str, channel: str, line: str, *,
                       can_open_form: bool = False) -> Reply:
        assert line.startswith("/")
        root, _, rest = line[1:].partition(" ")
        req = Request(root=root, text=rest, team_id=TEAM, channel_id=channel, user_id=user,
                      can_open_form=can_open_form)
        return await self.router.dispatch(req, self.ctx)


async def seed(chat: Chat) -> None:
    """Staff, four accounts (one per tier) and two linked groups, all through commands."""
    for line in (
        f"/tam staff add <user:{TAM}> tam",
        f"/tam staff add <user:{ENGINEER}> engineer",
        '/tam account add acme enterprise annual start=2026-01-01 name="Acme Corp"',
        "/tam account add bizco business annual start=2026-01-01 lang=zh",
        "/tam account add devco developer monthly start=2026-11-01",
        "/tam account add basico basic monthly start=2026-11-01",
        f"/tam account assign acme <user:{TAM}>",
    ):
        reply = await chat(ADMIN, NOWHERE_CH, line)
        assert "is not" not in reply.text and "Usage" not in reply.text, (line, reply.text)
    assert "now the support group" in (await chat(TAM, ACME_CH, "/tam link acme")).text
    assert "now the support group" in (await chat(ADMIN, BIZ_CH, "/tam link bizco")).text
