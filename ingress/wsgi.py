"""What gunicorn loads: read the environment once, build the collaborators, build the app."""

from __future__ import annotations

from ingress.app import create_app
from shared.db.session import Database
from shared.gateways.registry import GatewayRegistry
from shared.logging import configure_logging
from shared.messages import Publisher, build_broker
from shared.settings import settings_or_exit

settings = settings_or_exit("ingress")

configure_logging(settings.log_format, settings.log_level)
application = create_app(
    settings,
    db=Database(
        settings.database_url.get_secret_value(),
        pool_size=settings.ingress_threads,
        application_name="malipo-ingress",
    ),
    publisher=Publisher(build_broker(settings.broker_url.get_secret_value())),
    gateways=GatewayRegistry.from_settings(settings),
)
