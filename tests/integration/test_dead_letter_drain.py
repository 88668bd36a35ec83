"""A replay that fails while PostgreSQL is down leaves its failure only in RabbitMQ's ``.XQ``:
the drain must make its dead letter dead again, and must not revive one for an older copy.

No worker consumes in this module: the replayed message stays on its queue (as if a
worker had taken it, failed for good and could not archive), and the test puts the
``.XQ`` copies RabbitMQ would hold.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from shared.archive import REPLAY, archive, failure_of
from shared.cli import main
from shared.db.models import DeadLetter
from shared.db.session import Database
from tests.support.rabbit import Rabbit

QUEUE = "callbacks"


@pytest.fixture
def quiet_queues(rabbit: Rabbit, broker: Any) -> Iterator[None]:
    rabbit.purge(QUEUE, f"{QUEUE}.XQ")
    yield
    rabbit.purge(QUEUE, f"{QUEUE}.XQ")


def dead_message(message_id: str) -> dict[str, Any]:
    return {
        "queue_name": QUEUE,
        "actor_name": "apply_callback",
        "args": [],
        "kwargs": {"body_b64": "!!! never base64 !!!", "merchant_id": str(uuid.uuid4())},
        "options": {"traceback": "Traceback …\nPermanentError: first failure"},
        "message_id": message_id,
        "message_timestamp": 1,
    }


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), env=dict(os.environ))
    assert result.exit_code == 0, result.output
    return result


def load(db: Database, row_id: int) -> DeadLetter:
    with db.transaction() as session:
        row = session.get(DeadLetter, row_id)
        assert row is not None
        return row


@pytest.mark.usefixtures("quiet_queues")
def test_the_xq_copy_of_a_failed_replay_makes_its_dead_letter_dead_again(
    db: Database, rabbit: Rabbit
) -> None:
    # Given a dead letter an operator replayed (the replay is on its queue)
    message_id = uuid.uuid4().hex
    with db.transaction() as session:
        row_id = archive(session, failure_of(dead_message(message_id), None, datetime.now(UTC)))
    assert row_id is not None
    cli("dlq", "replay", str(row_id), "--reason", "try again", "--operator", "amina")
    [replayed] = rabbit.take_all(QUEUE)
    assert replayed["message_id"] == message_id
    assert replayed["options"][REPLAY] == 1
    assert load(db, row_id).status == "replayed"

    # When RabbitMQ's dead-letter queue holds an older copy (the first failure) and the
    # replay's own failure (which the worker could not archive), and the drain runs
    stale = dead_message(message_id)
    failed_again = {
        **replayed,
        "options": {**replayed["options"], "traceback": "Traceback …\nPermanentError: again"},
    }
    with rabbit.channel() as channel:
        channel.basic_publish("", f"{QUEUE}.XQ", json.dumps(stale).encode())
    cli("dlq", "drain")
    after_stale = load(db, row_id)
    with rabbit.channel() as channel:
        channel.basic_publish("", f"{QUEUE}.XQ", json.dumps(failed_again).encode())
    cli("dlq", "drain")

    # Then the older copy changed nothing, and the replay's failure made the row dead again
    assert after_stale.status == "replayed"
    row = load(db, row_id)
    assert (row.status, row.replay_count, row.error) == ("dead", 1, "PermanentError: again")
    assert rabbit.count(f"{QUEUE}.XQ") == 0
