"""Shared fixtures: the real PostgreSQL, RabbitMQ, Daraja simulator and ingress, on test resources.

The test environment (own database, own vhost, free ports, fast timings) is put
in ``os.environ`` before anything of malipo is imported, so in-process workers
and child processes read the same settings.
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.env import DARAJA_APP, DARAJA_PASSKEY, DARAJA_SHORTCODE, build_test_env

TEST_ENV = build_test_env(spool_dir=tempfile.mkdtemp(prefix="malipo-spool-"))
os.environ.update(TEST_ENV)

from sandbox.smtp import SmtpSink  # noqa: E402
from shared.crypto import CredentialCipher  # noqa: E402
from shared.db.session import Database  # noqa: E402
from shared.merchants import create_merchant, issue_api_key, store_gateway_credentials  # noqa: E402
from shared.messages import ALL_ACTORS  # noqa: E402
from shared.settings import Settings, load_settings, parse_credentials_keys  # noqa: E402
from tests.support.logs import captured_worker_log  # noqa: E402
from tests.support.processes import (  # noqa: E402
    ManagedProcess,
    ingress_process,
    python_module,
    sandbox_process,
)
from tests.support.rabbit import Rabbit  # noqa: E402
from tests.support.services import (  # noqa: E402
    delete_vhost,
    drop_database,
    drop_stale_databases,
    ensure_vhost,
    fresh_database,
    stale_vhosts,
)
from tests.support.sim import Simulator  # noqa: E402


@pytest.fixture(scope="session")
def test_env() -> dict[str, str]:
    return dict(TEST_ENV)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def db(settings: Settings) -> Iterator[Database]:
    """This run's own database, fresh and migrated; dropped at the end."""
    url = settings.database_url.get_secret_value()
    drop_stale_databases(url)
    fresh_database(url)
    database = Database(url, pool_size=10, application_name="malipo-tests")
    yield database
    database.dispose()
    drop_database(url)


@pytest.fixture(scope="session")
def cipher(settings: Settings) -> CredentialCipher:
    return CredentialCipher(parse_credentials_keys(settings.credentials_keys.get_secret_value()))


@pytest.fixture(scope="session")
def broker(db: Database) -> Iterator[Any]:
    """The workers' broker on this run's own vhost (deleted at the end)."""
    for stale in stale_vhosts():
        delete_vhost(stale)
    ensure_vhost(TEST_ENV["MALIPO_BROKER_URL"])
    import workers.main

    broker = workers.main.broker
    for spec in ALL_ACTORS:
        broker.declare_queue(spec.queue_name, ensure=True)
    yield broker
    broker.close()
    delete_vhost(TEST_ENV["MALIPO_BROKER_URL"])


@pytest.fixture(scope="session")
def rabbit(broker: Any) -> Rabbit:
    """Questions to RabbitMQ about this run's vhost, each on a fresh connection."""
    return Rabbit(TEST_ENV["MALIPO_BROKER_URL"])


@pytest.fixture(scope="module")
def worker(broker: Any) -> Iterator[Any]:
    """Dramatiq workers in this test process, consuming every queue, for a test module."""
    import dramatiq

    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def sandbox_server(test_env: dict[str, str], log_dir: Path) -> Iterator[ManagedProcess]:
    process = sandbox_process(test_env, log_dir).start()
    process.wait_http(f"{test_env['MALIPO_DARAJA_BASE_URL']}/_sim/health")
    yield process
    process.stop()


@pytest.fixture
def sim(sandbox_server: ManagedProcess, test_env: dict[str, str]) -> Simulator:
    """The Daraja simulator, reset to its built-ins for this test."""
    simulator = Simulator(test_env["MALIPO_DARAJA_BASE_URL"])
    simulator.reset()
    return simulator


@pytest.fixture(scope="session")
def smtp_sink(test_env: dict[str, str]) -> Iterator[SmtpSink]:
    """The SMTP sink ``MALIPO_SMTP_HOST``/``MALIPO_SMTP_PORT`` point at, in this process."""
    with SmtpSink(test_env["MALIPO_SMTP_HOST"], int(test_env["MALIPO_SMTP_PORT"])) as sink:
        yield sink


@pytest.fixture(scope="module")
def scheduler_process(
    test_env: dict[str, str], log_dir: Path, sandbox_server: ManagedProcess
) -> Iterator[ManagedProcess]:
    """The scheduler, for a module: its sweeps finish what lost results left open."""
    process = ManagedProcess("scheduler", python_module("workers.scheduler"), test_env, log_dir)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def ingress_server(
    db: Database, broker: Any, test_env: dict[str, str], log_dir: Path
) -> Iterator[ManagedProcess]:
    process = ingress_process(test_env, log_dir).start()
    process.wait_http(f"{test_env['MALIPO_PUBLIC_BASE_URL']}/readyz")
    yield process
    process.stop()


@dataclass
class MerchantAccount:
    id: uuid.UUID
    api_key: str
    callback_secret: str | None

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers


def make_merchant(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    *,
    daraja: dict[str, str] | None = None,
) -> MerchantAccount:
    with db.transaction() as session:
        merchant = create_merchant(session, f"test-{uuid.uuid4().hex[:8]}")
        api_key = issue_api_key(
            session, settings.secret_key.get_secret_value().encode(), merchant.id
        )
        secret = None
        if daraja is not None:
            secret = store_gateway_credentials(
                session, cipher, merchant.id, "daraja", daraja, production=False
            )
    return MerchantAccount(merchant.id, api_key, secret)


DARAJA_CREDENTIALS = {
    **DARAJA_APP,
    "shortcode": DARAJA_SHORTCODE,
    "passkey": DARAJA_PASSKEY,
    "mode": "paybill",
}


@pytest.fixture
def merchant(db: Database, settings: Settings, cipher: CredentialCipher) -> MerchantAccount:
    """A fresh merchant with the simulator's sandbox Daraja credentials."""
    return make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))


@pytest.fixture
def worker_log() -> Iterator[io.StringIO]:
    """Every line logged in this process during the test, as the workers' handler renders it."""
    with captured_worker_log() as captured:
        yield captured


@pytest.fixture
def api(test_env: dict[str, str]) -> Iterator[ApiClient]:
    client = ApiClient(test_env["MALIPO_PUBLIC_BASE_URL"])
    yield client
    client.http.close()


class ApiClient:
    """Plain HTTP to the ingress process."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.base_url + path, timeout=40, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.base_url + path, timeout=40, **kwargs)
