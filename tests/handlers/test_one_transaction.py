"""A command is one transaction: its replay row, the actor, the binding, the use case and the
customer note commit together; a refusal inside leaves only what a refusal should."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from bot.services.base import AppContext
from handlers.core import Request, Router
from storage.repos import Audit, Cases, Inbox
from testkit.chat import ACME_CH, CUSTOMER, OTHER_CUSTOMER, TEAM, Chat


@contextmanager
def transactions(ctx: AppContext) -> Iterator[list[str]]:
    """The transactions begun on the database's engines while inside the block."""
    begun: list[str] = []
    engines = {id(e): e for e in (ctx.db.engine, ctx.db.read_engine)}.values()

    def on_begin(conn: Any) -> None:
        begun.append("write" if conn.engine is ctx.db.engine.sync_engine else "read")

    for engine in engines:
        event.listen(engine.sync_engine, "begin", on_begin)
    try:
        yield begun
    finally:
        for engine in engines:
            event.remove(engine.sync_engine, "begin", on_begin)


async def test_opening_a_case_is_one_transaction(chat: Chat, ctx: AppContext,
                                                 router: Router) -> None:
    req = Request(root="support", text="open S2 checkout API returns 500", team_id=TEAM,
                  channel_id=ACME_CH, user_id=CUSTOMER, event_id="sig:one-transaction")
    with transactions(ctx) as begun:
        reply = await router.dispatch(req, ctx)
    assert "CS-1001" in reply.text
    assert begun == ["write"]  # the actor, the binding, the case, the note, the replay row
    async with ctx.db.read() as s:
        assert await Inbox(s).seen("sig:one-transaction")
        assert (await Cases(s).get(1)) is not None


async def test_a_replayed_command_does_nothing_the_second_time(
        chat: Chat, ctx: AppContext, router: Router) -> None:
    req = Request(root="support", text="open S2 api down", team_id=TEAM, channel_id=ACME_CH,
                  user_id=CUSTOMER, event_id="sig:same-signature")
    first = await router.dispatch(req, ctx)
    second = await router.dispatch(req, ctx)
    assert "CS-1001" in first.text and second.refused
    assert "already received" in second.text
    async with ctx.db.read() as s:
        assert (await Cases(s).get(2)) is None


async def test_a_denied_command_rolls_back_its_work_but_keeps_its_audit_row(
        chat: Chat, ctx: AppContext, router: Router) -> None:
    """A customer of another account names this group's case: refused like a missing case,
    audited in the same one transaction, and the case left as it was."""
    await chat(CUSTOMER, ACME_CH, "/support open S2 api down")
    req = Request(root="support", text="close CS-1001", team_id=TEAM, channel_id="CBIZ",
                  user_id=OTHER_CUSTOMER)
    with transactions(ctx) as begun:
        reply = await router.dispatch(req, ctx)
    assert reply.refused and begun == ["write"]
    async with ctx.db.read() as s:
        case = await Cases(s).get(1)
        denials = await Audit(s).by_action("denied:case")
    assert case is not None and case.status.value == "open"
    assert denials and denials[-1].actor == OTHER_CUSTOMER
