"""The worker processes' broker, set once, before any actor is declared.

Declaring an actor binds it to the current broker, and ``dramatiq.get_broker()``
silently makes a localhost one if none was set. So every actor module imports
this module first: whatever imports an actor (the worker entry point, a test, a
tool), the actors land on this broker.
"""

from __future__ import annotations

import sys

import dramatiq

from shared.logging import configure_process_logging
from shared.messages import build_broker
from shared.settings import ConfigurationError, settings_or_exit
from workers import runtime
from workers.policies import effective_policies

settings = settings_or_exit("workers")
configure_process_logging(settings)
try:
    # Read once, here: actors take their retry policy when they are declared.
    POLICIES = effective_policies(settings.retry_policies)
except ConfigurationError as exc:
    sys.stderr.write(f"malipo workers: {exc}\n")
    raise SystemExit(2) from None
broker = build_broker(settings.broker_url.get_secret_value(), queue_type=settings.queue_type)
dramatiq.set_broker(broker)
runtime.configure(settings, broker)
