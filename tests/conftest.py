"""Shared fixtures: databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is set),
a controllable clock, the application context and a recording messenger."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Settings, load_catalog
from bot.domain.catalog import Catalog
from bot.messages import Button, Message
from bot.services.base import AppContext
from bot.services.messenger import DeliveryError, Posted
from handlers import build_router
from handlers.core import Router
from storage.db import Database

PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)"))]


def pg_async_url() -> str:
    assert PG_URL
    return "postgresql+asyncpg://" + PG_URL.split("://", 1)[1]


class Clock:
    """A clock tests move by hand; starts on an ordinary Chinese working day."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # Tue 10:00 Shanghai

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now




async def make_database(backend: str, tmp_path: Path) -> tuple[Database, str | None]:
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        await db.upgrade()
        return db, None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(pg_async_url())
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await engine.dispose()
    db = Database(pg_async_url(), schema=schema)
    await db.upgrade()
    return db, schema


async def drop_schema(schema: str) -> None:
    engine = create_async_engine(pg_async_url())
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database, schema = await make_database(request.param, tmp_path)
    try:
        yield database
    finally:
        await database.close()
        if schema:
            await drop_schema(schema)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog(None)


@pytest.fixture
def settings() -> Settings:
    # a fast channel pace keeps tests quick; the pacing test sets Slack's own
    return Settings(admins=frozenset({"UADMIN"}), duty_channel="CDUTY",
                    channel_interval_seconds=0.001)


@pytest.fixture
def ctx(db: Database, catalog: Catalog, settings: Settings, clock: Clock) -> AppContext:
    return AppContext(db=db, catalog=catalog, settings=settings, clock=clock)


@pytest.fixture
def router() -> Router:
    return build_router()


@dataclass
class Sent:
    kind: str  # post | dm | update
    target: str
    message: Message
    thread_ts: str | None = None
    key: str | None = None
    ts: str = ""

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def buttons(self) -> list[Button]:
        return list(self.message.buttons)

    @property
    def card(self) -> Message | None:
        """The message when it is a case card (the only titled message a group gets)."""
        return self.message if self.message.title else None

    def field(self, label: str) -> str | None:
        """A card field's value by its (English) label."""
        for sec in self.message.sections:
            for f in sec.fields:
                if f.label == label:
                    return f.value
        return None


@dataclass
class RecordingMessenger:
    """In-memory Messenger for service and worker tests; can fail on demand."""

    sent: list[Sent] = field(default_factory=list)
    failures: list[DeliveryError] = field(default_factory=list)
    counter: int = 0
    uploads: list[tuple[str, str, bytes, str | None]] = field(default_factory=list)
    homes: list[tuple[str, Message]] = field(default_factory=list)

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def _ts(self) -> str:
        self.counter += 1
        return f"1700000000.{self.counter:06d}"

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        self._maybe_fail()
        ts = self._ts()
        if channel.startswith("DM-"):
            self.sent.append(Sent("dm", channel[3:], message, thread_ts, key, ts))
        else:
            self.sent.append(Sent("post", channel, message, thread_ts, key, ts))
        return Posted(channel, ts)

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        for s in self.sent:
            if s.key == key:
                return Posted(channel, s.ts)
        return None

    async def dm_channel(self, user_id: str) -> str:
        return "DM-" + user_id

    async def publish_home(self, user_id: str, home: Message) -> None:
        self.homes.append((user_id, home))

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        self.uploads.append((channel, filename, content, thread_ts))

    async def update(self, channel: str, ts: str, message: Message) -> None:
        self._maybe_fail()
        self.sent.append(Sent("update", channel, message, ts))

    def link(self, channel: str, ts: str) -> str:
        return f"https://example.test/{channel}/{ts}"

    def texts(self, kind: str | None = None, target: str | None = None) -> list[str]:
        return [s.text for s in self.sent
                if (kind is None or s.kind == kind) and (target is None or s.target == target)]


@pytest.fixture
def messenger() -> RecordingMessenger:
    return RecordingMessenger()


def with_settings(ctx: AppContext, **changes: object) -> AppContext:
    return replace(ctx, settings=replace(ctx.settings, **changes))  # type: ignore[arg-type]
