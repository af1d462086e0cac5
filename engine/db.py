"""Database connections and the unit of work: one transaction per request or command.

A unit of work names the person acting (for the audit trail) and either commits
everything it did or nothing. SQLite transactions start with BEGIN IMMEDIATE so that
two writers are serialised by the database instead of failing late; PostgreSQL relies
on row locks and the records' optimistic version counter.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import create_engine, event, func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from models import set_actor

from .exceptions import Conflict


def make_engine(url: str, *, writer: bool = True) -> Engine:
    """An SQLAlchemy engine with the settings each dialect needs for safe concurrent use.

    On SQLite a writer engine starts every transaction with BEGIN IMMEDIATE (writers queue
    for the lock at the start instead of failing at commit); a reader engine uses a plain
    deferred BEGIN, so reads never wait for, or block, a writer (WAL mode).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """Owns the engine and hands out units of work."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.read_engine = make_engine(url, writer=False) if url.startswith("sqlite") else self.engine
        # Reads (pages, API GETs, pre-checks) use `sessionmaker`; changes go through `unit_of_work`.
        self.sessionmaker = sessionmaker(self.read_engine, expire_on_commit=False, autoflush=True)
        self._write_sessionmaker = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextlib.contextmanager
    def unit_of_work(self, actor=None, reason: str | None = None) -> Iterator[Session]:
        """A session whose changes commit together at the end, or roll back on any error.

        A stale record version (someone else committed first) becomes a Conflict.
        """
        session = self._write_sessionmaker()
        if actor is not None:
            set_actor(session, getattr(actor, "id", None), getattr(actor, "username", str(actor)), reason)
        else:
            set_actor(session, None, "system", reason)
        try:
            yield session
            session.commit()
        except StaleDataError as exc:
            session.rollback()
            raise Conflict("Someone else changed this record a moment ago; reload it and try again.") from exc
        except OperationalError as exc:
            session.rollback()
            if "could not serialize" in str(exc) or "deadlock" in str(exc):
                raise Conflict("Someone else changed this record a moment ago; reload it and try again.") from exc
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()


def contains(column, text: str):
    """Case-insensitive "column contains text", with % and _ in the text taken literally
    (a search for "_" finds underscores, not everything)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")
