"""Engine, sessions and migrations for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from importlib import resources
from typing import Any

import aiosqlite
from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

JOBS_CHANNEL = "supportbot_jobs"
# how often a worker on SQLite looks whether another process committed (`commits_watched`)
COMMIT_WATCH_SECONDS = 0.05

# The transaction this task is in, if any: a command's work (its replay row, the actor, the
# binding, the use case, the customer note) shares one transaction that the router opens.
# set in the worker's tasks: on SQLite their transactions let commands waiting for the one
# writer go first (for at most BACKGROUND_YIELD seconds each), so a backlog of outbox work
# does not queue ahead of a user's command
BACKGROUND: ContextVar[bool] = ContextVar("supportbot_background_writer", default=False)
BACKGROUND_YIELD = 1.0
_CURRENT: ContextVar[tuple[Database, AsyncSession] | None] = ContextVar(
    "supportbot_transaction", default=None)


class Database:
    """One database: an async engine, a session factory, the job wake-up signal."""

    def __init__(self, url: str, *, echo: bool = False, schema: str | None = None) -> None:
        """`schema` (PostgreSQL only) puts every table in that schema: isolated test runs."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            if ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:"):
                raise ValueError("use a file for SQLite; in-memory databases are per-connection")
            # statements run on the event loop's thread (microseconds on a local file), not
            # one thread hop each: see InlineSqlite
            path = make_url(url).database
            assert path is not None
            kwargs["async_creator"] = functools.partial(_inline_sqlite, path)
            # a few pooled connections: opening one (and its PRAGMAs) costs more than a query;
            # writers still take turns through BEGIN IMMEDIATE
            kwargs["pool_size"] = 4
            kwargs["max_overflow"] = 4
        else:
            # a dozen per process at most: a deployment runs several (web and worker, replicas)
            # on a server that takes 100 in all by default; a command waits for a free one
            kwargs["pool_size"] = 8
            kwargs["max_overflow"] = 4
            if schema:
                kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if not self.is_sqlite:
            _ping_when_idle(self.engine)
        if self.is_sqlite:
            _configure_sqlite(self.engine, immediate=True)
            # readers on their own connections with a plain BEGIN: WAL lets them run beside
            # the one writer instead of queueing behind it
            self.read_engine: AsyncEngine = create_async_engine(url, **kwargs)
            _configure_sqlite(self.read_engine, immediate=False)
        else:
            self.read_engine = self.engine
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        # set when a transaction that enqueued jobs commits: wakes this process's worker
        self.jobs_changed = asyncio.Event()
        # SQLite has one writer: queue this process's transactions here, in order, instead of
        # letting them collide on the file lock and back off in SQLite's busy handler
        self._writer = asyncio.Lock() if self.is_sqlite else None
        self._foreground = 0  # transactions not from the worker waiting for or holding it
        self._foreground_idle = asyncio.Event()
        self._foreground_idle.set()

    @asynccontextmanager
    async def transaction(self, *, savepoint: bool = True) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error.

        Inside a transaction already open in this task (a command's), it is a savepoint of
        that transaction instead: its work commits with the command, and an error inside
        (a refusal, a conflict it expects) undoes only its own part, as a transaction of its
        own would have. `savepoint=False` joins the open transaction without one: for work
        that raises nothing once it has written (its checks come first), so there is no
        part of its own to undo; an error then ends the whole transaction."""
        current = _CURRENT.get()
        if current is not None and current[0] is self and not savepoint:
            yield current[1]
            return
        if current is not None and current[0] is self:
            session = current[1]
            # what the work notes on the session (jobs enqueued, a NOTIFY sent) is undone
            # with it: a job it queued must be queued again by later work, not skipped
            noted = {k: copy.copy(v) for k, v in session.info.items()}
            try:
                async with session.begin_nested():
                    yield session
            except BaseException:
                session.info.clear()
                session.info.update(noted)
                raise
            return
        if self._writer is None:
            async with self.sessions() as session, session.begin():
                token = _CURRENT.set((self, session))
                try:
                    yield session
                finally:
                    _CURRENT.reset(token)
        else:
            async with self._write_turn(), self.sessions() as session, session.begin():
                token = _CURRENT.set((self, session))
                try:
                    yield session
                finally:
                    _CURRENT.reset(token)
        if session.info.get("jobs_enqueued"):
            self.jobs_changed.set()

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        """This process's turn at SQLite's one writer. A background (worker) transaction
        lets the commands waiting go first, up to `BACKGROUND_YIELD` seconds."""
        writer = self._writer
        assert writer is not None
        if not BACKGROUND.get():
            self._foreground += 1
            self._foreground_idle.clear()
            try:
                async with writer:
                    yield
            finally:
                self._foreground -= 1
                if not self._foreground:
                    self._foreground_idle.set()
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + BACKGROUND_YIELD
        while True:
            left = until - loop.time()
            if self._foreground and left > 0:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._foreground_idle.wait(), left)
                continue
            await writer.acquire()
            if not self._foreground or loop.time() >= until:
                break
            writer.release()  # a command queued meanwhile: it goes first
        try:
            yield
        finally:
            writer.release()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction: it writes nothing, so on SQLite it needs no write lock.
        Inside a transaction of this task, it reads there (and sees what it wrote)."""
        current = _CURRENT.get()
        if current is not None and current[0] is self:
            yield current[1]
            return
        async with self.read_sessions() as session, session.begin():
            yield session
            if session.new or session.dirty or session.deleted:
                raise RuntimeError("a read transaction tried to write")

    @asynccontextmanager
    async def commits_watched(self, interval: float = COMMIT_WATCH_SECONDS
                              ) -> AsyncIterator[None]:
        """SQLite only, inside the block: set `jobs_changed` within `interval` of a commit
        by any other connection, so a worker in another process than the commands' (the
        worker role) wakes as soon as they enqueue jobs; PostgreSQL has LISTEN/NOTIFY.

        `PRAGMA data_version` on a connection of its own, which never writes, changes when
        another connection (this process's or another's) commits a change; a claim that
        found nothing changes nothing. The look (a read of the WAL index) runs on a thread
        of its own: a timed wake-up there costs less than a timer on the event loop (about
        150 against 190 microseconds of CPU a look, measured), and the loop is woken only
        when something changed. A wake-up for a commit that queued no job costs the worker
        one empty claim."""
        if not self.is_sqlite:
            raise RuntimeError("commits_watched is for SQLite; PostgreSQL workers LISTEN")
        path = make_url(self.url).database
        assert path is not None
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        ready: asyncio.Future[None] = loop.create_future()

        def changed() -> None:
            self.jobs_changed.set()

        def started(error: BaseException | None) -> None:
            if ready.done():
                return
            if error is not None:
                ready.set_exception(error)
            else:
                ready.set_result(None)

        def watch() -> None:
            try:
                conn = sqlite3.connect(path, timeout=0, isolation_level=None)
                conn.execute("PRAGMA query_only=ON")
                seen = conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as exc:
                loop.call_soon_threadsafe(started, exc)
                return
            loop.call_soon_threadsafe(started, None)
            try:
                while not stop.wait(interval):
                    try:
                        version = conn.execute("PRAGMA data_version").fetchone()[0]
                    except sqlite3.OperationalError:
                        # busy for a moment (another process recovering the WAL): the next
                        # look; the worker's safety poll covers a longer outage
                        continue
                    if version != seen:
                        seen = version
                        loop.call_soon_threadsafe(changed)
            finally:
                conn.close()

        thread = threading.Thread(target=watch, name="sqlite-commit-watch", daemon=True)
        thread.start()
        try:
            await ready  # the first look is taken: every later commit is seen
            yield
        finally:
            stop.set()
            thread.join()  # at once: the thread waits on `stop` and never on a lock

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # readiness reports any failure as "not ready"
            log.warning("database ping failed", exc_info=True)
            return False

    async def upgrade(self) -> None:
        """Apply Alembic migrations up to head (the only way the schema is made)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_run_upgrade)

    async def close(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


BUSY_TIMEOUT_MS = 30_000


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY,
                                                       sqlite3.SQLITE_LOCKED) or \
        "database is locked" in str(exc)


def _patiently(conn: sqlite3.Connection, fn: Callable[[], Any]) -> Any:
    """Run `fn` waiting for SQLite's lock as long as the busy timeout allows (on aiosqlite's
    thread: the event loop goes on meanwhile)."""
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        return fn()
    finally:
        conn.execute("PRAGMA busy_timeout=0")


class InlineSqlite(aiosqlite.Connection):
    """aiosqlite without a thread hop per call: each call runs at once on the caller's
    thread. A statement on a local SQLite file takes microseconds, far less than handing it
    to a thread and waking the event loop for its answer (which cost most of a command's
    CPU). The connection waits for no lock on this thread (busy timeout 0): when another
    process holds the database (SQLITE_BUSY), that call is handed to aiosqlite's own thread
    with the busy timeout, and the event loop keeps serving meanwhile. Within a process,
    writers already take turns (`Database._writer`), and WAL readers never wait for them.
    """

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
        # a statement refused with SQLITE_BUSY did nothing: run it again, waiting
        return await super()._execute(  # type: ignore[no-untyped-call]
            _patiently, self._connection, functools.partial(fn, *args, **kwargs))


async def _inline_sqlite(path: str) -> aiosqlite.Connection:
    def connector() -> sqlite3.Connection:
        # used from the event loop's thread after aiosqlite's thread made it
        return sqlite3.connect(path, timeout=0, check_same_thread=False)

    conn = InlineSqlite(connector, 64)
    conn._thread.daemon = True  # as SQLAlchemy's aiosqlite dialect does
    return await conn


def _configure_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    sync = engine.sync_engine

    @event.listens_for(sync, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # take over transaction control from the driver so BEGIN IMMEDIATE can be issued
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # no waiting on the event loop's thread: InlineSqlite waits on another one
        cur.execute("PRAGMA busy_timeout=0")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        if not immediate:
            # reader connections cannot write: a write there would bypass the writer queue
            cur.execute("PRAGMA query_only=ON")
        cur.close()

    @event.listens_for(sync, "begin")
    def _on_begin(conn: Connection) -> None:
        # writers take the write lock up front: no SQLITE_BUSY on a read-to-write upgrade
        # mid-way, and job claims are serialized across processes
        # on the DBAPI cursor: SQLAlchemy's execution context would cost more than the BEGIN
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        finally:
            cursor.close()


IDLE_PING_SECONDS = 5.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled PostgreSQL connection before use when it has been idle a while (the
    server may have restarted or dropped it meanwhile); a busy process, whose connections
    were used a moment ago, spares the round trip that a ping on every checkout costs.
    A dead one is replaced: the pool tries another connection."""
    sync = engine.sync_engine

    @event.listens_for(sync, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        now = time.monotonic()
        last = record.info.get("checked_out_at")
        record.info["checked_out_at"] = now
        if last is None or now - last < IDLE_PING_SECONDS:
            return
        try:
            alive = sync.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the driver's own error for a dead connection
            raise DisconnectionError(f"connection lost while idle: {exc}") from exc
        if not alive:
            raise DisconnectionError("connection lost while idle")


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("storage") / "migrations"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _run_upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")
