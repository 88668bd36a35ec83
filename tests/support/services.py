"""The test run's own database and RabbitMQ vhost.

The suite never touches ``make run``'s data, nor another test run's: each
pytest session uses a database and a vhost named after its process id
(``malipo_test_<pid>``), removes them at the end, and removes those left by
runs that died.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.db.migrate import upgrade
from shared.db.session import create_database_if_missing, sqlalchemy_url

PREFIX = "malipo_test_"
RUN_NAME = f"{PREFIX}{os.getpid()}"
DEFAULT_DATABASE_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{RUN_NAME}"
DEFAULT_BROKER_URL = f"amqp://guest:guest@127.0.0.1:5672/{RUN_NAME}"


def database_url() -> str:
    return os.environ.get("MALIPO_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)


def broker_url() -> str:
    return os.environ.get("MALIPO_TEST_BROKER_URL", DEFAULT_BROKER_URL)


def pid_alive(name: str) -> bool:
    """Whether the test run that named a resource ``malipo_test_<pid>`` is still running."""
    suffix = name.removeprefix(PREFIX)
    if not suffix.isdigit():
        return True  # not one of ours to remove
    try:
        os.kill(int(suffix), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_vhosts() -> list[str]:
    ctl = shutil.which("rabbitmqctl")
    if not ctl:
        return []
    listed = subprocess.run(
        [ctl, "-q", "list_vhosts", "name"], capture_output=True, text=True, check=False
    )
    names = [line.strip() for line in listed.stdout.splitlines()]
    return [n for n in names if n.startswith(PREFIX) and not pid_alive(n)]


def delete_vhost(url_or_name: str) -> None:
    name = unquote(urlsplit(url_or_name).path.lstrip("/")) if "://" in url_or_name else url_or_name
    ctl = shutil.which("rabbitmqctl")
    if ctl and name.startswith(PREFIX):
        subprocess.run([ctl, "-q", "delete_vhost", name], capture_output=True, check=False)


def ensure_vhost(url: str) -> None:
    """Create the vhost named in the AMQP URL and grant its user every permission."""
    parts = urlsplit(url)
    vhost = unquote(parts.path.lstrip("/")) or "/"
    user = unquote(parts.username or "guest")
    if vhost == "/":
        return
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        subprocess.run([ctl, "-q", "add_vhost", vhost], check=False, capture_output=True)
        subprocess.run(
            [ctl, "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"], check=True
        )
        return
    # No local rabbitmqctl (RabbitMQ in a container): use the management API.
    api = f"http://{parts.hostname}:15672/api"
    auth = (user, unquote(parts.password or "guest"))
    quoted = requests.utils.quote(vhost, safe="")
    requests.put(f"{api}/vhosts/{quoted}", auth=auth, timeout=10).raise_for_status()
    permissions = {"configure": ".*", "write": ".*", "read": ".*"}
    requests.put(
        f"{api}/permissions/{quoted}/{user}", json=permissions, auth=auth, timeout=10
    ).raise_for_status()


def _admin_engine(url: str) -> Any:
    target = make_url(sqlalchemy_url(url))
    return target, create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")


def drop_database(url: str) -> None:
    target, admin = _admin_engine(url)
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": target.database},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}"'))
    admin.dispose()


def drop_stale_databases(url: str) -> None:
    """Remove the databases of test runs that died without cleaning up."""
    target, admin = _admin_engine(url)
    with admin.connect() as conn:
        names = conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE 'malipo\\_test\\_%'")
        )
        stale = [name for (name,) in names if not pid_alive(name)]
    admin.dispose()
    for name in stale:
        drop_database(target.set(database=name).render_as_string(hide_password=False))


def fresh_database(url: str) -> None:
    """Drop and re-create the run's database, then run every migration."""
    drop_database(url)
    create_database_if_missing(url)
    upgrade(url)
