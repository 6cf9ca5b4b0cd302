"""Small helpers the repositories share: the dialect's INSERT (for ON CONFLICT) and
statements built once and reused (their compiled form is cached by SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

_BUILT: dict[tuple[str, str], Any] = {}


def dialect_name(s: AsyncSession) -> str:
    return s.get_bind().dialect.name


def core(mapped: Any) -> Table:
    """The Table of a mapped class: statements on it are Core statements, which a session
    runs without the ORM's bulk-insert and unit-of-work machinery."""
    table = mapped.__table__
    assert isinstance(table, Table)
    return table


def insert_for(dialect: str, table: Any) -> Any:
    """INSERT with the dialect's ON CONFLICT clauses (PostgreSQL or SQLite); give it
    `core(Row)` for a Core statement."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def prepared(s: AsyncSession, name: str, build: Callable[[str], Any]) -> Any:
    """The statement `name` for this session's dialect, built once: building a statement
    and its cache key costs more than running it on a hot path."""
    dialect = dialect_name(s)
    stmt = _BUILT.get((dialect, name))
    if stmt is None:
        stmt = _BUILT[(dialect, name)] = build(dialect)
    return stmt
