"""The command contract of ``malipo.commands``: envelope, signature, schemas, refusal reasons.

A service inside the company sends what it would POST to the HTTP API as an AMQP
message instead:

- exchange ``malipo.commands`` (topic, durable), routing key = the command
  (``payment.create``, ``payment.retry``, ``refund.create``, ``payout.create``);
- body (UTF-8 JSON, the signed bytes): ``{"command", "version": 1, "merchant_id",
  "idempotency_key", "data"}`` where ``data`` is the HTTP twin's request body (and
  the payment's id for a retry or a refund); one JSON Schema per command and
  version in ``shared/contracts/``;
- properties: ``message_id`` (unique per command; signed), ``reply_to`` and
  ``correlation_id`` for the answer, persistent delivery;
- headers: ``malipo-key`` (the API key's public prefix), ``malipo-timestamp`` (Unix
  seconds) and ``malipo-signature`` (``v1,<base64 HMAC-SHA256>`` over
  ``<message_id>.<timestamp>.<body>``, as Standard Webhooks sign) under the key's
  command-signing secret, which is derived from the API key (:func:`signing_secret`).

The answer goes to ``reply_to``: the body the HTTP API would have answered, with
the HTTP status in the ``status`` header. A command that is unsigned, forged, stale,
over-scoped, for another merchant or malformed is refused: it goes to the
``malipo.commands.refused`` queue with one of :data:`REFUSAL_REASONS`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from shared.crypto import split_api_key
from shared.webhooks import SECRET_PREFIX

COMMANDS_EXCHANGE = "malipo.commands"
COMMANDS_QUEUE = "malipo.commands"
REFUSED_QUEUE = "malipo.commands.refused"
VERSION = 1
# The command → the scope its HTTP twin needs.
COMMAND_SCOPES = {
    "payment.create": "payments:write",
    "payment.retry": "payments:write",
    "refund.create": "refunds:write",
    "payout.create": "payouts:write",
}
COMMANDS = tuple(COMMAND_SCOPES)
KEY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = (
    "malipo-key",
    "malipo-timestamp",
    "malipo-signature",
)
SIGNATURE_TOLERANCE_S = 300
# Answers go only to a service's own queues (never into malipo's: a reply_to naming a
# worker queue would put a foreign message there), or to RabbitMQ's direct reply-to.
REPLY_TO = re.compile(r"svc\.[A-Za-z0-9_.-]{1,200}|amq\.rabbitmq\.reply-to(\.[A-Za-z0-9+/=._-]+)?")
MAX_COMMAND_BYTES = 64 * 1024
REFUSAL_REASONS = {
    "unsigned": "no malipo-key, malipo-timestamp or malipo-signature header, or no message_id",
    "unknown_key": "no live API key has this prefix",
    "key_not_for_bus": "the API key was not issued for the command bus (--bus)",
    "bad_signature": "the signature is not the key's over this message",
    "stale": f"the timestamp is more than {SIGNATURE_TOLERANCE_S} s from now",
    "scope_missing": "the API key lacks the scope this command needs",
    "wrong_merchant": "the command names a merchant the key does not speak for",
    "unknown_command": "no such command (routing key) or version",
    "malformed": "the body is not JSON or does not match the command's schema",
    "internal_error": "malipo could not process the command (see its logs)",
}
_SIGNING_CONTEXT = b"malipo command signing v1"


def signing_secret(api_key: str) -> str:
    """The command-signing secret of an API key (``whsec_`` + base64, Standard Webhooks).

    Derived, so the service needs only its API key, and malipo stores this secret
    (encrypted), never the API key itself; a leaked signing secret is no bearer token.
    """
    parts = split_api_key(api_key)
    if parts is None:
        raise ValueError("not a malipo API key")
    digest = hmac.new(parts[1].encode(), _SIGNING_CONTEXT, hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def envelope(
    command: str, merchant_id: str, data: dict[str, Any], idempotency_key: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"command": command, "version": VERSION, "merchant_id": merchant_id}
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    body["data"] = data
    return body


@cache
def _schema_text(name: str) -> str:
    return (resources.files("shared") / "contracts" / f"{name}.v{VERSION}.json").read_text()


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a command (or ``event``) as published in ``shared/contracts/``."""
    value: dict[str, Any] = json.loads(_schema_text(name))
    return value


@cache
def validator(name: str) -> Any:
    document = schema(name)
    cls = jsonschema.validators.validator_for(document)
    cls.check_schema(document)
    return cls(document, format_checker=cls.FORMAT_CHECKER)


def schema_errors(command: str, body: Any) -> list[str]:
    """Where ``body`` breaks ``command``'s schema (empty when it fits), at most five."""
    found = sorted(validator(command).iter_errors(body), key=lambda e: list(e.absolute_path))
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(body)'}: {error.message[:120]}"
        for error in found[:5]
    ]
