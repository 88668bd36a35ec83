"""What every command needs: validated settings, a database, the credentials cipher."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.settings import ConfigurationError, Settings, load_settings, parse_credentials_keys


def cli_settings() -> Settings:
    """The settings, or a clean command-line error naming what is wrong."""
    try:
        return load_settings()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def cli_database(settings: Settings) -> Iterator[Database]:
    database = Database(
        settings.database_url.get_secret_value(), pool_size=1, application_name="malipo-cli"
    )
    try:
        yield database
    finally:
        database.dispose()


def cli_cipher(settings: Settings) -> CredentialCipher:
    return CredentialCipher(parse_credentials_keys(settings.credentials_keys.get_secret_value()))
