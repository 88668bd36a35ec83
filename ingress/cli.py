"""``malipo ingress`` (the HTTP ingress under gunicorn) and ``malipo bus`` (the command bus)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import unquote, urlsplit

import click


@click.command("ingress")
@click.option("--bind", default=None, help="host:port (default MALIPO_INGRESS_HOST/PORT)")
@click.option("--workers", type=int, default=None, help="gunicorn workers (MALIPO_INGRESS_WORKERS)")
@click.option(
    "--threads", type=int, default=None, help="threads per worker (MALIPO_INGRESS_THREADS)"
)
def ingress(bind: str | None, workers: int | None, threads: int | None) -> None:
    """Serve the ingress with gunicorn."""
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:ingress.gunicorn_conf"]
    if bind:
        argv += ["--bind", bind]
    if workers:
        argv += ["--workers", str(workers)]
    if threads:
        argv += ["--threads", str(threads)]
    os.execv(sys.executable, [*argv, "ingress.wsgi:application"])  # noqa: S606 - replaces this process, no shell


@click.group("bus")
def bus() -> None:
    """The command bus: ``malipo.commands`` for services inside the company."""


@bus.command("consume")
def bus_consume() -> None:
    """Consume and carry out commands until SIGTERM (run one or more of these)."""
    from ingress.bus import main

    main()


@bus.command("service")
@click.argument("name")
@click.option("--vhost", default=None, help="the broker's vhost (default: MALIPO_BROKER_URL's)")
@click.option("--apply", is_flag=True, help="run the commands here with rabbitmqctl")
def bus_service(name: str, vhost: str | None, apply: bool) -> None:
    """A RabbitMQ user for service NAME: writes malipo.commands only, reads its own queues.

    Prints the rabbitmqctl commands (with a new password, shown once); --apply runs them.
    """
    from ingress.bus_access import rabbitmqctl_commands, service_password
    from shared.commands.base import cli_settings

    url = urlsplit(cli_settings().broker_url.get_secret_value())
    chosen = vhost or unquote(url.path.lstrip("/")) or "/"
    password = service_password()
    try:
        commands = rabbitmqctl_commands(name, chosen, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for argv in commands:
        shown = " ".join(argv).replace(password, "<password>")
        if apply:
            result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
            if result.returncode != 0:
                raise click.ClickException(f"{shown}: {result.stderr.strip()[:300]}")
        click.echo(shown if apply else " ".join(argv))
    click.echo(f"# service {name}: user {name!r}, password shown once: {password}", err=True)


@bus.command("refusals")
@click.option("--hours", default=24, show_default=True, help="how far back")
def bus_refusals(hours: int) -> None:
    """Refused commands counted by reason and key prefix (JSON); the commands themselves
    wait in the malipo.commands.refused queue."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select

    from shared.commands.base import cli_database, cli_settings
    from shared.db.models import RefusedCommand

    since = datetime.now(UTC) - timedelta(hours=hours)
    with cli_database(cli_settings()) as database, database.transaction() as session:
        rows = session.execute(
            select(RefusedCommand.reason, RefusedCommand.key_prefix, func.sum(RefusedCommand.count))
            .where(RefusedCommand.minute >= since)
            .group_by(RefusedCommand.reason, RefusedCommand.key_prefix)
            .order_by(RefusedCommand.reason, RefusedCommand.key_prefix)
        ).all()
    counts = [{"reason": r, "key_prefix": p or None, "count": int(n)} for r, p, n in rows]
    click.echo(json.dumps({"since": since.isoformat(), "refused": counts}, indent=2))
