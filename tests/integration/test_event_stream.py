"""The outbox on the bus: every committed event on ``malipo.events``, in order, at least once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from dramatiq.middleware.time_limit import TimeLimitExceeded
from sqlalchemy import func, select, text

from shared.bus import (
    OUTBOX_COLUMNS,
    Event,
    EventStream,
    OutboundEvent,
    SeenEvents,
    consume_events,
    outbound,
)
from shared.cli import main as malipo
from shared.db.models import AuditRecord, WebhookEvent
from shared.db.session import Database
from shared.messages import BrokerUnavailable
from shared.webhooks import event_body
from tests.conftest import TEST_ENV, MerchantAccount
from tests.support.bus import bound_queue
from tests.support.rabbit import Rabbit
from workers import runtime as worker_runtime
from workers.events import STREAM_BATCH, STREAM_LOCK, stream

BROKER_URL = TEST_ENV["MALIPO_BROKER_URL"]


@pytest.fixture
def events() -> Iterator[EventStream]:
    publisher = EventStream(BROKER_URL)
    yield publisher
    publisher.close()


@pytest.fixture
def subscribe(rabbit: Rabbit) -> Iterator[Any]:
    """Make a queue bound to ``malipo.events`` by the given keys; deleted after the test."""
    with ExitStack() as queues:
        yield lambda *keys: queues.enter_context(bound_queue(rabbit, *keys))


def received(rabbit: Rabbit, queue: str) -> list[tuple[str, Any, bytes]]:
    return rabbit.take_messages(queue)


def add_events(db: Database, merchant: uuid.UUID, *types: str) -> list[int]:
    """Outbox rows as a change's transaction writes them (no message enqueued)."""
    ids = []
    now = datetime.now(UTC)
    with db.transaction() as session:
        for event_type in types:
            row = WebhookEvent(
                webhook_id=f"msg_{uuid.uuid4().hex}",
                merchant_id=merchant,
                event_type=event_type,
                payload={
                    "type": event_type,
                    "timestamp": now.isoformat(),
                    "data": {"id": str(uuid.uuid4()), "note": "é"},
                },
                published_at=now,
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
    return ids


def unstreamed(db: Database, ids: list[int]) -> int:
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(WebhookEvent)
                .where(WebhookEvent.id.in_(ids), WebhookEvent.streamed_at.is_(None))
            )
            or 0
        )


def test_each_event_goes_out_with_its_webhook_id_body_and_merchant_routing_key(
    broker: Any,
    db: Database,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    events: EventStream,
    subscribe: Any,
) -> None:
    queue = subscribe(f"*.*.{merchant.id}")
    ids = add_events(db, merchant.id, "payment.succeeded", "refund.failed")

    stream(worker_runtime.runtime(), events)

    with db.transaction() as session:
        rows = session.scalars(
            select(WebhookEvent).where(WebhookEvent.id.in_(ids)).order_by(WebhookEvent.id)
        ).all()
        expected = [(r.event_type, r.webhook_id, event_body(r.payload)) for r in rows]
        assert all(r.streamed_at is not None for r in rows)
    got = received(rabbit, queue)
    assert [(key, props.message_id, body) for key, props, body in got] == [
        (f"{t}.{merchant.id}", webhook_id, body) for t, webhook_id, body in expected
    ]
    assert {props.headers["merchant_id"] for _, props, _ in got} == {str(merchant.id)}
    assert [props.type for _, props, _ in got] == ["payment.succeeded", "refund.failed"]
    assert all(props.delivery_mode == 2 and props.headers["replay"] is False for _, props, _ in got)


def test_bindings_select_by_kind_outcome_and_merchant(
    broker: Any,
    db: Database,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    events: EventStream,
    subscribe: Any,
) -> None:
    other = uuid.uuid4()
    with db.transaction() as session:
        session.execute(
            text("INSERT INTO merchants (id, name) VALUES (:id, :name)"),
            {"id": other, "name": f"other-{other.hex[:6]}"},
        )
    payments = subscribe("payment.#")
    successes = subscribe("*.succeeded.*")
    mine_failed = subscribe(f"payment.failed.{merchant.id}")
    add_events(db, merchant.id, "payment.succeeded", "payment.failed", "payout.succeeded")
    add_events(db, other, "payment.failed")

    stream(worker_runtime.runtime(), events)

    def keys(queue: str) -> list[str]:
        """This test's merchants' keys (rows other tests left unstreamed go out too)."""
        ours = (str(merchant.id), str(other))
        return [key for key, _, _ in received(rabbit, queue) if key.endswith(ours)]

    assert keys(payments) == [
        f"payment.succeeded.{merchant.id}",
        f"payment.failed.{merchant.id}",
        f"payment.failed.{other}",
    ]
    assert keys(successes) == [
        f"payment.succeeded.{merchant.id}",
        f"payout.succeeded.{merchant.id}",
    ]
    assert keys(mine_failed) == [f"payment.failed.{merchant.id}"]


def test_events_go_out_in_id_order_across_batches_and_runs(
    broker: Any,
    db: Database,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    events: EventStream,
    subscribe: Any,
) -> None:
    queue = subscribe(f"payment.*.{merchant.id}")
    stream(worker_runtime.runtime(), events)  # what other tests left
    ids = add_events(db, merchant.id, *["payment.succeeded"] * (STREAM_BATCH + 20))

    # A run does at most max_batches batches, and asks for the next run when more is left.
    assert stream(worker_runtime.runtime(), events, max_batches=1) == STREAM_BATCH
    assert unstreamed(db, ids) == 20
    assert stream(worker_runtime.runtime(), events) == 20

    with db.transaction() as session:
        by_id = dict(
            session.execute(
                select(WebhookEvent.webhook_id, WebhookEvent.id).where(WebhookEvent.id.in_(ids))
            ).all()
        )
    order = [by_id[props.message_id] for _, props, _ in received(rabbit, queue)]
    assert order == sorted(ids)


def test_events_not_confirmed_by_the_broker_stay_unstreamed_and_go_out_next_time(
    broker: Any,
    db: Database,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    events: EventStream,
    subscribe: Any,
) -> None:
    queue = subscribe(f"*.*.{merchant.id}")
    ids = add_events(db, merchant.id, "payment.succeeded", "payment.failed")
    unreachable = EventStream("amqp://guest:guest@127.0.0.1:1/nowhere")

    with pytest.raises(BrokerUnavailable):
        stream(worker_runtime.runtime(), unreachable)

    assert unstreamed(db, ids) == 2
    assert received(rabbit, queue) == []
    stream(worker_runtime.runtime(), events)
    assert unstreamed(db, ids) == 0
    assert len(received(rabbit, queue)) == 2


def test_a_second_streamer_returns_at_once_while_one_runs(
    broker: Any, db: Database, merchant: MerchantAccount, events: EventStream
) -> None:
    ids = add_events(db, merchant.id, "payment.succeeded")
    with db.transaction() as holder:
        holder.execute(select(func.pg_advisory_xact_lock(STREAM_LOCK)))
        assert stream(worker_runtime.runtime(), events) == 0
        assert unstreamed(db, ids) == 1
    assert stream(worker_runtime.runtime(), events) >= 1
    assert unstreamed(db, ids) == 0


def test_replay_publishes_a_merchants_window_again_marked_as_replay_and_audited(
    broker: Any,
    db: Database,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    events: EventStream,
    subscribe: Any,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = add_events(db, merchant.id, "payment.succeeded", "payment.failed")
    stream(worker_runtime.runtime(), events)
    queue = subscribe(f"*.*.{merchant.id}")  # bound after the events went out: missed them

    result = CliRunner().invoke(
        malipo,
        ["events", "replay", "--since", since.isoformat(), "--merchant", str(merchant.id)],
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    assert "replayed 2 events" in result.output
    got = received(rabbit, queue)
    with db.transaction() as session:
        webhook_ids = list(
            session.scalars(
                select(WebhookEvent.webhook_id)
                .where(WebhookEvent.id.in_(ids))
                .order_by(WebhookEvent.id)
            )
        )
        audited = session.scalars(
            select(AuditRecord).where(
                AuditRecord.action == "events.replayed", AuditRecord.subject_id == str(merchant.id)
            )
        ).all()
    assert [props.message_id for _, props, _ in got] == webhook_ids
    assert all(props.headers["replay"] is True for _, props, _ in got)
    assert [a.detail["published"] for a in audited] == [2]


def test_replay_refuses_a_window_that_ends_before_it_starts(broker: Any) -> None:
    result = CliRunner().invoke(
        malipo, ["events", "replay", "--since", "2026-12-02T10:00", "--until", "2026-12-01"]
    )
    assert result.exit_code == 2
    assert "--until must be after --since" in result.output


def test_a_subscriber_handles_each_event_id_once_and_gets_again_what_its_handler_failed(
    broker: Any,
    db: Database,
    merchant: MerchantAccount,
    events: EventStream,
    rabbit: Rabbit,
    subscribe: Any,
) -> None:
    binding = f"*.*.{merchant.id}"
    queue = subscribe(binding)
    ids = add_events(db, merchant.id, "payment.succeeded", "payment.failed")
    stream(worker_runtime.runtime(), events)
    handled: list[Event] = []
    failures_left = [1]
    stop = threading.Event()

    def handle(event: Event) -> None:
        if event.event_type == "payment.failed" and failures_left[0]:
            failures_left[0] -= 1
            raise RuntimeError("the handler's own database is down")
        handled.append(event)
        if len(handled) == 2:
            stop.set()

    seen = SeenEvents()

    def consume() -> None:
        consume_events(
            BROKER_URL, queue, [binding], handle, seen=seen, should_stop=stop.is_set, idle_s=0.2
        )

    with pytest.raises(RuntimeError):
        consume()  # dies in the handler: that event was never acknowledged
    consume()
    assert stop.is_set()
    # Both again (an operator's replay): acknowledged without being handled twice.
    replayed = CliRunner().invoke(
        malipo,
        ["events", "replay", "--since", "2026-01-01", "--merchant", str(merchant.id)],
        catch_exceptions=False,
    )
    assert "replayed 2 events" in replayed.output
    stop.clear()
    timer = threading.Timer(1.5, stop.set)
    timer.start()
    consume()
    timer.cancel()

    with db.transaction() as session:
        webhook_ids = set(
            session.scalars(select(WebhookEvent.webhook_id).where(WebhookEvent.id.in_(ids)))
        )
    assert sorted(e.event_id for e in handled) == sorted(webhook_ids)
    assert [e.event_type for e in handled] == ["payment.succeeded", "payment.failed"]
    assert all(e.merchant_id == str(merchant.id) and e.data["note"] == "é" for e in handled)
    assert rabbit.count(queue) == 0


def test_a_publish_interrupted_mid_batch_never_reuses_its_channel(
    broker: Any,
    db: Database,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    events: EventStream,
    subscribe: Any,
) -> None:
    queue = subscribe(f"*.*.{merchant.id}")
    ids = add_events(db, merchant.id, "payment.succeeded", "payment.failed")
    with db.transaction() as session:
        rows = session.execute(
            select(*OUTBOX_COLUMNS).where(WebhookEvent.id.in_(ids)).order_by(WebhookEvent.id)
        ).all()

    def cut_off() -> Iterator[OutboundEvent]:
        yield from outbound(rows[:1])
        raise TimeLimitExceeded()  # how dramatiq interrupts a thread over its time limit

    events.publish(outbound(rows[:1]))
    first = events._local.channel
    with pytest.raises(TimeLimitExceeded):
        events.publish(cut_off())

    assert events._local.channel is None
    assert first.is_closed
    assert events.publish(outbound(rows[1:])) == 1
    assert len(received(rabbit, queue)) == 3
