"""Baseline 1: the smallest Falcon app that durably enqueues a request, then answers 202.

It reads the body, publishes it to a durable RabbitMQ queue as a persistent message
(``delivery_mode=2``) with ``mandatory=True`` and waits for the publisher confirm,
on a channel of its own per thread (pika ``BlockingConnection`` is not thread-safe),
with the same pika connection parameters as the product. No authentication, no
validation, no logging, no envelope: what is left is the floor for "accept a
request only once the broker has it on disk" with gunicorn + Falcon + pika on this
machine. ``tests/perf/stack.py`` serves it with the ingress's gunicorn settings.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import falcon
import pika
import pika.exceptions

from shared.messages import broker_url_with_defaults

QUEUE = os.environ.get("BENCH_BASELINE_QUEUE", "bench_baseline")
PARAMETERS = pika.URLParameters(
    broker_url_with_defaults(os.environ["BENCH_BASELINE_BROKER_URL"], publish_only=True)
)
PERSISTENT = pika.BasicProperties(delivery_mode=2, content_type="application/json")
ACK = b'{"ResultCode": 0, "ResultDesc": "Accepted"}'
_local = threading.local()


def channel() -> Any:
    """This thread's confirming channel, (re)opened on first use or after a failure."""
    current = getattr(_local, "channel", None)
    if current is None or current.is_closed:
        connection = pika.BlockingConnection(PARAMETERS)
        current = connection.channel()
        current.confirm_delivery()
        current.queue_declare(QUEUE, durable=True)
        _local.connection, _local.channel = connection, current
    return current


def enqueue(req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
    if req.method != "POST":
        resp.status = falcon.HTTP_200 if req.path == "/healthz" else falcon.HTTP_405
        return
    body = req.bounded_stream.read()
    try:
        channel().basic_publish("", QUEUE, body, PERSISTENT, mandatory=True)
    except (pika.exceptions.AMQPError, OSError):
        _local.channel = None
        resp.status = falcon.HTTP_503
        return
    resp.status = falcon.HTTP_202
    resp.content_type = falcon.MEDIA_JSON
    resp.data = ACK


application = falcon.App()
application.add_sink(enqueue, prefix="/")
