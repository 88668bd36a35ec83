"""Prepare the test database and RabbitMQ vhost (``python -m tests.support.services``).

The suite never touches ``make run``'s data: it uses its own database
(``malipo_test``) and its own vhost (``malipo_test``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from urllib.parse import unquote, urlsplit

import requests

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/malipo_test"
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/malipo_test"


def database_url() -> str:
    return os.environ.get("MALIPO_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)


def broker_url() -> str:
    return os.environ.get("MALIPO_TEST_BROKER_URL", DEFAULT_BROKER_URL)


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


def main() -> int:
    try:
        ensure_vhost(broker_url())
    except (subprocess.CalledProcessError, requests.RequestException) as exc:
        sys.stderr.write(f"cannot prepare the RabbitMQ vhost for tests: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
