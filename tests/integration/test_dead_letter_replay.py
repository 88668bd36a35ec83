"""Operators replay dead letters (by filter from the CLI, one by one through the ingress) and
read the workers' retry policies.

The workers run as a real process with the short retry policy and lock timeout of
test_retries (IMPATIENT), so a callback whose payment another transaction keeps locked
is dead-lettered within a second or two. The process is stopped while an operator
replays, so what a replay enqueues can be looked at in RabbitMQ before anything
consumes it; then it is started again and the replays are processed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from shared.archive import REPLAY, AlreadyReplayed, NotReplayable, archive, failure_of, replay
from shared.db.models import AuditRecord, DeadLetter, PaymentIntent
from shared.db.session import Database
from shared.dead_letter_replay import HeldMessages
from shared.merchants import issue_api_key
from shared.messages import ALL_ACTORS, INITIATE_PAYMENT, ApplyCallback, PollPayment, Publisher
from shared.settings import Settings
from tests.conftest import ApiClient, MerchantAccount
from tests.integration.test_dead_letters import cli, dead_letter_for, poisoned_callback
from tests.integration.test_retries import IMPATIENT, applied_events
from tests.support.app import ingress_client
from tests.support.processes import ManagedProcess, worker_process
from tests.support.rabbit import Rabbit
from tests.support.seed import (
    SeededPayment,
    ledger_state,
    seed_submitted_payments,
    success_callback,
)
from tests.support.waiting import wait_until

# Retry options that describe a past run of a message; a replay must not carry them.
RUN_OPTIONS = ("retries", "traceback", "first_failed_at")


@pytest.fixture(scope="module")
def replay_workers(
    test_env: dict[str, str], log_dir: Path, rabbit: Rabbit
) -> Iterator[ManagedProcess]:
    # Nobody consumes yet: leftovers of earlier modules (a delayed retry, say) would keep
    # the callbacks queues busy after these tests' messages are processed.
    rabbit.purge("callbacks", "callbacks.DQ")
    process = worker_process({**test_env, **IMPATIENT}, log_dir, name="replay-worker")
    yield process
    process.stop()


@pytest.fixture
def workers(replay_workers: ManagedProcess) -> ManagedProcess:
    """The impatient worker process, running when the test starts."""
    if not replay_workers.alive():
        replay_workers.start()
    return replay_workers


# -- helpers ---------------------------------------------------------------------------------


@contextmanager
def locked(db: Database, payments: list[SeededPayment]) -> Iterator[None]:
    """Hold the payments' rows locked (as a long transaction would) until the block ends."""
    blocker = db.engine.connect()
    blocker.begin()
    try:
        for payment in payments:
            blocker.execute(
                text("SELECT 1 FROM payment_intents WHERE id = :id FOR UPDATE"),
                {"id": payment.id},
            )
        yield
    finally:
        blocker.rollback()
        blocker.close()


def callback_message(
    merchant: MerchantAccount, payment: SeededPayment, receipt: str
) -> ApplyCallback:
    """The success callback for a seeded payment, as the ingress enqueues it."""
    return ApplyCallback(
        gateway="daraja",
        merchant_id=str(merchant.id),
        body_b64=base64.b64encode(success_callback(payment, receipt)).decode(),
        headers={"content-type": "application/json"},
        received_at="2026-11-22T10:30:00+00:00",
    )


def archived(db: Database, message_id: str) -> DeadLetter:
    return wait_until(
        lambda: dead_letter_for(db, message_id), timeout_s=60, what=f"dead letter {message_id}"
    )


def peek(rabbit: Rabbit, queue: str) -> list[dict[str, Any]]:
    """The messages ready in ``queue``, left in it (unacknowledged, requeued on close)."""
    bodies = []
    with rabbit.channel() as channel:
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            bodies.append(json.loads(body))
    return bodies


def carrying(messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("kwargs") == kwargs]


def dead_letters_about(db: Database, payment: SeededPayment) -> list[DeadLetter]:
    """Every archived apply_callback whose callback body names the payment."""
    found = []
    with db.transaction() as session:
        for row in session.scalars(select(DeadLetter).where(DeadLetter.actor == "apply_callback")):
            body_b64 = str(row.message.get("kwargs", {}).get("body_b64", ""))
            try:
                body = base64.b64decode(body_b64, validate=True)
            except ValueError:
                continue  # a poisoned message
            if payment.checkout_id.encode() in body:
                found.append(row)
    return found


def audit_of(db: Database, dead_letter_ids: list[int]) -> list[AuditRecord]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditRecord)
                .where(
                    AuditRecord.subject_type == "dead_letter",
                    AuditRecord.subject_id.in_([str(i) for i in dead_letter_ids]),
                )
                .order_by(AuditRecord.id)
            )
        )


def reload(db: Database, row: DeadLetter) -> DeadLetter:
    with db.transaction() as session:
        fresh = session.get(DeadLetter, row.id)
    assert fresh is not None
    return fresh


def status_of(db: Database, payment: SeededPayment) -> str:
    with db.transaction() as session:
        intent = session.get(PaymentIntent, payment.id)
    assert intent is not None
    return intent.status


def listed_ids(stdout: str) -> set[int]:
    """The ids ``malipo dlq list`` printed (first column; its count goes to stderr)."""
    firsts = [line.split()[0] for line in stdout.splitlines() if line.strip()]
    return {int(first) for first in firsts if first.isdigit()}


# -- 1. malipo dlq replay --all with filters ---------------------------------------------------


def test_replaying_by_filter_re_enqueues_only_the_matching_dead_letters_and_applies_once(
    broker: Any,
    db: Database,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    test_env: dict[str, str],
    workers: ManagedProcess,
) -> None:
    # Given two success callbacks dead-lettered after their payments stayed locked ...
    tag = f"f{uuid.uuid4().hex[:8]}"
    first, second = seed_submitted_payments(db, merchant.id, 2, tag=tag)
    publisher = Publisher(broker)
    with locked(db, [first, second]):
        locked_ids = [
            publisher.send(callback_message(merchant, first, f"R{tag}A")),
            publisher.send(callback_message(merchant, second, f"R{tag}B")),
        ]
        lock_timeouts = [archived(db, message_id) for message_id in locked_ids]
    # ... and dead letters of the same actor with another error, and of other actors and queues
    poisoned = archived(db, publisher.send(poisoned_callback(merchant)))
    malformed = archived(db, publisher.enqueue(INITIATE_PAYMENT, {"payment_id": tag}))
    bad_poll = archived(db, publisher.send(PollPayment(payment_id=f"not-a-payment-{tag}")))
    others = [poisoned, malformed, bad_poll]
    for row in lock_timeouts:
        assert (row.actor, row.queue, row.status, row.retries) == (
            "apply_callback",
            "callbacks",
            "dead",
            2,  # IMPATIENT's max_retries
        )
        assert "lock timeout" in row.error
        assert row.message["options"].get("retries"), "the archived message carries its retries"
    assert [(r.actor, r.queue) for r in others] == [
        ("apply_callback", "callbacks"),
        ("initiate_payment", "payments"),
        ("poll_payment", "polls"),
    ]
    assert not any("lock timeout" in r.error for r in others)
    assert ledger_state(db, merchant.id).entries == 0
    workers.stop()  # nothing consumes while the operator replays

    # When an operator replays every apply_callback dead letter whose error says "lock timeout"
    replayed = cli(
        "dlq",
        "replay",
        "--all",
        "--actor",
        "apply_callback",
        "--error",
        "lock timeout",
        "--operator",
        "amina",
        "--reason",
        "lock released",
    )

    # Then exactly those two are re-enqueued on their queue, with their retries reset
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 2 dead letter(s)" in replayed.output
    waiting = peek(rabbit, "callbacks")
    assert len(waiting) == 2
    for row in lock_timeouts:
        [copy] = carrying(waiting, row.message["kwargs"])
        assert (copy["actor_name"], copy["queue_name"]) == ("apply_callback", "callbacks")
        assert not set(RUN_OPTIONS) & set(copy["options"]), copy["options"]
    assert carrying(waiting, poisoned.message["kwargs"]) == []
    assert carrying(peek(rabbit, "payments"), malformed.message["kwargs"]) == []
    assert carrying(peek(rabbit, "polls"), bad_poll.message["kwargs"]) == []
    # And they are marked replayed by amina; the others are still dead, untouched
    for row in lock_timeouts:
        now = reload(db, row)
        assert (now.status, now.replay_count, now.handled_by) == ("replayed", 1, "amina")
        assert now.replayed_at is not None
    for row in others:
        now = reload(db, row)
        assert (now.status, now.replay_count, now.handled_by) == ("dead", 0, None)
    still_dead = cli("dlq", "list", "--status", "dead", "--limit", "10000")
    assert still_dead.exit_code == 0, still_dead.output
    assert {r.id for r in others} <= listed_ids(still_dead.stdout)
    assert not {r.id for r in lock_timeouts} & listed_ids(still_dead.stdout)
    # And each replay is in the audit log with who and why; nothing for the others
    entries = audit_of(db, [r.id for r in lock_timeouts + others])
    assert sorted(
        (e.subject_id, e.actor, e.action, e.detail["why"], e.detail["queue"]) for e in entries
    ) == sorted(
        (str(r.id), "amina", "dead_letter.replayed", "lock released", "callbacks")
        for r in lock_timeouts
    )
    assert {e.detail["message_id"] for e in entries} == {r.message_id for r in lock_timeouts}

    # When the same filter is replayed again, and the first dead letter once more by its id
    # (forced: it was replayed already)
    again = cli("dlq", "replay", "--all", "--actor", "apply_callback", "--error", "lock timeout")
    once_more = cli(
        "dlq",
        "replay",
        str(lock_timeouts[0].id),
        "--force",
        "--operator",
        "baraka",
        "--reason",
        "second look",
    )
    assert again.exit_code == 0, again.output
    assert "replayed 0 dead letter(s)" in again.output  # replayed ones are no longer selected
    assert "refused" not in again.output
    assert once_more.exit_code == 0, once_more.output
    assert "replayed 1 dead letter(s)" in once_more.output
    assert len(carrying(peek(rabbit, "callbacks"), lock_timeouts[0].message["kwargs"])) == 2
    unsettled = rabbit.unsettled()
    assert unsettled.get("callbacks", 0) + unsettled.get("callbacks.DQ", 0) == 3
    workers.start()

    # Then, once the callbacks queue is fully processed, each payment was credited exactly once
    wait_until(lambda: ledger_state(db, merchant.id).entries >= 2, timeout_s=60, what="the credits")
    rabbit.wait_settled("callbacks")
    ledger = ledger_state(db, merchant.id)
    assert (ledger.entries, ledger.distinct_intents, ledger.total_minor) == (
        2,
        2,
        first.amount_minor + second.amount_minor,
    )
    for payment in (first, second):
        assert status_of(db, payment) == "succeeded"
        assert applied_events(db, payment.id) == 1
        assert len(dead_letters_about(db, payment)) == 1  # no replayed copy failed again
    first_letter = reload(db, lock_timeouts[0])
    assert (first_letter.status, first_letter.replay_count, first_letter.handled_by) == (
        "replayed",
        2,
        "baraka",
    )
    second_replay = [e for e in audit_of(db, [first_letter.id]) if e.actor == "baraka"]
    assert [(e.action, e.detail["why"], e.detail.get("forced")) for e in second_replay] == [
        ("dead_letter.replayed", "second look", True)
    ]
    for row in others:
        assert reload(db, row).status == "dead"


# -- 2. POST /ops/dead-letters/{id}/replay ----------------------------------------------------


def test_replaying_through_the_ingress_needs_ops_write_and_is_audited(
    broker: Any,
    db: Database,
    settings: Settings,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    test_env: dict[str, str],
    ingress_server: ManagedProcess,
    api: ApiClient,
    workers: ManagedProcess,
) -> None:
    # Given a callback dead-lettered while its payment was locked, and a discarded dead letter
    tag = f"i{uuid.uuid4().hex[:8]}"
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=tag)
    publisher = Publisher(broker)
    with locked(db, [payment]):
        row = archived(db, publisher.send(callback_message(merchant, payment, f"R{tag}")))
    poisoned = archived(db, publisher.send(poisoned_callback(merchant)))
    assert cli("dlq", "discard", str(poisoned.id), "--reason", "garbage").exit_code == 0
    workers.stop()
    # And an operator key that may only read, and one that may also act
    with db.transaction() as session:
        pepper = settings.secret_key.get_secret_value().encode()
        reader = issue_api_key(session, pepper, None, ("ops:read",), label=f"viewer-{tag}")
        writer = issue_api_key(
            session, pepper, None, ("ops:read", "ops:write"), label=f"oncall-{tag}"
        )
    path = f"/ops/dead-letters/{row.id}/replay"
    body = {"reason": "payment lock released"}

    # When the read-only key asks for a replay
    refused = api.post(path, json=body, headers={"Authorization": f"Bearer {reader}"})

    # Then it is refused, and nothing is enqueued, marked or audited
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "forbidden"
    assert carrying(peek(rabbit, "callbacks"), row.message["kwargs"]) == []
    assert (reload(db, row).status, reload(db, row).replay_count) == ("dead", 0)
    assert audit_of(db, [row.id]) == []

    # When the ops:write key replays it, and tries the discarded one
    writer_auth = {"Authorization": f"Bearer {writer}"}
    accepted = api.post(path, json=body, headers=writer_auth)
    discarded = api.post(f"/ops/dead-letters/{poisoned.id}/replay", json=body, headers=writer_auth)

    # Then the replay is accepted, enqueued on its queue with retries reset, and audited
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"id": row.id, "status": "replayed"}
    [copy] = carrying(peek(rabbit, "callbacks"), row.message["kwargs"])
    assert (copy["actor_name"], copy["queue_name"]) == ("apply_callback", "callbacks")
    assert not set(RUN_OPTIONS) & set(copy["options"]), copy["options"]
    now = reload(db, row)
    assert (now.status, now.replay_count, now.handled_by) == (
        "replayed",
        1,
        f"api-key:oncall-{tag}",
    )
    [entry] = audit_of(db, [row.id])
    assert (entry.actor, entry.action, entry.detail["why"], entry.detail["message_id"]) == (
        f"api-key:oncall-{tag}",
        "dead_letter.replayed",
        "payment lock released",
        row.message_id,
    )
    # And the discarded one stays discarded
    assert discarded.status_code == 400, discarded.text
    assert discarded.json()["error"]["code"] == "invalid_request"
    assert reload(db, poisoned).status == "discarded"
    assert carrying(peek(rabbit, "callbacks"), poisoned.message["kwargs"]) == []

    # And once processed, the payment is credited once
    workers.start()
    wait_until(lambda: status_of(db, payment) == "succeeded", timeout_s=60, what="the payment")
    rabbit.wait_settled("callbacks")
    assert ledger_state(db, merchant.id).entries == 1
    assert applied_events(db, payment.id) == 1


# -- 3. malipo workers --show-policy ----------------------------------------------------------


def show_policy(env: dict[str, str], **overrides: str) -> subprocess.CompletedProcess[str]:
    """``malipo workers --show-policy`` as a process: were the flag ignored, the command
    would replace its process with the workers, so it must not run inside pytest's."""
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "workers", "--show-policy"],
        env={**env, **overrides},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def policy_rows(output: str) -> dict[str, tuple[str, ...]]:
    """actor -> (max retries, min backoff, max backoff, time limit), as printed."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) == 5 and cells[1].isdigit():
            rows[cells[0]] = tuple(cells[1:])
    return rows


def test_show_policy_prints_every_actors_policy_and_reflects_overrides_from_settings(
    test_env: dict[str, str],
) -> None:
    base = {k: v for k, v in {**os.environ, **test_env}.items() if k != "MALIPO_RETRY_POLICIES"}

    # When an operator asks for the policies with no overrides
    defaults = show_policy(base)

    # Then every actor has a line: max retries, backoff bounds and time limit
    assert defaults.returncode == 0, defaults.stderr
    header = defaults.stdout.splitlines()[0].split()
    assert header[:3] == ["actor", "max", "retries"]
    assert "time" in header
    printed = policy_rows(defaults.stdout)
    assert set(printed) == {spec.actor_name for spec in ALL_ACTORS}
    assert printed["apply_callback"] == ("25", "0.5s", "300s", "60s")
    assert printed["initiate_payment"] == ("6", "1s", "20s", "120s")

    # When MALIPO_RETRY_POLICIES changes apply_callback's policy
    override = {
        "apply_callback": {
            "max_retries": 3,
            "min_backoff_ms": 250,
            "max_backoff_ms": 1500,
            "time_limit_ms": 5000,
        }
    }
    changed = show_policy(base, MALIPO_RETRY_POLICIES=json.dumps(override))

    # Then the table shows the new policy for that actor and the others unchanged
    assert changed.returncode == 0, changed.stderr
    after = policy_rows(changed.stdout)
    assert after["apply_callback"] == ("3", "0.25s", "1.5s", "5s")
    assert {a: p for a, p in after.items() if a != "apply_callback"} == {
        a: p for a, p in printed.items() if a != "apply_callback"
    }

    # And an override naming no actor, or no field, is refused with its name
    unknown_actor = show_policy(
        base, MALIPO_RETRY_POLICIES=json.dumps({"apply_callbacks": {"max_retries": 3}})
    )
    unknown_field = show_policy(
        base, MALIPO_RETRY_POLICIES=json.dumps({"apply_callback": {"retries": 3}})
    )
    assert unknown_actor.returncode == 1, unknown_actor.stdout
    assert "apply_callbacks" in unknown_actor.stderr
    assert unknown_field.returncode == 1, unknown_field.stdout
    assert "MALIPO_RETRY_POLICIES" in unknown_field.stderr
    assert unknown_actor.stdout == unknown_field.stdout == ""  # no table


# -- 4. a dead letter already replayed is replayed again only if forced ------------------------


@pytest.fixture
def quiet_queue(broker: Any, rabbit: Rabbit) -> Iterator[str]:
    """A queue of this test's own that nothing consumes: what a replay publishes stays in it."""
    queue = f"replay-force-{uuid.uuid4().hex[:8]}"
    yield queue
    with rabbit.channel() as channel:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)


def quiet_dead_letter(db: Database, queue: str) -> DeadLetter:
    """An apply_callback message archived as failed for good on ``queue`` (never run here)."""
    message = {
        "queue_name": queue,
        "actor_name": "apply_callback",
        "args": [],
        "kwargs": {"gateway": "daraja", "merchant_id": str(uuid.uuid4()), "body_b64": "e30="},
        "options": {"retries": 2},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": 0,
    }
    with db.transaction() as session:
        row_id = archive(session, failure_of(message, RuntimeError("lock timeout"), now()))
        assert row_id is not None
        row = session.get(DeadLetter, row_id)
    assert row is not None
    return row


def now() -> datetime:
    return datetime.now(UTC)


def replayed_by(
    broker: Any, db: Database, row: DeadLetter, operator: str, **force: bool
) -> HeldMessages:
    """``shared.archive.replay`` in its own transaction; what it published is held, not sent."""
    held = HeldMessages(Publisher(broker))
    with db.transaction() as session:
        assert replay(session, held, row.id, operator=operator, reason="lock released", **force)
    return held


def test_a_dead_letter_already_replayed_is_refused_publishing_and_auditing_nothing(
    broker: Any, db: Database
) -> None:
    # Given a dead letter amina replayed
    row = quiet_dead_letter(db, "never-published")
    replayed_by(broker, db, row, "amina")
    first = reload(db, row)
    assert first.replayed_at is not None

    # When baraka replays it again without force
    held = HeldMessages(Publisher(broker))
    with pytest.raises(NotReplayable) as refused, db.transaction() as session:
        replay(session, held, row.id, operator="baraka", reason="second look")

    # Then it is refused, saying when and by whom it was replayed and that force would do it
    assert isinstance(refused.value, AlreadyReplayed)
    said = str(refused.value)
    assert f"dead letter {row.id} was already replayed" in said
    assert first.replayed_at.isoformat(timespec="seconds") in said
    assert "amina" in said
    assert "force" in said
    # And nothing was published, marked or audited
    assert held.held == []
    after = reload(db, row)
    assert (after.status, after.replay_count, after.handled_by, after.replayed_at) == (
        "replayed",
        1,
        "amina",
        first.replayed_at,
    )
    assert [(e.actor, e.action) for e in audit_of(db, [row.id])] == [
        ("amina", "dead_letter.replayed")
    ]


def test_a_forced_replay_of_a_replayed_dead_letter_is_the_next_replay_audited_as_forced(
    broker: Any, db: Database
) -> None:
    # Given a dead letter amina replayed
    row = quiet_dead_letter(db, "never-published")
    replayed_by(broker, db, row, "amina")

    # When baraka replays it again, forced
    held = replayed_by(broker, db, row, "baraka", force=True)

    # Then it is published as the second replay, under its own message id, retries reset
    [sent] = held.held
    assert (sent.spec.actor_name, sent.spec.queue_name) == ("apply_callback", "never-published")
    assert (sent.message_id, sent.options[REPLAY]) == (row.message_id, 2)
    assert not set(RUN_OPTIONS) & set(sent.options), sent.options
    after = reload(db, row)
    assert (after.status, after.replay_count, after.handled_by) == ("replayed", 2, "baraka")
    # And its audit row says it was forced; the first replay's does not
    entries = audit_of(db, [row.id])
    assert [(e.actor, e.action, e.detail.get("forced")) for e in entries] == [
        ("amina", "dead_letter.replayed", None),
        ("baraka", "dead_letter.replayed", True),
    ]


def test_a_replayed_dead_letter_that_failed_again_is_replayable_without_force(
    broker: Any, db: Database
) -> None:
    # Given a dead letter replayed once, whose replay failed for good again
    row = quiet_dead_letter(db, "never-published")
    replayed_by(broker, db, row, "amina")
    again = {**row.message, "options": {"retries": 2, REPLAY: 1}}
    with db.transaction() as session:
        archive(session, failure_of(again, RuntimeError("lock timeout again"), now()))
    assert (reload(db, row).status, reload(db, row).replay_count) == ("dead", 1)

    # When it is replayed without force, Then it goes, as the second replay, not forced
    [sent] = replayed_by(broker, db, row, "baraka").held
    assert sent.options[REPLAY] == 2
    assert (reload(db, row).status, reload(db, row).replay_count) == ("replayed", 2)
    assert "forced" not in audit_of(db, [row.id])[-1].detail


def test_replaying_a_replayed_dead_letter_over_http_is_a_409_unless_forced(
    broker: Any, db: Database, settings: Settings, rabbit: Rabbit, quiet_queue: str
) -> None:
    # Given a dead letter on a queue nothing consumes, and an operator key that may act
    row = quiet_dead_letter(db, quiet_queue)
    client = ingress_client(settings, db)
    label = f"oncall-{uuid.uuid4().hex[:8]}"
    with db.transaction() as session:
        pepper = settings.secret_key.get_secret_value().encode()
        key = issue_api_key(session, pepper, None, ("ops:read", "ops:write"), label=label)
    auth = {"Authorization": f"Bearer {key}"}
    path = f"/ops/dead-letters/{row.id}/replay"

    # When it is replayed, then replayed again (without force, and with "force": false)
    first = client.simulate_post(path, json={"reason": "lock released"}, headers=auth)
    second = client.simulate_post(path, json={"reason": "second look"}, headers=auth)
    unforced = client.simulate_post(path, json={"force": False}, headers=auth)
    no_body = client.simulate_post(path, headers=auth)

    # Then the first is accepted, and the others refused with 409 and a machine code
    assert first.status_code == 202, first.text
    for refused in (second, unforced, no_body):
        assert refused.status_code == 409, refused.text
        error = refused.json["error"]
        assert error["code"] == "dead_letter_already_replayed"
        assert f"api-key:{label}" in error["message"]  # by whom
        assert '"force": true' in error["message"]
    # And only the first replay was published, marked and audited
    assert rabbit.count(quiet_queue) == 1
    assert (reload(db, row).status, reload(db, row).replay_count) == ("replayed", 1)
    assert len(audit_of(db, [row.id])) == 1

    # When "force" is not a boolean, Then it is a 400 invalid_request, and nothing happens
    for odd in ("true", 1, None, [True], {"yes": True}):
        bad = client.simulate_post(path, json={"force": odd}, headers=auth)
        assert (bad.status_code, bad.json["error"]["code"]) == (400, "invalid_request"), odd
    assert rabbit.count(quiet_queue) == 1

    # When it is replayed with "force": true, Then it goes, as the second replay, audited forced
    forced = client.simulate_post(
        path, json={"force": True, "reason": "the first never ran"}, headers=auth
    )
    assert forced.status_code == 202, forced.text
    assert forced.json == {"id": row.id, "status": "replayed"}
    assert rabbit.count(quiet_queue) == 2
    after = reload(db, row)
    assert (after.status, after.replay_count, after.handled_by) == (
        "replayed",
        2,
        f"api-key:{label}",
    )
    last = audit_of(db, [row.id])[-1]
    assert (last.detail["why"], last.detail["forced"]) == ("the first never ran", True)


def test_replaying_a_replayed_dead_letter_from_the_cli_is_refused_unless_forced(
    broker: Any, db: Database, rabbit: Rabbit, quiet_queue: str
) -> None:
    # Given a dead letter on a queue nothing consumes, replayed once
    row = quiet_dead_letter(db, quiet_queue)
    replay_it = ("dlq", "replay", str(row.id), "--operator", "amina", "--reason", "lock released")
    first = cli(*replay_it)
    assert first.exit_code == 0, first.output
    assert "replayed 1 dead letter(s)" in first.output

    # When it is replayed again by id, and by a filter selecting replayed dead letters
    again = cli(*replay_it)
    by_filter = cli("dlq", "replay", "--all", "--queue", quiet_queue, "--status", "replayed")

    # Then each is refused and counted as such, like a missing id (reported, exit status 0)
    missing = cli("dlq", "replay", "999999999")
    assert missing.exit_code == 0, missing.output
    assert "replayed 0 dead letter(s); 1 not found" in missing.output
    for refused in (again, by_filter):
        assert refused.exit_code == 0, refused.output
        assert "replayed 0 dead letter(s); 1 refused" in refused.stdout
        assert f"dead letter {row.id} was already replayed" in refused.stderr
        assert "amina" in refused.stderr
        assert "--force" in refused.stderr
    # And nothing more was published, marked or audited
    assert rabbit.count(quiet_queue) == 1
    assert (reload(db, row).status, reload(db, row).replay_count) == ("replayed", 1)
    assert len(audit_of(db, [row.id])) == 1

    # When each is forced, Then it goes, as the next replay, audited as forced
    forced = cli(*replay_it, "--force")
    forced_filter = cli(
        "dlq", "replay", "--all", "--queue", quiet_queue, "--status", "replayed", "--force"
    )
    for done in (forced, forced_filter):
        assert done.exit_code == 0, done.output
        assert "replayed 1 dead letter(s)" in done.stdout
        assert "refused" not in done.output
    assert rabbit.count(quiet_queue) == 3
    assert (reload(db, row).status, reload(db, row).replay_count) == ("replayed", 3)
    entries = audit_of(db, [row.id])
    assert [e.detail.get("forced") for e in entries] == [None, True, True]
