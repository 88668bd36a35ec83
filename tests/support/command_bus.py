"""The command bus under test: a consumer in this process, bus keys, replies and refusals."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ingress.auth import Authenticator
from ingress.bus import CommandConsumer, CommandHandler
from ingress.resources.payments import CommandLimits, PaymentDesk
from ingress.resources.transfers import TransferCommands
from shared.bus_commands import REFUSED_QUEUE
from shared.client import Reply
from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.gateways.registry import GatewayRegistry
from shared.merchants import issue_api_key
from shared.messages import Publisher, build_broker
from shared.paypage import PayLinks
from shared.settings import Settings
from tests.support.rabbit import Rabbit
from tests.support.waiting import wait_until


def bus_key(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    merchant_id: uuid.UUID,
    scopes: tuple[str, ...] = ("payments:write", "payments:read", "refunds:write", "payouts:write"),
    *,
    bus: bool = True,
) -> str:
    with db.transaction() as session:
        return issue_api_key(
            session,
            settings.secret_key.get_secret_value().encode(),
            merchant_id,
            scopes,
            bus_cipher=cipher if bus else None,
        )


@contextmanager
def running_consumer(
    settings: Settings, db: Database, cipher: CredentialCipher
) -> Iterator[CommandConsumer]:
    """A command consumer on a thread of this process, built as ``malipo bus consume`` is."""
    url = settings.broker_url.get_secret_value()
    publisher = Publisher(build_broker(url, publish_only=True))
    desk = PaymentDesk(
        db,
        publisher,
        GatewayRegistry.from_settings(settings),
        CommandLimits.from_settings(settings),
        PayLinks.from_settings(settings),
    )
    auth = Authenticator(db, settings.secret_key.get_secret_value().encode())
    transfers = TransferCommands(db, auth, publisher, settings.max_body_bytes)
    consumer = CommandConsumer(url, CommandHandler(db, cipher, desk, transfers))
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        assert consumer.consuming.wait(30), "the command consumer never started consuming"
        yield consumer
    finally:
        consumer.stop()
        thread.join(timeout=10)


@contextmanager
def reply_queue(rabbit: Rabbit) -> Iterator[str]:
    queue = f"svc.test-{uuid.uuid4().hex[:8]}.replies"
    with rabbit.channel() as channel:
        channel.queue_declare(queue, durable=True)
    try:
        yield queue
    finally:
        with rabbit.channel() as channel:
            channel.queue_delete(queue)


def replies(rabbit: Rabbit, queue: str, count: int, timeout_s: float = 30) -> list[Reply]:
    """The first ``count`` answers on ``queue`` (waiting up to ``timeout_s`` for them)."""
    got: list[Reply] = []

    def enough() -> bool:
        for _, properties, body in rabbit.take_messages(queue):
            headers = properties.headers or {}
            got.append(
                Reply(
                    str(properties.correlation_id),
                    str(headers.get("command")),
                    int(headers["status"]),
                    json.loads(body),
                )
            )
        return len(got) >= count

    wait_until(enough, timeout_s=timeout_s, interval_s=0.05, what=f"{count} replies")
    return got


@dataclass(frozen=True)
class RefusedCommand:
    reason: str
    detail: str
    message_id: str
    body: bytes
    headers: dict[str, Any]


def refused(rabbit: Rabbit, *message_ids: str, timeout_s: float = 30) -> dict[str, RefusedCommand]:
    """The refused commands with these message ids, by id (others on the queue are dropped)."""
    got: dict[str, RefusedCommand] = {}

    def enough() -> bool:
        for _, properties, body in rabbit.take_messages(REFUSED_QUEUE):
            headers = dict(properties.headers or {})
            if properties.message_id in message_ids:
                got[properties.message_id] = RefusedCommand(
                    str(headers["refusal_reason"]),
                    str(headers["refusal_detail"]),
                    str(properties.message_id),
                    body,
                    headers,
                )
        return len(got) == len(message_ids)

    wait_until(enough, timeout_s=timeout_s, interval_s=0.05, what="the refused commands")
    return got
