"""Test databases: SQLite always, PostgreSQL (a schema per test) when TEST_DATABASE_URL is
set."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import Database

PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)"))]


def pg_async_url() -> str:
    assert PG_URL
    return "postgresql+asyncpg://" + PG_URL.split("://", 1)[1]


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
