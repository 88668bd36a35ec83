"""The money-out migration goes down and up again on an empty ledger, and refuses to go
down while refunds or payouts exist (the earlier schema could not record them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from shared.db.migrate import alembic_config, upgrade
from shared.db.session import create_database_if_missing, sqlalchemy_url
from tests.support.services import database_url, drop_database


@pytest.fixture
def scratch_database() -> Iterator[str]:
    """A database of its own (named for this run, so a crashed run's is swept away)."""
    base = sqlalchemy_url(database_url())
    url = base.rsplit("/", 1)[0] + f"/{base.rsplit('/', 1)[1]}_mig_{uuid.uuid4().hex[:6]}"
    create_database_if_missing(url)
    yield url
    drop_database(url)


def tables_and_columns(url: str) -> dict[str, set[str]]:
    engine = create_engine(sqlalchemy_url(url))
    try:
        found = inspect(engine)
        return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}
    finally:
        engine.dispose()


def test_money_out_goes_down_and_up_on_an_empty_ledger(scratch_database: str) -> None:
    upgrade(scratch_database)
    command.downgrade(alembic_config(scratch_database), "0006")
    before = tables_and_columns(scratch_database)
    upgrade(scratch_database)
    after = tables_and_columns(scratch_database)

    assert "transfers" not in before
    assert "held_minor" not in before["balances"]
    assert "transfers" in after
    assert {"held_minor"} <= after["balances"]
    assert {"transfer_id"} <= after["ledger_entries"] & after["customer_notifications"]


def test_going_down_is_refused_while_a_transfer_exists(scratch_database: str) -> None:
    upgrade(scratch_database)
    engine = create_engine(sqlalchemy_url(scratch_database))
    merchant = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO merchants (id, name) VALUES (:m, 'm')"), {"m": merchant})
        conn.execute(
            text(
                "INSERT INTO transfers (id, kind, merchant_id, idempotency_key, request_hash,"
                " request_ref, gateway, amount_minor, currency, phone, reason, status)"
                " VALUES (:id, 'payout', :m, 'k', 'h', :ref, 'daraja', 100, 'KES',"
                " '254712345678', 'r', 'pending')"
            ),
            {"id": merchant, "m": merchant, "ref": merchant.hex},
        )
    engine.dispose()

    with pytest.raises(DBAPIError, match="would lose them"):
        command.downgrade(alembic_config(scratch_database), "0006")
    assert "transfers" in tables_and_columns(scratch_database)
