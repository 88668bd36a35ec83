"""``malipo db``: database set-up."""

from __future__ import annotations

import click

from shared.commands.base import cli_settings
from shared.db.migrate import upgrade
from shared.db.session import create_database_if_missing


@click.group("db")
def db() -> None:
    """Database set-up."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the database if it is missing, then run every migration."""
    url = cli_settings().database_url.get_secret_value()
    if create_database_if_missing(url):
        click.echo("created the database", err=True)
    upgrade(url)
    click.echo("database is at the latest migration", err=True)
