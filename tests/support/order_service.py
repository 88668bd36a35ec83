"""An "order service": a separate process that uses malipo only through the bus.

    python -m tests.support.order_service --broker URL --api-key KEY --merchant ID \
        --service NAME --count N --out FILE

It binds its own queues (``svc.<NAME>.replies`` and ``svc.<NAME>.events``, bound to
its merchant's ``payment.*`` events), publishes N ``payment.create`` commands with the
project's client (a command RabbitMQ did not take is sent again, same key), and
consumes answers and events until every command is answered and every payment has
its final event, or the deadline passes. It writes what it saw to FILE as JSON and
exits 0 when complete, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pika

from shared.bus import EVENTS_EXCHANGE
from shared.client import (
    CommandNotSent,
    CommandPublisher,
    Event,
    PaymentCreate,
    Reply,
    consume_events,
    consume_replies,
)
from shared.messages import broker_url_with_defaults

FINAL = ("payment.succeeded", "payment.failed", "payment.cancelled", "payment.expired")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--merchant", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--deadline-s", type=float, default=600)
    args = parser.parse_args()

    replies_queue = f"svc.{args.service}.replies"
    events_queue = f"svc.{args.service}.events"
    binding = f"payment.*.{args.merchant}"
    connection = pika.BlockingConnection(pika.URLParameters(broker_url_with_defaults(args.broker)))
    channel = connection.channel()
    for queue in (replies_queue, events_queue):
        channel.queue_declare(queue, durable=True)
    channel.queue_bind(events_queue, EVENTS_EXCHANGE, routing_key=binding)
    connection.close()

    lock = threading.Lock()
    sent: dict[str, str] = {}  # message id → idempotency key
    answers: dict[str, list[Any]] = {}
    events: list[dict[str, Any]] = []
    finals: set[str] = set()
    resends = Counter[str]()
    deadline = time.monotonic() + args.deadline_s

    def done() -> bool:
        with lock:
            return len(answers) >= args.count and len(finals) >= args.count

    def stop() -> bool:
        return done() or time.monotonic() > deadline

    def on_reply(reply: Reply) -> None:
        with lock:
            answers.setdefault(reply.correlation_id, []).append([reply.status, reply.body])

    def on_event(event: Event) -> None:
        with lock:
            body = {"type": event.event_type, "timestamp": event.timestamp, "data": event.data}
            events.append({"id": event.event_id, "type": event.event_type, "body": body})
            if event.event_type in FINAL:
                finals.add(str(event.data["id"]))

    listeners = [
        threading.Thread(
            target=consume_replies,
            args=(args.broker, replies_queue, on_reply),
            kwargs={"should_stop": stop, "idle_s": 0.2},
            daemon=True,
        ),
        threading.Thread(
            target=consume_events,
            args=(args.broker, events_queue, [binding], on_event),
            kwargs={"should_stop": stop, "idle_s": 0.2},
            daemon=True,
        ),
    ]
    for listener in listeners:
        listener.start()

    with CommandPublisher(
        args.broker, args.api_key, args.merchant, reply_to=replies_queue
    ) as publisher:
        for i in range(args.count):
            key = f"{args.service}-{i}"
            command = PaymentCreate(
                idempotency_key=key,
                amount=100 * (1 + i % 40),
                currency="KES",
                phone=f"2547{10_000_000 + i:08d}",  # clear of the simulator's scenario phones
                reference=key,
            )
            while True:
                try:
                    message_id = publisher.publish(command)
                    break
                except CommandNotSent:
                    resends[key] += 1
                    time.sleep(0.5)
            with lock:
                sent[message_id] = key

    for listener in listeners:
        listener.join(timeout=max(1.0, deadline - time.monotonic()) + 5)
    with lock:
        summary = {
            "sent": sent,
            "answers": answers,
            "events": events,
            "finals": sorted(finals),
            "resends": dict(resends),
        }
    Path(args.out).write_text(json.dumps(summary))
    return 0 if done() else 1


if __name__ == "__main__":
    raise SystemExit(main())
