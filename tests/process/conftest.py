"""Fixtures for the child-process tests: a PostgreSQL database of their own (the bots in
child processes connect by URL, so a schema per test is not enough)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from testkit.db import PG_URL, pg_async_url


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)")
    name = f"sb_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(pg_async_url(), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_async_url().rsplit("/", 1)[0] + "/" + name
    yield url
    await admin.dispose()  # a test may have restarted the server: use fresh connections
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()
