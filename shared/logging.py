"""Structured logs for every process: one pipeline for structlog and stdlib loggers.

``merge_contextvars`` comes first, so ``request_id``, ``payment_id`` and
``message_id`` bound at the ingress or in a worker follow a payment through
every line. The last processor before rendering masks phone numbers and
drops secrets, for our own lines and for dramatiq's, pika's and gunicorn's.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shared.domain.phone import mask_phone_numbers
from shared.outages import POSTGRESQL, RABBITMQ, OutageLimiter, OutageWatch
from shared.reachability import broker_problem, database_problem

if TYPE_CHECKING:
    from shared.settings import Settings

REDACTED = "[redacted]"
# A key naming any of these (case and -/_ ignored: "X-Api-Key", "consumer_secret",
# "SecurityCredential") has its value dropped, wherever it appears in an event.
SECRET_KEY_PARTS = (
    "authorization",
    "password",
    "passkey",
    "secret",
    "apikey",
    "token",
    "consumerkey",
    "credential",
    "databaseurl",
    "brokerurl",
    # A raw gateway body, base64-encoded in messages: phones and receipts the masking cannot see.
    "bodyb64",
)
_SECRET_WORDS = "authorization|password|passkey|secret|api_?key|token|credential|body_b64"  # noqa: S105
_SECRET_NAME = rf"[\w-]*(?:{_SECRET_WORDS})[\w-]*"
# The same names in free text: a dict's repr ('name': 'value') or keyword arguments
# (name='value'), as dramatiq and %-formatted stdlib messages write them.
_QUOTED_SECRET = re.compile(
    rf"(?i)((?:['\"]{_SECRET_NAME}['\"]\s*:|\b{_SECRET_NAME}=)\s*)(['\"])(?:(?!\2).)*\2"
)
# Bearer tokens and our API keys, wherever they are quoted.
_TOKENS = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|mlp_[0-9a-f]{12}_[A-Za-z0-9_-]+")
# Callback path secrets.
_CALLBACK_PATH = re.compile(r"(/callbacks/[a-z]+/)[A-Za-z0-9_-]{16,}")


def is_secret_key(key: object) -> bool:
    normalised = str(key).lower().replace("-", "").replace("_", "")
    return any(part in normalised for part in SECRET_KEY_PARTS)


def _mask_text(text: str) -> str:
    text = _QUOTED_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}", text)
    text = _TOKENS.sub(lambda m: (m.group(1) or "") + REDACTED, text)
    text = _CALLBACK_PATH.sub(lambda m: m.group(1) + REDACTED, text)
    return mask_phone_numbers(text)


def scrub(value: Any) -> Any:
    """Mask phones and tokens in strings; drop secret-named keys; recurse into containers."""
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, (bytes, bytearray)):
        return _mask_text(bytes(value).decode("utf-8", errors="replace"))
    if isinstance(value, Mapping):
        return {k: (REDACTED if is_secret_key(k) else scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and 9 <= len(str(value)) <= 15:
        masked = mask_phone_numbers(str(value))
        return masked if masked != str(value) else value
    return value


def redact_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    scrubbed: EventDict = scrub(event_dict)
    return scrubbed


def configure_logging(
    log_format: str = "json",
    level: str = "INFO",
    *,
    database_url: str | None = None,
    broker_url: str | None = None,
) -> OutageLimiter:
    """Route structlog and stdlib logging through one masked pipeline to stdout.

    Connection failures go through one :class:`~shared.outages.OutageLimiter`; with the
    service URLs, an open outage is probed until the service answers, and its end logged.
    """
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        # Below the level, an event is dropped before any processor (masking, JSON) runs.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    limiter = OutageLimiter()
    handler.addFilter(limiter)
    probes = {}
    if database_url is not None:
        probes[POSTGRESQL] = lambda: database_problem(database_url) is None
    if broker_url is not None:
        probes[RABBITMQ] = lambda: broker_problem(broker_url) is None
    if probes:
        OutageWatch(limiter, probes)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("pika", "urllib3", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return limiter


def configure_process_logging(settings: Settings) -> OutageLimiter:
    """A long-running process's logging: its settings' format and level, and outage watches
    on its database and broker."""
    return configure_logging(
        settings.log_format,
        settings.log_level,
        database_url=settings.database_url.get_secret_value(),
        broker_url=settings.broker_url.get_secret_value(),
    )


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
