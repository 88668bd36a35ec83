"""What gunicorn loads: read the environment once, build the collaborators, build the app.

Each gunicorn worker imports this after the fork, so engines, broker connections
and the spool drainer thread belong to that worker process.
"""

from __future__ import annotations

import sys

from ingress.app import create_wsgi
from ingress.resources.callbacks import publish_spooled
from ingress.spool import CallbackSpool, SpoolDrainer, SpoolUnusable
from shared.db.session import Database
from shared.gateways.registry import GatewayRegistry
from shared.logging import configure_process_logging
from shared.messages import Publisher, build_broker
from shared.settings import settings_or_exit

settings = settings_or_exit("ingress")

configure_process_logging(settings)
publisher = Publisher(
    build_broker(
        settings.broker_url.get_secret_value(), publish_only=True, queue_type=settings.queue_type
    )
)
try:
    spool = CallbackSpool.from_settings(settings)  # 0700, sealed with the settings' spool key
except SpoolUnusable as exc:
    sys.stderr.write(f"malipo ingress: {exc}\n")
    raise SystemExit(2) from None
application = create_wsgi(
    settings,
    db=Database(
        settings.database_url.get_secret_value(),
        pool_size=settings.ingress_threads,
        application_name="malipo-ingress",
        lock_timeout_ms=settings.db_lock_timeout_ms,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    ),
    publisher=publisher,
    gateways=GatewayRegistry.from_settings(settings),
    spool=spool,
)
# Its own publisher: the drainer thread must not share request threads' channels.
drainer = SpoolDrainer(
    spool,
    publish_spooled(
        Publisher(
            build_broker(
                settings.broker_url.get_secret_value(),
                publish_only=True,
                queue_type=settings.queue_type,
            )
        )
    ),
).start()
