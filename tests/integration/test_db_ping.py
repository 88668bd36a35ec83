"""Pooled connections are pinged only after sitting idle; a dead one is replaced or fails."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from shared.db.session import Database, DatabaseUnavailable
from shared.settings import Settings


def backend_pid(database: Database) -> int:
    with database.autocommit() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(admin: Database, pid: int) -> None:
    with admin.autocommit() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    time.sleep(0.05)


@pytest.fixture
def url(db: Database, settings: Settings) -> str:
    return settings.database_url.get_secret_value()


def test_an_idle_connection_whose_backend_died_is_replaced_before_use(
    url: str, db: Database
) -> None:
    database = Database(url, pool_size=1, application_name="malipo-ping-test", ping_idle_s=0.2)
    try:
        first = backend_pid(database)
        terminate(db, first)
        time.sleep(0.3)  # idle past the threshold: pinged, found dead, replaced

        with database.transaction() as session:
            assert session.execute(text("SELECT 1")).scalar_one() == 1
        assert backend_pid(database) != first
    finally:
        database.dispose()


def test_a_connection_in_steady_use_is_not_pinged_and_a_dead_one_fails_as_transient(
    url: str, db: Database
) -> None:
    database = Database(url, pool_size=1, application_name="malipo-ping-test", ping_idle_s=60)
    try:
        first = backend_pid(database)
        terminate(db, first)

        # Used again at once: no ping, so the unit of work meets the dead backend, and
        # says so as a transient error (the caller retries it) ...
        with pytest.raises(DatabaseUnavailable), database.transaction() as session:
            session.execute(text("SELECT 1"))
        # ... and the pool has let the dead connection go.
        assert backend_pid(database) != first
    finally:
        database.dispose()
