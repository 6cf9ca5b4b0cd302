"""Fixtures every layer's tests share: databases (SQLite always, PostgreSQL when
TEST_DATABASE_URL is set), a controllable clock, the application context, the router, a
recording messenger, a worker on it, a seeded chat, and the fake Slack with a context wired
to it. The classes and helpers behind them live in `testkit/`, which is not a test package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import Settings, load_catalog
from bot.domain.catalog import Catalog
from bot.services.base import AppContext
from bot.worker import Worker
from handlers import build_router
from handlers.core import Router
from storage.db import Database
from testkit.chat import Chat, seed
from testkit.db import BACKENDS, drop_schema, make_database
from testkit.fake_slack import FakeSlack
from testkit.fakes import Clock, RecordingMessenger
from testkit.slack_harness import SECRET, TOKEN


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
    # a fast channel pace keeps tests quick; the pacing test sets Slack's own. Charts render
    # in the test's process (tests/domain/test_charts.py and the report tests use the pool)
    return Settings(admins=frozenset({"UADMIN"}), duty_channel="CDUTY",
                    channel_interval_seconds=0.001, chart_workers=0)


@pytest.fixture
def ctx(db: Database, catalog: Catalog, settings: Settings, clock: Clock) -> AppContext:
    return AppContext(db=db, catalog=catalog, settings=settings, clock=clock)


@pytest.fixture
def router() -> Router:
    return build_router()


@pytest.fixture
def messenger() -> RecordingMessenger:
    return RecordingMessenger()


@pytest.fixture
def worker(ctx: AppContext, messenger: RecordingMessenger) -> Worker:
    """A worker delivering to the recording messenger (the Slack tests override it)."""
    return Worker(ctx, messenger, name="w")


@pytest.fixture
async def chat(ctx: AppContext, router: Router) -> Chat:
    """Slash commands through the router, on the seeded world of `testkit.chat.seed`."""
    c = Chat(ctx, router)
    await seed(c)
    return c


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    f = FakeSlack()
    await f.start()
    yield f
    await f.close()


@pytest.fixture
async def sctx(ctx: AppContext, fake: FakeSlack, router: Router) -> AppContext:
    """The context wired to the fake Slack (its API, token and signing secret), seeded."""
    s = replace(ctx.settings, slack_api_url=fake.api_url, slack_bot_token=TOKEN,
                slack_signing_secret=SECRET)
    c = replace(ctx, settings=s)
    await seed(Chat(c, router))
    return c
