"""The collaborators every actor of this worker process uses, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq.brokers.rabbitmq import RabbitmqBroker

from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.gateways.registry import GatewayRegistry
from shared.messages import Publisher
from shared.settings import Settings, parse_credentials_keys


@dataclass
class Runtime:
    settings: Settings
    db: Database
    gateways: GatewayRegistry
    cipher: CredentialCipher
    publisher: Publisher


_runtime: Runtime | None = None


def configure(settings: Settings, broker: RabbitmqBroker) -> Runtime:
    """Build this process's collaborators (called by the worker entry point)."""
    global _runtime
    pool = settings.worker_threads + 2
    _runtime = Runtime(
        settings=settings,
        db=Database(
            settings.database_url.get_secret_value(),
            pool_size=pool,
            application_name="malipo-worker",
            lock_timeout_ms=settings.db_lock_timeout_ms,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        ),
        gateways=GatewayRegistry.from_settings(settings),
        cipher=CredentialCipher(
            parse_credentials_keys(settings.credentials_keys.get_secret_value())
        ),
        publisher=Publisher(broker),
    )
    return _runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError(
            "workers.runtime.configure() was not called: start workers via workers.main"
        )
    return _runtime
