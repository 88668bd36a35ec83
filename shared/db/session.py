"""Engines, the unit of work, and the translation of driver errors at the edge.

The caller owns the unit of work: ``with db.transaction() as s:`` commits on
success and rolls back on any exception. Connection-level failures, deadlocks
and serialisation failures come out as :class:`DatabaseUnavailable` (transient:
the whole unit may be retried); everything else propagates unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import structlog
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.domain.errors import TransientError

log = structlog.stdlib.get_logger(__name__)
# Serialisation failure, deadlock, lock timeout, statement timeout, server shutting down.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03"})


AFTER_COMMIT = "malipo.after_commit"
LAST_WRITES = "malipo.last_writes"
# A pooled connection idle longer than this is pinged before use (one round trip);
# one in steady use is not: under load a transaction sends no extra statement.
PING_AFTER_IDLE_S = 1.0
_IDLE_SINCE = "malipo.idle_since"


def ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Check a pooled connection before use only when it sat idle for ``idle_s`` or more.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout. Here a connection that
    was checked in less than ``idle_s`` ago is handed out as it is: it was working a
    moment ago. One that has waited longer (where a restarted server or a dropped
    idle connection hides) is pinged with the dialect's own ping, and replaced
    when the ping fails: the caller never sees it. A server that goes away while
    a connection is in steady use fails that unit of work as transient
    (:class:`DatabaseUnavailable`), and SQLAlchemy drops the pool's other
    connections at the same time.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < idle_s:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("idle connection failed its ping") from exc
        if not alive:
            raise DisconnectionError("idle connection failed its ping")


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run ``hook`` once ``session``'s unit of work has committed (never if it rolls back).

    For follow-up messages (the outbox's fast path): a failing hook is logged, the
    commit stands, and whatever the hook would have published is found by a relay.
    """
    session.info.setdefault(AFTER_COMMIT, []).append(hook)


def write_last(session: Session, hook: Callable[[Session], None]) -> None:
    """Run ``hook`` as the unit of work's last statements, once everything else is flushed.

    For rows that many units of work update (a merchant's balance): a row lock is
    held until commit, so taking it last keeps each holder's share short and the
    others waiting less. The hook is inside the transaction: if it fails, nothing
    of the unit commits.
    """
    session.info.setdefault(LAST_WRITES, []).append(hook)


class DatabaseUnavailable(TransientError):
    """PostgreSQL could not complete the unit of work now; retry the whole unit."""


def sqlalchemy_url(url: str) -> str:
    """Accept ``postgresql://`` as well as ``postgresql+psycopg://``; always use psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    return isinstance(orig, psycopg.Error) and orig.sqlstate in _TRANSIENT_SQLSTATES


@contextmanager
def _driver_errors_translated() -> Iterator[None]:
    """Transient driver errors leave as :class:`DatabaseUnavailable`; others unchanged."""
    try:
        yield
    except DBAPIError as exc:
        if is_transient(exc):
            raise DatabaseUnavailable(str(exc.orig or exc)) from exc
        raise


class Database:
    """One engine per process (create it after fork), and units of work over it."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        application_name: str = "malipo",
        lock_timeout_ms: int | None = None,
        statement_timeout_ms: int | None = None,
        ping_idle_s: float = PING_AFTER_IDLE_S,
    ) -> None:
        # A lock or statement that waits too long fails as transient (SQLSTATE 55P03/57014
        # are retried by the unit of work's caller) instead of holding a worker forever.
        options = []
        if lock_timeout_ms:
            options.append(f"-c lock_timeout={int(lock_timeout_ms)}")
        if statement_timeout_ms:
            options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
        connect_args: dict[str, object] = {
            "application_name": application_name,
            "connect_timeout": 5,
        }
        if options:
            connect_args["options"] = " ".join(options)
        self.engine: Engine = create_engine(
            sqlalchemy_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=1800,
            connect_args=connect_args,
        )
        ping_when_idle(self.engine, ping_idle_s)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work: commit on success, roll back on error; then its after-commit hooks.

        Just before the commit, the writes registered with :func:`write_last` run.
        """
        with _driver_errors_translated(), self._sessions.begin() as session:
            yield session
            last: list[Callable[[Session], None]] = session.info.pop(LAST_WRITES, [])
            if last:
                session.flush()
                for write in last:
                    write(session)
            hooks: list[Callable[[], None]] = session.info.pop(AFTER_COMMIT, [])
        for hook in hooks:
            try:
                hook()
            except Exception:  # the commit stands; the outbox relay catches up
                log.warning("after-commit hook failed", exc_info=True)

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection on which every statement commits on its own.

        For a single write to a row that many requests update at once (a rate
        counter): the row's lock is released when the statement ends, not a round
        trip (and a wait for this process's turn to run) later at COMMIT.
        """
        with _driver_errors_translated(), self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def ping(self) -> None:
        with self.transaction() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def create_database_if_missing(url: str) -> bool:
    """Create the database named in ``url`` (connecting to ``postgres``); True if created."""
    target = make_url(sqlalchemy_url(url))
    name = target.database
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if exists:
                return False
            quoted = conn.dialect.identifier_preparer.quote(str(name))
            conn.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        admin.dispose()
