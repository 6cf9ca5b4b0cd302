"""Small helpers the repositories share: the dialect's INSERT (for ON CONFLICT), statements
built once and reused, and `run` / `run_many`, which execute such a fixed statement on the
session's driver connection (the hot paths: a command's transaction, the worker's claims)."""

from __future__ import annotations

from collections import namedtuple
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


# --- statements run on the driver's connection -------------------------------------------
#
# A statement through the session costs ~100 µs of CPU in SQLAlchemy's execution machinery
# (compiled-cache lookup, execution context, result metadata, one greenlet switch), ten
# times what SQLite or asyncpg spend on it. The hot paths (a command's one transaction, a
# job's claim and finish) run their fixed statements here instead: compiled once per
# dialect with SQLAlchemy (the same SQL, the same type conversions in and out), then run on
# the session's own DBAPI connection, inside the session's transaction.


class Rows:
    """What a statement returned, shaped like the few `Result` methods the repositories use."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]


class _Compiled:
    """One statement for one dialect and one set of parameter names: its SQL, the order of
    its parameters with their conversions, and how to shape the rows it returns."""

    __slots__ = ("binds", "make_row", "results", "sql", "stmt")

    def __init__(self, stmt: Any, dialect: Any, keys: tuple[str, ...]) -> None:
        self.stmt = stmt  # held so the statement's id stays its own while it is cached
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys) or None)
        if compiled.insert_prefetch or compiled.update_prefetch or \
                compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("statement needs SQLAlchemy's execution (defaults, IN lists)")
        self.sql: str = compiled.string
        procs = compiled._bind_processors
        # values a statement carries itself (literals): used unless a parameter names them
        fixed = {name: b.effective_value for name, b in compiled.binds.items()
                 if not b.required}
        self.binds = [(name, procs.get(name), name in fixed, fixed.get(name))
                      for name in compiled.positiontup or ()]
        columns = compiled._result_columns
        self.results = [c.type._cached_result_processor(dialect, None) for c in columns]
        names = [c.keyname for c in columns]
        self.make_row: Callable[[Any], Any] = \
            namedtuple("Row", names)._make if names else tuple  # type: ignore[attr-defined]

    def args(self, params: dict[str, Any]) -> list[Any]:
        out = []
        for name, proc, has_fixed, fixed in self.binds:
            value = params[name] if name in params or not has_fixed else fixed
            out.append(value if proc is None else proc(value))
        return out

    def shape(self, raw: list[Any]) -> list[Any]:
        results, make = self.results, self.make_row
        if not any(results):
            return [make(r) for r in raw]
        return [make([v if p is None else p(v) for p, v in zip(results, r, strict=True)])
                for r in raw]


_COMPILED: dict[tuple[int, str, tuple[str, ...]], _Compiled] = {}


def _compiled(dialect: Any, stmt: Any, params: dict[str, Any] | None) -> _Compiled:
    keys = tuple(params) if params and stmt.is_dml else ()
    key = (id(stmt), dialect.name, keys)
    found = _COMPILED.get(key)
    if found is None or found.stmt is not stmt:
        found = _COMPILED[key] = _Compiled(stmt, dialect, keys)
    return found


async def _driver(s: AsyncSession) -> _Sqlite | _Pg:
    """The session's DBAPI-level connection, in the session's transaction: begun, and in
    its savepoint when a nested transaction is open (SQLAlchemy emits both lazily, when the
    session's connection is first asked for in that transaction)."""
    current = s.sync_session._transaction
    found = s.info.get("driver")
    if found is not None and found[0] is current:
        return found[1]  # type: ignore[no-any-return]
    conn = await s.connection()  # BEGIN (SQLite: BEGIN IMMEDIATE), or the SAVEPOINT
    if found is not None:
        s.info["driver"] = (current, found[1])
        return found[1]  # type: ignore[no-any-return]
    driver: _Sqlite | _Pg
    if conn.dialect.name == "postgresql":
        adapter: Any = (await conn.get_raw_connection()).dbapi_connection
        # SQLAlchemy's asyncpg adapter opens the transaction with its first statement
        if adapter._transaction is None:
            await adapter._start_transaction()
        driver = _Pg(adapter._connection, conn.dialect)
    else:
        driver = _Sqlite((await conn.get_raw_connection()).driver_connection, conn.dialect)
    s.info["driver"] = (current, driver)
    return driver


class _Sqlite:
    __slots__ = ("aio", "dialect")

    def __init__(self, aio: Any, dialect: Any) -> None:
        self.aio = aio  # the aiosqlite connection (InlineSqlite: runs each call inline)
        self.dialect = dialect

    async def run(self, c: _Compiled, args: list[Any]) -> Rows:
        conn = self.aio._connection  # the sqlite3 connection
        cursor = await self.aio._execute(conn.execute, c.sql, args)
        return Rows(c.shape(cursor.fetchall()) if c.results else [], cursor.rowcount)

    async def run_many(self, c: _Compiled, args: list[list[Any]]) -> None:
        conn = self.aio._connection
        await self.aio._execute(conn.executemany, c.sql, args)


class _Pg:
    __slots__ = ("conn", "dialect")

    def __init__(self, conn: Any, dialect: Any) -> None:
        self.conn = conn  # the asyncpg connection (it caches each statement prepared)
        self.dialect = dialect

    async def run(self, c: _Compiled, args: list[Any]) -> Rows:
        if c.results:
            rows = await self.conn.fetch(c.sql, *args)
            return Rows(c.shape(rows), len(rows))
        status = await self.conn.execute(c.sql, *args)
        tail = status.rsplit(" ", 1)[-1]
        return Rows([], int(tail) if tail.isdigit() else -1)

    async def run_many(self, c: _Compiled, args: list[list[Any]]) -> None:
        await self.conn.executemany(c.sql, args)


async def _ready(s: AsyncSession, stmt: Any, params: dict[str, Any] | None
                 ) -> tuple[_Sqlite | _Pg, _Compiled]:
    """The session's driver connection and the statement compiled for its dialect."""
    if not s.sync_session._is_clean():
        await s.flush()  # what the ORM holds back is written first, as autoflush would
    driver = await _driver(s)
    return driver, _compiled(driver.dialect, stmt, params)


async def run(s: AsyncSession, stmt: Any, params: dict[str, Any] | None = None) -> Rows:
    """Run a fixed Core statement (a module constant or `prepared`, never one built per
    call) on the session's connection, in its transaction."""
    driver, c = await _ready(s, stmt, params)
    return await driver.run(c, c.args(params or {}))


async def run_many(s: AsyncSession, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """Run a fixed Core statement once per row (executemany); every row has the same keys."""
    if not rows:
        return
    driver, c = await _ready(s, stmt, rows[0])
    await driver.run_many(c, [c.args(r) for r in rows])
