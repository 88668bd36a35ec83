"""Is PostgreSQL, RabbitMQ or a port there? One short answer a person can act on.

Used before ``make run`` / ``malipo dev`` start anything, and by every ``malipo``
command that meets an unreachable service: a :class:`Problem` names the setting
(its URL with the password masked), the cause in a word (refused, timeout,
unknown host, authentication, unknown database or vhost, port in use), and how
to start the service here, on macOS and with Docker.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import pika
import pika.exceptions
import psycopg

from shared.messages import broker_urls

CONNECT_TIMEOUT_S = 3.0

HOW_TO_START = {
    "postgres": (
        "start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        " | macOS: brew services start postgresql | Docker: docker compose up -d postgres"
        " | not installed: make services"
    ),
    "rabbitmq": (
        "start it: rabbitmq-server -detached | macOS: brew services start rabbitmq"
        " | Docker: docker compose up -d rabbitmq | not installed: make services"
    ),
}


@dataclass(frozen=True)
class Problem:
    """Why a service cannot be used, said in one line."""

    setting: str  # MALIPO_DATABASE_URL, MALIPO_BROKER_URL, MALIPO_INGRESS_PORT...
    shown_url: str  # password masked
    cause: str  # refused | timeout | unknown host | authentication | unknown database | ...
    detail: str = ""
    hint: str = ""

    def line(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{self.setting}={self.shown_url}: {self.cause}{detail}{hint}"


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***`` (everything else as given)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _tcp(host: str, port: int, timeout_s: float) -> str | None:
    """None when something listens at host:port, else the cause."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except socket.gaierror:
        return "unknown host"
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return f"unreachable ({exc.strerror or exc})"


def database_problem(
    url: str, timeout_s: float = CONNECT_TIMEOUT_S, *, may_be_missing: bool = False
) -> Problem | None:
    """Can malipo log in to PostgreSQL at ``url``? None when it can.

    ``may_be_missing``: the database itself need not exist yet (``malipo db upgrade``
    creates it), as long as the server lets this user in (checked on ``postgres``).
    """
    parts = urlsplit(url)
    shown = masked(url)
    cause = _tcp(parts.hostname or "localhost", parts.port or 5432, timeout_s)
    if cause is not None:
        return Problem("MALIPO_DATABASE_URL", shown, cause, hint=HOW_TO_START["postgres"])
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))
    try:
        psycopg.connect(conninfo, connect_timeout=max(1, int(timeout_s))).close()
    except psycopg.OperationalError as exc:
        cause, detail = _database_cause(str(exc), parts.path)
        if cause == "unknown database" and may_be_missing:
            server = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
            return database_problem(server, timeout_s)
        return Problem("MALIPO_DATABASE_URL", shown, cause, detail)
    return None


def _database_cause(message: str, path: str) -> tuple[str, str]:
    lowered = message.lower()
    database = unquote(path.lstrip("/")) or "(default)"
    if "does not exist" in lowered and "database" in lowered:
        return "unknown database", f"create it: createdb {database}"
    if "password" in lowered or "authentication" in lowered or "role" in lowered:
        return "authentication", "check the user and password in the URL"
    if "timeout" in lowered:
        return "timeout", ""
    return "refused", message.strip().splitlines()[0][:200]


def broker_problem(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Problem | None:
    """Can malipo open an AMQP connection to RabbitMQ at ``url`` (to one of its nodes, when
    it lists a cluster's)? None when it can; otherwise the first node's problem."""
    problems = [_node_problem(node, timeout_s) for node in broker_urls(url)]
    if not problems or any(problem is None for problem in problems):
        return None
    return problems[0]


def _node_problem(url: str, timeout_s: float) -> Problem | None:
    parts = urlsplit(url)
    shown = masked(url)
    default_port = 5671 if parts.scheme == "amqps" else 5672
    cause = _tcp(parts.hostname or "localhost", parts.port or default_port, timeout_s)
    if cause is not None:
        return Problem("MALIPO_BROKER_URL", shown, cause, hint=HOW_TO_START["rabbitmq"])
    parameters = pika.URLParameters(url)
    parameters.socket_timeout = timeout_s
    parameters.blocked_connection_timeout = timeout_s
    parameters.connection_attempts = 1
    try:
        pika.BlockingConnection(parameters).close()
    except pika.exceptions.ProbableAuthenticationError:
        return Problem(
            "MALIPO_BROKER_URL", shown, "authentication", "check the user and password in the URL"
        )
    except pika.exceptions.ProbableAccessDeniedError:
        vhost = parameters.virtual_host
        return Problem(
            "MALIPO_BROKER_URL",
            shown,
            "unknown vhost or no access to it",
            f"rabbitmqctl add_vhost {vhost} && rabbitmqctl set_permissions -p {vhost} "
            f"{parameters.credentials.username} '.*' '.*' '.*'",
        )
    except pika.exceptions.AMQPError as exc:
        return Problem("MALIPO_BROKER_URL", shown, "refused", repr(exc)[:200])
    return None


def port_problem(setting: str, host: str, port: int) -> Problem | None:
    """Is ``host:port`` free for malipo to listen on? None when it is."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # As the servers bind: a port left in TIME_WAIT is free, only a listener is in the way.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return Problem(
                setting,
                f"{host}:{port}",
                "port already in use",
                f"{exc.strerror or exc}; stop what listens there (ss -ltnp 'sport = :{port}')"
                f" or set {setting}",
            )
    return None
