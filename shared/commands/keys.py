"""``malipo keys``: rotate the keys that encrypt secrets at rest, without downtime.

Gateway credentials and merchants' webhook signing secrets are both encrypted
with ``MALIPO_CREDENTIALS_KEYS``; rotation re-encrypts both.

Rotation, step by step:
1. put the new key first in ``MALIPO_CREDENTIALS_KEYS`` (``new:…,old:…``) and restart
   the processes: they encrypt with the new key and still read the old one;
2. ``malipo keys rotate`` re-encrypts every row under the new key, in small batches;
3. ``malipo keys status`` shows no row under the old key: remove it and restart.
"""

from __future__ import annotations

import json

import click

from shared.commands.base import cli_cipher, cli_database, cli_settings
from shared.crypto import CredentialKeyMissing
from shared.merchants import credentials_by_key, reencrypt_signing_secrets, rotate_credentials
from shared.webhooks import reencrypt_endpoints


@click.group("keys")
def keys() -> None:
    """The keys that encrypt gateway credentials at rest."""


@keys.command("status")
def keys_status() -> None:
    """How many credential rows each key id encrypts, and which key is active."""
    settings = cli_settings()
    cipher = cli_cipher(settings)
    with cli_database(settings) as database, database.transaction() as session:
        counts = credentials_by_key(session)
    click.echo(json.dumps({"active": cipher.active_key_id, "rows_by_key": counts}, indent=2))


@keys.command("rotate")
@click.option("--batch", default=100, show_default=True, help="rows per transaction")
def keys_rotate(batch: int) -> None:
    """Re-encrypt every credential row with the active (first) key."""
    settings = cli_settings()
    cipher = cli_cipher(settings)
    credentials = endpoints = signing = 0
    with cli_database(settings) as database:
        while True:
            try:
                with database.transaction() as session:
                    done_credentials = rotate_credentials(session, cipher, batch)
                    done_endpoints = reencrypt_endpoints(session, cipher, batch)
                    done_signing = reencrypt_signing_secrets(session, cipher, batch)
            except CredentialKeyMissing as exc:
                raise click.ClickException(
                    f"a row is encrypted with key {exc.args[0]!r}, which MALIPO_CREDENTIALS_KEYS "
                    f"does not hold: add it (after the new key) and rotate again"
                ) from None
            if not done_credentials and not done_endpoints and not done_signing:
                break
            credentials += done_credentials
            endpoints += done_endpoints
            signing += done_signing
    click.echo(
        f"re-encrypted {credentials} gateway credential row(s) and {endpoints} webhook "
        f"endpoint row(s) with key {cipher.active_key_id!r}; {signing} API key command-signing "
        f"secret(s)"
    )
