"""Worker entry point (``dramatiq workers.main``): the broker, then every actor.

(Each actor module imports ``workers.broker`` first, so the order here does not matter.)
"""

from __future__ import annotations

from workers import (
    audit,
    callbacks,
    dead_letters,
    events,
    initiate,
    notifications,
    operators,
    outbox,
    polling,
    reconcile,
    transfers,
    webhooks,
)
from workers.broker import broker

__all__ = [
    "audit",
    "broker",
    "callbacks",
    "dead_letters",
    "events",
    "initiate",
    "notifications",
    "operators",
    "outbox",
    "polling",
    "reconcile",
    "transfers",
    "webhooks",
]
