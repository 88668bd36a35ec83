"""The bus as a subscribing service sees it: a bound queue, events received, their contract."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import jsonschema

from shared.bus import EVENTS_EXCHANGE, Event, consume_events, declare_events_exchange
from shared.bus_commands import validator
from tests.support.rabbit import Rabbit


def event_validator() -> jsonschema.protocols.Validator:
    return validator("event")  # type: ignore[no-any-return]


def check_event(event: Event) -> None:
    """Raise unless the event's body is what shared/contracts/event.v1.json promises."""
    body = {"type": event.event_type, "timestamp": event.timestamp, "data": event.data}
    event_validator().validate(body)


@contextmanager
def bound_queue(rabbit: Rabbit, *bindings: str) -> Iterator[str]:
    """A durable queue bound to ``malipo.events`` by ``bindings``, deleted afterwards."""
    queue = f"test.subscriber.{uuid.uuid4().hex[:8]}"
    with rabbit.channel() as channel:
        declare_events_exchange(channel)
        channel.queue_declare(queue, durable=True)
        for key in bindings:
            channel.queue_bind(queue, EVENTS_EXCHANGE, routing_key=key)
    try:
        yield queue
    finally:
        with rabbit.channel() as channel:
            channel.queue_delete(queue)


def receive(
    broker_url: str, queue: str, bindings: list[str], count: int, timeout_s: float = 30
) -> list[Event]:
    """The first ``count`` distinct events on ``queue`` (fewer if ``timeout_s`` passes)."""
    got: list[Event] = []
    done = threading.Event()
    timer = threading.Timer(timeout_s, done.set)
    timer.start()

    def handle(event: Event) -> None:
        got.append(event)
        if len(got) >= count:
            done.set()

    try:
        consume_events(broker_url, queue, bindings, handle, should_stop=done.is_set, idle_s=0.2)
    finally:
        timer.cancel()
    return got
