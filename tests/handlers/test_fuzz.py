"""Hostile and malformed input: every command, every role, arbitrary text. Always a clear
reply, never a traceback, and a refusal changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.config import Settings, load_catalog
from bot.services.base import AppContext
from handlers import build_router
from storage.db import Database
from storage.tables import AuditRow, Base
from testkit.chat import (
    ACME_CH,
    ADMIN,
    BIZ_CH,
    CUSTOMER,
    ENGINEER,
    NOWHERE_CH,
    OTHER_CUSTOMER,
    TAM,
    Chat,
    seed,
)
from testkit.fakes import Clock

ROUTER = build_router()
WORDS = sorted({w for c in ROUTER.commands for w in c.path})
TOKENS = [
    "CS-1001", "CS-999999999999", "cs-0", "PR-1001", "PR-1", "AD-1001", "AD-99", "#CS-1001",
    "<user:UNOBODY>", "<user:U0ABC|x>", "@tam", "<#C123|general>", "S1", "s9", "core-down",
    "enterprise", "basic", "annual", "monthly", "2026-12-10", "9999-12-31", "0001-01-01",
    "2026-02-30", "2026-13", "1e309", "-1", "0", "99999999999999999999", "confirm", "force",
    "lang=zh", "lang=xx", "start=2026-01-01", "region=eu-paris", "consumption=12.5",
    "regions=mars", "accounts=acme,zeta", "name=\"Acme", "'", '"', "\\", "\u202e", "🔥",
    "漏洞", "upgrade", "downgrade", "unsubscribe", "availability", "monitoring", "nginx",
    "x" * 5000,
]
# tables a refusal may touch: the audit log (denials are recorded) and the event inbox
AUDIT_TABLES = {"audit_log", "inbox", "alembic_version"}


def command_text() -> st.SearchStrategy[str]:
    token = st.one_of(st.sampled_from(TOKENS + WORDS), st.text(max_size=40))
    return st.one_of(
        st.text(max_size=300),
        st.lists(token, max_size=8).map(" ".join),
        st.tuples(st.sampled_from([" ".join(c.path) for c in ROUTER.commands]),
                  st.lists(token, max_size=6)).map(lambda p: " ".join([p[0], *p[1]])),
    )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Chat, AppContext]]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}")
    await db.upgrade()
    ctx = AppContext(db=db, catalog=load_catalog(None), clock=Clock(),
                     settings=Settings(admins=frozenset({ADMIN}), duty_channel="CDUTY"))
    chat = Chat(ctx, ROUTER)
    await seed(chat)
    await chat(CUSTOMER, ACME_CH, "/support open S2 seeded case")
    await chat(CUSTOMER, ACME_CH, "/support escort 2026-12-20 1")
    yield chat, ctx
    await db.close()


async def snapshot(ctx: AppContext) -> dict[str, int]:
    counts = {}
    async with ctx.db.transaction() as s:
        for table in Base.metadata.sorted_tables:
            if table.name not in AUDIT_TABLES:
                counts[table.name] = int(await s.scalar(
                    select(func.count()).select_from(table)) or 0)
    return counts


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(root=st.sampled_from(ROUTER.roots()), text=command_text(),
       user=st.sampled_from([CUSTOMER, OTHER_CUSTOMER, TAM, ENGINEER, ADMIN, "UNOBODY"]),
       channel=st.sampled_from([ACME_CH, BIZ_CH, NOWHERE_CH]))
async def test_any_command_gets_a_clear_reply_and_refusals_change_nothing(
        world: tuple[Chat, AppContext], root: str, text: str, user: str,
        channel: str) -> None:
    chat, ctx = world
    before = await snapshot(ctx)
    reply = await chat(user, channel, f"/{root} {text}")
    assert reply.text.strip()
    for leak in ("Traceback", "Exception", "sqlalchemy", "asyncpg", "KeyError", "  File \""):
        assert leak not in reply.text
    if reply.refused:
        assert await snapshot(ctx) == before


@pytest.mark.parametrize("line", [
    f"/tam {' '.join(c.path)}" for c in ROUTER.commands if c.root == "tam"])
async def test_a_customer_is_refused_every_tam_subcommand_and_it_is_audited(
        world: tuple[Chat, AppContext], line: str) -> None:
    from storage.repos import Audit

    chat, ctx = world
    before = await snapshot(ctx)
    reply = await chat(CUSTOMER, ACME_CH, line + " acme")
    assert reply.refused and "for support staff" in reply.text
    assert await snapshot(ctx) == before
    async with ctx.db.transaction() as s:
        denials = [a for a in await Audit(s).by_action(f"denied:tam {line.split()[1]}")
                   if a.actor == CUSTOMER]
    assert denials and denials[-1].reason == "not staff"


@pytest.mark.parametrize("line", [
    f"/tam {' '.join(c.path)}" for c in ROUTER.commands
    if c.root == "tam" and c.role is not None and c.role.value == "admin"])
async def test_an_engineer_is_refused_every_admin_command(world: tuple[Chat, AppContext],
                                                          line: str) -> None:
    chat, ctx = world
    before = await snapshot(ctx)
    reply = await chat(ENGINEER, ACME_CH, line)
    assert reply.refused and "needs the admin role" in reply.text
    assert await snapshot(ctx) == before


@pytest.mark.parametrize(("channel", "line"), [
    (BIZ_CH, "/support case CS-1001"), (BIZ_CH, "/support close CS-1001"),
    (BIZ_CH, "/support cancel PR-1001"), (BIZ_CH, "/support acknowledge AD-1001"),
])
async def test_cross_tenant_references_are_denied_and_audited(
        world: tuple[Chat, AppContext], channel: str, line: str) -> None:
    chat, ctx = world
    await chat(TAM, NOWHERE_CH, '/tam advisory virus high "t" "b" accounts=acme confirm')
    before = await snapshot(ctx)
    reply = await chat(OTHER_CUSTOMER, channel, line)
    assert reply.refused and "seeded" not in reply.text
    assert await snapshot(ctx) == before
    async with ctx.db.transaction() as s:
        rows = (await s.scalars(select(AuditRow).where(AuditRow.actor == OTHER_CUSTOMER,
                                                       AuditRow.action.like("denied:%")))).all()
    reason = rows[-1].reason or "" if rows else ""
    assert "another account" in reason or "not sent to this account" in reason


def test_fuzzing_covers_every_command() -> None:
    assert len(WORDS) > 20 and {"open", "plan", "advisory", "report"} <= set(WORDS)
