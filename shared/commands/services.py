"""What a ``malipo`` command says when PostgreSQL or RabbitMQ is not there.

``malipo preflight`` (run first by ``make run``, and by ``malipo dev`` before it
starts anything) checks both at the configured URLs and the ports the stack
listens on. Any other command that meets an unreachable or misconfigured service
prints the same one-line answer and exits 2; ``--debug`` (or
``MALIPO_LOG_LEVEL=DEBUG``) shows the traceback instead.
"""

from __future__ import annotations

import os

import click
import pika.exceptions
import psycopg
import sqlalchemy.exc

from shared.commands.base import cli_settings
from shared.db.session import DatabaseUnavailable
from shared.messages import BrokerUnavailable
from shared.reachability import Problem, broker_problem, database_problem, port_problem
from shared.settings import ConfigurationError, Settings, load_settings

SERVICE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    psycopg.OperationalError,
    DatabaseUnavailable,
    BrokerUnavailable,
    pika.exceptions.AMQPError,
    ConnectionError,
    TimeoutError,
)
EXIT_SERVICE = 2


def service_problems(settings: Settings, *, ports: bool = False) -> list[Problem]:
    """Everything in the way of running: the database, the broker, and (``ports``) the ports.

    Before the stack starts (``ports``), the database may still be missing: ``malipo db
    upgrade`` creates it.
    """
    found = [
        database_problem(settings.database_url.get_secret_value(), may_be_missing=ports),
        broker_problem(settings.broker_url.get_secret_value()),
    ]
    if ports:
        found += [
            port_problem("MALIPO_INGRESS_PORT", settings.ingress_host, settings.ingress_port),
            port_problem("MALIPO_SANDBOX_PORT", settings.sandbox_host, settings.sandbox_port),
        ]
    return [problem for problem in found if problem is not None]


def report(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(f"malipo: {problem.line()}", err=True)


def debugging() -> bool:
    return os.environ.get("MALIPO_LOG_LEVEL", "").upper() == "DEBUG"


def explain_service_error(exc: BaseException) -> str:
    """One line for a service error met by a command: what the checks find, else the error."""
    try:
        problems = service_problems(load_settings())
    except ConfigurationError as config:
        return f"malipo: {config}"
    if problems:
        return "\n".join(f"malipo: {problem.line()}" for problem in problems)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"malipo: a service failed mid-command ({type(exc).__name__}: {first[:200]}); retry"


@click.command("preflight")
def preflight() -> None:
    """Check PostgreSQL, RabbitMQ and the stack's ports; exit 2 naming what is in the way."""
    problems = service_problems(cli_settings(), ports=True)
    if problems:
        report(problems)
        raise SystemExit(EXIT_SERVICE)
    click.echo("malipo: PostgreSQL and RabbitMQ reachable, ports free", err=True)
