"""gunicorn settings for the ingress, from malipo's settings; gunicorn logs join ours."""

from __future__ import annotations

import logging
import sys
from typing import Any

from gunicorn import glogging

from ingress.spool import SpoolUnusable, prepare_directory
from shared.logging import configure_process_logging
from shared.settings import settings_or_exit

_settings = settings_or_exit("ingress")
# The spool is checked by the arbiter, before any worker forks: an unusable one stops
# gunicorn at once with the reason, instead of workers failing to boot one after another.
try:
    prepare_directory(_settings.spool_dir)
except SpoolUnusable as exc:
    sys.stderr.write(f"malipo ingress: {exc}\n")
    raise SystemExit(2) from None


class MalipoGunicornLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's error log through malipo's structured, masked pipeline; no access log
    (the ingress logs each request itself, by route template, never the secret path)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure_process_logging(_settings)
        for logger in (self.error_log, self.access_log):
            logger.handlers = []
            logger.propagate = True
        self.access_log.setLevel(logging.CRITICAL)


bind = f"{_settings.ingress_host}:{_settings.ingress_port}"
workers = _settings.ingress_workers
threads = _settings.ingress_threads
worker_class = "gthread"
# Above the ingress's own limits, so that it refuses oversized requests in JSON.
limit_request_line = 8190
limit_request_fields = max(128, _settings.max_headers * 2)
limit_request_field_size = max(16_384, _settings.max_header_bytes * 2)
# Long enough for GET ?wait=30 plus a slow database.
timeout = 60
graceful_timeout = 30
keepalive = 5
logger_class = MalipoGunicornLogger
accesslog = None
# Several gunicorns may share a host (ingress, simulator): no shared control socket.
control_socket_disable = True


def post_worker_init(worker: Any) -> None:
    """Hand the GIL over sooner than Python's 5 ms default.

    A request thread waiting on I/O (a publish confirm, a database answer) otherwise
    waits up to a full interval each time it wakes while other threads compute, which
    under a flood of refused callbacks multiplies a real callback's accept latency.
    """
    sys.setswitchinterval(0.0005)
