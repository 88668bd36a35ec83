"""The ingress app in the test process (falcon TestClient) on the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

from typing import Any

import falcon.testing

from ingress.app import create_app
from ingress.spool import CallbackSpool
from shared.db.session import Database
from shared.gateways.registry import GatewayRegistry
from shared.messages import Publisher, build_broker
from shared.settings import Settings


def ingress_client(
    settings: Settings, db: Database, spool: CallbackSpool | None = None, **overrides: Any
) -> falcon.testing.TestClient:
    """A TestClient over a freshly built ingress, with settings overridden as given."""
    configured = settings.model_copy(update=overrides) if overrides else settings
    publisher = Publisher(build_broker(configured.broker_url.get_secret_value()))
    app = create_app(
        configured,
        db=db,
        publisher=publisher,
        gateways=GatewayRegistry.from_settings(configured),
        spool=spool,
    )
    return falcon.testing.TestClient(app)
