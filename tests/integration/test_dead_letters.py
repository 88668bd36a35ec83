"""Dead letters: archived as they fail, listed, shown, replayed once, discarded with a reason."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from shared.cli import main
from shared.db.models import AuditRecord, DeadLetter
from shared.db.session import Database
from shared.merchants import issue_api_key
from shared.messages import ApplyCallback, DrainDeadLetters, Publisher
from shared.settings import Settings
from tests.conftest import MerchantAccount
from tests.support.app import ingress_client
from tests.support.rabbit import Rabbit
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker")


def dead_letter_for(db: Database, message_id: str) -> DeadLetter | None:
    with db.transaction() as session:
        return session.scalars(
            select(DeadLetter).where(DeadLetter.message_id == message_id)
        ).one_or_none()


def poisoned_callback(merchant: MerchantAccount) -> ApplyCallback:
    """A callback message whose body is not base64: it can never be processed."""
    return ApplyCallback(
        gateway="daraja",
        merchant_id=str(merchant.id),
        body_b64="!!! not base64 from 254712345678 !!!",
        headers={},
        received_at=datetime.now(UTC).isoformat(),
    )


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), env=dict(os.environ))


def test_a_permanent_failure_is_dead_lettered_at_once_and_archived_with_its_traceback(
    broker: Any, db: Database, merchant: MerchantAccount, rabbit: Rabbit
) -> None:
    message_id = Publisher(broker).send(poisoned_callback(merchant))

    row = wait_until(lambda: dead_letter_for(db, message_id), what="the archive row")

    assert (row.actor, row.queue, row.status, row.retries) == (
        "apply_callback",
        "callbacks",
        "dead",
        0,
    )
    assert "PermanentError" in row.error
    assert "Traceback" in (row.traceback or "")
    assert row.first_failed_at <= row.last_failed_at
    listed = cli("dlq", "list", "--actor", "apply_callback")
    assert listed.exit_code == 0, listed.output
    assert str(row.id) in listed.output
    shown = json.loads(cli("dlq", "show", str(row.id)).output)
    assert "Traceback" in shown["traceback"]
    assert "254712345678" not in json.dumps(shown)


def test_discarding_needs_a_reason_and_is_audited_with_who_and_why(
    broker: Any, db: Database, merchant: MerchantAccount
) -> None:
    message_id = Publisher(broker).send(poisoned_callback(merchant))
    row = wait_until(lambda: dead_letter_for(db, message_id), what="the archive row")

    without_reason = cli("dlq", "discard", str(row.id))
    with_reason = cli(
        "dlq", "discard", str(row.id), "--reason", "garbage from a test", "--operator", "amina"
    )

    assert without_reason.exit_code == 2
    assert "--reason" in without_reason.output
    assert with_reason.exit_code == 0, with_reason.output
    discarded = dead_letter_for(db, message_id)
    assert discarded is not None
    assert (discarded.status, discarded.discard_reason, discarded.handled_by) == (
        "discarded",
        "garbage from a test",
        "amina",
    )
    with db.transaction() as session:
        entry = session.scalars(
            select(AuditRecord).where(
                AuditRecord.subject_type == "dead_letter", AuditRecord.subject_id == str(row.id)
            )
        ).one()
    assert (entry.actor, entry.action, entry.detail["why"]) == (
        "amina",
        "dead_letter.discarded",
        "garbage from a test",
    )


def test_a_replay_that_fails_again_makes_the_same_dead_letter_dead_again(
    broker: Any, db: Database, merchant: MerchantAccount
) -> None:
    # Given a dead letter that can never be processed
    message_id = Publisher(broker).send(poisoned_callback(merchant))
    row = wait_until(lambda: dead_letter_for(db, message_id), what="the archive row")
    archived_before = all_dead_letter_ids(db)

    # When an operator replays it and it fails for good again
    replayed = cli("dlq", "replay", str(row.id), "--reason", "try once more", "--operator", "amina")
    assert replayed.exit_code == 0, replayed.output
    again = wait_until(
        lambda: (r := dead_letter_for(db, message_id)) and r.status == "dead" and r,
        what="the replayed message to fail again",
    )

    # Then it is the same row, dead again, with its replay counted: one history, not two
    assert again.id == row.id
    assert again.replay_count == 1
    assert again.last_failed_at > row.last_failed_at
    assert all_dead_letter_ids(db) == archived_before


def all_dead_letter_ids(db: Database) -> set[int]:
    with db.transaction() as session:
        return set(session.scalars(select(DeadLetter.id)))


def test_copies_left_in_rabbitmq_dead_letter_queues_are_drained_into_the_archive(
    broker: Any, db: Database, rabbit: Rabbit
) -> None:
    message_id = uuid.uuid4().hex
    stray = {
        "queue_name": "payments",
        "actor_name": "initiate_payment",
        "args": [],
        "kwargs": {"payment_id": "x"},
        "options": {"retries": 6, "traceback": "Traceback …\nBoom: it broke"},
        "message_id": message_id,
        "message_timestamp": 1,
    }
    with rabbit.channel() as channel:
        channel.basic_publish("", "payments.XQ", json.dumps(stray).encode())

    Publisher(broker).send(DrainDeadLetters())

    row = wait_until(lambda: dead_letter_for(db, message_id), what="the drained copy")
    assert (row.actor, row.queue, row.retries, row.error) == (
        "initiate_payment",
        "payments",
        6,
        "Boom: it broke",
    )
    wait_until(lambda: rabbit.count("payments.XQ") == 0, what="the XQ emptied")


def test_operators_see_and_handle_dead_letters_through_the_ingress(
    broker: Any, db: Database, settings: Settings, merchant: MerchantAccount
) -> None:
    message_id = Publisher(broker).send(poisoned_callback(merchant))
    row = wait_until(lambda: dead_letter_for(db, message_id), what="the archive row")
    client = ingress_client(settings, db)
    with db.transaction() as session:
        pepper = settings.secret_key.get_secret_value().encode()
        operator = issue_api_key(session, pepper, None, ("ops:read", "ops:write"), label="oncall")
        merchant_ops = issue_api_key(session, pepper, merchant.id, ("ops:read",))
    auth = {"Authorization": f"Bearer {operator}"}

    listed = client.simulate_get(
        "/ops/dead-letters", params={"actor": "apply_callback"}, headers=auth
    )
    shown = client.simulate_get(f"/ops/dead-letters/{row.id}", headers=auth)
    forbidden = client.simulate_get(
        "/ops/dead-letters", headers={"Authorization": f"Bearer {merchant_ops}"}
    )
    no_reason = client.simulate_post(f"/ops/dead-letters/{row.id}/discard", json={}, headers=auth)
    discarded = client.simulate_post(
        f"/ops/dead-letters/{row.id}/discard", json={"reason": "poison"}, headers=auth
    )
    missing = client.simulate_get("/ops/dead-letters/999999999", headers=auth)

    assert row.id in [d["id"] for d in listed.json["dead_letters"]]
    assert shown.json["kwargs"]["body"] == "(not base64)"
    assert (forbidden.status_code, forbidden.json["error"]["code"]) == (403, "forbidden")
    assert (no_reason.status_code, no_reason.json["error"]["code"]) == (400, "invalid_request")
    assert discarded.json == {"id": row.id, "status": "discarded"}
    assert dead_letter_for(db, message_id).handled_by == "api-key:oncall"  # type: ignore[union-attr]
    assert missing.status_code == 404
