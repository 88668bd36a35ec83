"""RabbitMQ as tests look at it: a fresh connection per question.

A connection held by the test process sits idle between tests and misses
heartbeats, so RabbitMQ drops it; asking on a fresh connection each time keeps
these checks independent of how long the previous test took.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika

from shared.messages import broker_url_with_defaults


class Rabbit:
    def __init__(self, url: str) -> None:
        self.parameters = pika.URLParameters(broker_url_with_defaults(url, publish_only=True))

    @contextmanager
    def channel(self) -> Iterator[Any]:
        connection = pika.BlockingConnection(self.parameters)
        try:
            yield connection.channel()
        finally:
            connection.close()

    def purge(self, *queues: str) -> None:
        with self.channel() as channel:
            for queue in queues:
                channel.queue_purge(queue)

    def count(self, queue: str) -> int:
        """Messages ready in ``queue`` (as RabbitMQ reports it now)."""
        with self.channel() as channel:
            return int(channel.queue_declare(queue, passive=True).method.message_count)

    def counts(self, queue: str) -> tuple[int, int, int]:
        """Ready messages in the queue, its delay queue and its dead-letter queue."""
        return self.count(queue), self.count(f"{queue}.DQ"), self.count(f"{queue}.XQ")

    def take_all(self, queue: str) -> list[dict[str, Any]]:
        """Take every message off ``queue`` (acknowledged) and return the decoded bodies."""
        bodies = []
        with self.channel() as channel:
            while True:
                method, _, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return bodies
                bodies.append(json.loads(body))
