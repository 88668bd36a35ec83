"""RabbitMQ as tests look at it: a fresh connection per question.

A connection held by the test process sits idle between tests and misses
heartbeats, so RabbitMQ drops it; asking on a fresh connection each time keeps
these checks independent of how long the previous test took.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import pika

from shared.messages import broker_url_with_defaults


class Rabbit:
    def __init__(self, url: str) -> None:
        self.parameters = pika.URLParameters(broker_url_with_defaults(url, publish_only=True))
        self.vhost = unquote(urlsplit(url).path.lstrip("/")) or "/"

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
        return [json.loads(body) for _, _, body in self.take_messages(queue)]

    def take_messages(self, queue: str) -> list[tuple[str, Any, bytes]]:
        """Take every message off ``queue`` (acknowledged): (routing key, properties, body)."""
        taken = []
        with self.channel() as channel:
            while True:
                method, properties, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return taken
                taken.append((method.routing_key, properties, body))

    def unsettled(self) -> dict[str, int]:
        """Messages per queue not yet acknowledged (ready + delivered but unacked).

        AMQP's passive declare counts only ready messages; a message a worker is
        still processing counts here until the worker acks it, after its commit.
        """
        ctl = shutil.which("rabbitmqctl")
        assert ctl, "rabbitmqctl is needed to count unacknowledged messages"
        listed = subprocess.run(
            [ctl, "-q", "list_queues", "-p", self.vhost, "name", "messages"],
            capture_output=True,
            text=True,
            check=True,
        )
        counts = {}
        for line in listed.stdout.splitlines():
            name, _, count = line.rpartition("\t")
            if name and count.isdigit():
                counts[name] = int(count)
        return counts

    def wait_settled(self, *queues: str, timeout_s: float = 60.0) -> None:
        """Until every message on ``queues`` (and their delay queues) has been acknowledged.

        Two empty readings in a row: a message moving from a delay queue back to
        its queue is never missed between them.
        """
        watched = [name for queue in queues for name in (queue, f"{queue}.DQ")]
        deadline = time.monotonic() + timeout_s
        empty_readings = 0
        while empty_readings < 2:
            counts = self.unsettled()
            pending = {name: counts.get(name, 0) for name in watched if counts.get(name, 0)}
            empty_readings = 0 if pending else empty_readings + 1
            if pending and time.monotonic() > deadline:
                raise AssertionError(f"messages still unacknowledged after {timeout_s}s: {pending}")
            time.sleep(0.2)
