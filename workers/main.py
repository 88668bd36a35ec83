"""Worker entry point (``dramatiq workers.main``): settings, logging, broker, then actors.

The broker must be set before any actor module is imported, because declaring
an actor binds it to the current broker.
"""

from __future__ import annotations

import sys

import dramatiq

from shared.logging import configure_logging
from shared.messages import build_broker
from shared.settings import ConfigurationError, load_settings
from workers import runtime

try:
    settings = load_settings()
except ConfigurationError as exc:
    sys.stderr.write(f"malipo workers: {exc}\n")
    raise SystemExit(2) from None

configure_logging(settings.log_format, settings.log_level)
broker = build_broker(settings.broker_url.get_secret_value())
dramatiq.set_broker(broker)
runtime.configure(settings, broker)

from workers import callbacks, initiate, polling  # noqa: E402  (needs the broker set above)

__all__ = ["broker", "callbacks", "initiate", "polling"]
