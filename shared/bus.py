"""malipo on the bus: the ``malipo.events`` topic exchange services bind their queues to.

Every event the merchant webhooks carry is published here too, from the same outbox
rows (``webhook_events``), with the same id and the same body bytes:

- exchange ``malipo.events`` (topic, durable);
- routing key ``<kind>.<outcome>.<merchant_id>``, e.g. ``payment.succeeded.<uuid>`` or
  ``refund.failed.<uuid>``: bind ``payment.#`` for every payment event, ``*.succeeded.#``
  for every success, ``payment.succeeded.<merchant_id>`` for one merchant's;
- properties: ``message_id`` = the event id (the webhook's ``webhook-id``), ``type`` =
  the event type, ``timestamp``, persistent delivery, JSON; headers ``merchant_id``,
  ``event_id`` and ``replay`` (true when an operator re-published history).

Promises: an event is published only for a committed change, at least once (a crash
between publish and bookkeeping publishes it again: dedupe on ``message_id``), and the
events of one payment in the order their changes committed.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from shared.crypto import canonical_json
from shared.db.models import WebhookEvent
from shared.messages import BrokerUnavailable, broker_parameters

EVENTS_EXCHANGE = "malipo.events"


def event_routing_key(event_type: str, merchant_id: uuid.UUID | str) -> str:
    """``payment.succeeded`` of merchant M → ``payment.succeeded.M``."""
    return f"{event_type}.{merchant_id}"


@dataclass(frozen=True)
class OutboundEvent:
    """One outbox row as it goes on the bus."""

    event_id: str
    merchant_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]

    @property
    def body(self) -> bytes:
        """The same bytes the merchant's webhook carries (and signs)."""
        return canonical_json(self.payload)


# What of an outbox row goes on the bus (with its id, for ordering and bookkeeping).
OUTBOX_COLUMNS = (
    WebhookEvent.id,
    WebhookEvent.webhook_id,
    WebhookEvent.merchant_id,
    WebhookEvent.event_type,
    WebhookEvent.payload,
)


def outbound(rows: Iterable[Any]) -> Iterator[OutboundEvent]:
    """Rows selected with :data:`OUTBOX_COLUMNS` as events to publish."""
    for row in rows:
        yield OutboundEvent(row.webhook_id, row.merchant_id, row.event_type, row.payload)


def declare_events_exchange(channel: Any) -> None:
    """Declare ``malipo.events`` (idempotent: the same arguments every time, from either side)."""
    channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)


class EventStream:
    """Publish events to ``malipo.events`` with publisher confirms: returns once RabbitMQ has them.

    One connection per thread, opened on first use and again after a failure, so it
    can be shared by a worker's threads. Raises :class:`BrokerUnavailable` when a
    publish is not confirmed (nothing is marked published then: it is tried again).
    """

    def __init__(self, broker_url: str) -> None:
        # Publish-only: idle between batches, it asks for no heartbeats RabbitMQ would
        # drop it for missing.
        self.parameters = broker_parameters(broker_url, publish_only=True)
        self._local = threading.local()

    def _channel(self) -> Any:
        channel = getattr(self._local, "channel", None)
        if channel is None or channel.is_closed:
            connection = pika.BlockingConnection(self.parameters)
            channel = connection.channel()
            channel.confirm_delivery()
            declare_events_exchange(channel)
            self._local.connection, self._local.channel = connection, channel
        return channel

    def publish(self, events: Iterable[OutboundEvent], *, replay: bool = False) -> int:
        """Publish in the order given; the count published."""
        published = 0
        try:
            channel = self._channel()
            for event in events:
                channel.basic_publish(
                    EVENTS_EXCHANGE,
                    event_routing_key(event.event_type, event.merchant_id),
                    event.body,
                    pika.BasicProperties(
                        content_type="application/json",
                        delivery_mode=pika.DeliveryMode.Persistent,
                        message_id=event.event_id,
                        type=event.event_type,
                        timestamp=int(time.time()),
                        headers={
                            "event_id": event.event_id,
                            "merchant_id": str(event.merchant_id),
                            "replay": replay,
                        },
                    ),
                )
                published += 1
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.close()
            raise BrokerUnavailable(f"event not confirmed by RabbitMQ: {exc!r}") from exc
        except BaseException:
            # Interrupted mid-publish (a time limit, a shutdown): a confirm may still be on
            # its way, and pika would count it for the next message. Never reuse the channel.
            self.close()
            raise
        return published

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = self._local.channel = None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()


# --- the subscriber's side ---------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One event as a subscriber receives it."""

    event_id: str
    event_type: str
    merchant_id: str
    timestamp: str
    data: dict[str, Any]
    replay: bool
    routing_key: str

    @classmethod
    def from_delivery(cls, method: Any, properties: Any, body: bytes) -> Event:
        payload = json.loads(body)
        headers = properties.headers or {}
        return cls(
            event_id=str(properties.message_id),
            event_type=str(payload["type"]),
            merchant_id=str(headers.get("merchant_id", "")),
            timestamp=str(payload["timestamp"]),
            data=dict(payload["data"]),
            replay=bool(headers.get("replay", False)),
            routing_key=str(method.routing_key),
        )


class SeenEvents:
    """The event ids a subscriber has handled, the newest ``capacity`` of them (dedupe)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


def consume_events(
    broker_url: str,
    queue: str,
    bindings: Iterable[str],
    handle: Callable[[Event], None],
    *,
    seen: SeenEvents | None = None,
    prefetch: int = 100,
    should_stop: Callable[[], bool] = lambda: False,
    idle_s: float = 1.0,
) -> None:
    """Consume ``malipo.events`` from ``queue`` (durable, bound to ``bindings``) until stopped.

    ``handle`` is called once per event id (redeliveries and replays of an id already
    handled are acknowledged without calling it again); the message is acknowledged
    only after ``handle`` returned, so an event whose handler raised (or whose process
    died) is delivered again. ``should_stop`` is asked at least every ``idle_s`` seconds.
    """
    seen = seen if seen is not None else SeenEvents()

    def setup(channel: Any) -> None:
        # Passive: a service's RabbitMQ user may bind to malipo.events, not declare it
        # (malipo declares it at start-up; before that, this fails with NOT_FOUND).
        channel.exchange_declare(EVENTS_EXCHANGE, passive=True)
        channel.queue_declare(queue, durable=True)
        for key in bindings:
            channel.queue_bind(queue, EVENTS_EXCHANGE, routing_key=key)

    def on_message(method: Any, properties: Any, body: bytes) -> None:
        event = Event.from_delivery(method, properties, body)
        if event.event_id not in seen:
            handle(event)
            seen.add(event.event_id)

    consume_queue(
        broker_url,
        queue,
        on_message,
        setup=setup,
        should_stop=should_stop,
        idle_s=idle_s,
        prefetch=prefetch,
    )


def consume_queue(
    broker_url: str,
    queue: str,
    on_message: Callable[[Any, Any, bytes], None],
    *,
    setup: Callable[[Any], None],
    should_stop: Callable[[], bool],
    idle_s: float,
    prefetch: int,
) -> None:
    """Consume ``queue`` on a connection of its own until ``should_stop`` (asked at least
    every ``idle_s``): ``setup`` declares, each message is acknowledged after
    ``on_message(method, properties, body)`` returned; an exception stops the consumer
    with that message unacknowledged (RabbitMQ delivers it again)."""
    connection = pika.BlockingConnection(broker_parameters(broker_url))
    try:
        channel = connection.channel()
        setup(channel)
        channel.basic_qos(prefetch_count=prefetch)
        for method, properties, body in channel.consume(queue, inactivity_timeout=idle_s):
            if method is not None:
                on_message(method, properties, body)
                channel.basic_ack(method.delivery_tag)
            if should_stop():
                break
        channel.cancel()
    finally:
        if connection.is_open:
            connection.close()
