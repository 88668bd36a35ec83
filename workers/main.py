"""Worker entry point (``dramatiq workers.main``): the broker, then every actor."""

from __future__ import annotations

from workers import audit, callbacks, initiate, polling
from workers.broker import broker

__all__ = ["audit", "broker", "callbacks", "initiate", "polling"]
