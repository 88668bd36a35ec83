"""Worker entry point (``dramatiq workers.main``): settings, logging, broker, then actors.

The broker must be set before any actor module is imported, because declaring
an actor binds it to the current broker.
"""

from __future__ import annotations

import dramatiq

from shared.logging import configure_logging
from shared.messages import build_broker
from shared.settings import settings_or_exit
from workers import runtime

settings = settings_or_exit("workers")

configure_logging(settings.log_format, settings.log_level)
broker = build_broker(settings.broker_url.get_secret_value())
dramatiq.set_broker(broker)
runtime.configure(settings, broker)

from workers import callbacks, initiate, polling  # noqa: E402  (needs the broker set above)

__all__ = ["broker", "callbacks", "initiate", "polling"]
