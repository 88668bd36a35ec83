"""`malipo keys rotate`: every credential stays readable during and after rotation."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from shared.cli import main
from shared.crypto import CredentialCipher
from shared.db.models import ApiKey, GatewayCredential, WebhookEndpoint
from shared.db.session import Database
from shared.merchants import bus_key, decrypt_credentials
from shared.settings import Settings, parse_credentials_keys
from shared.webhooks import endpoint_secrets, set_endpoint
from tests.conftest import DARAJA_CREDENTIALS, make_merchant
from tests.support.command_bus import bus_key as issue_bus_key

NEW_KEY = "rotated:" + base64.b64encode(b"a-brand-new-32-byte-key-for-test").decode()


def all_rows(db: Database) -> list[GatewayCredential]:
    with db.transaction() as session:
        return list(session.scalars(select(GatewayCredential)))


def all_endpoints(db: Database) -> list[WebhookEndpoint]:
    with db.transaction() as session:
        return list(session.scalars(select(WebhookEndpoint)))


def readable_by(cipher: CredentialCipher, rows: list[GatewayCredential]) -> bool:
    # Every gateway's row holds its callback secret beside the credentials.
    return all(decrypt_credentials(cipher, row)["callback_secret"] for row in rows)


def plain_text(cipher: CredentialCipher, db: Database) -> dict[str, Any]:
    """Every secret the database holds, decrypted, by table and row."""
    return {
        "credentials": {row.id: decrypt_credentials(cipher, row) for row in all_rows(db)},
        "endpoints": {row.merchant_id: endpoint_secrets(cipher, row) for row in all_endpoints(db)},
        "signing": signing_secrets(cipher, db),
    }


def signing_secrets(cipher: CredentialCipher, db: Database) -> dict[str, str | None]:
    """Every bus key's command-signing secret, by key prefix."""
    with db.transaction() as session:
        prefixes = session.scalars(
            select(ApiKey.prefix).where(ApiKey.signing_ciphertext.is_not(None))
        ).all()
        found = {prefix: bus_key(session, cipher, prefix) for prefix in prefixes}
    return {prefix: key.signing_secret if key else None for prefix, key in found.items()}


def run(args: list[str], keys: str) -> Any:
    result = CliRunner().invoke(main, args, env={**os.environ, "MALIPO_CREDENTIALS_KEYS": keys})
    assert result.exit_code == 0, result.output
    return result


def test_rotation_re_encrypts_every_row_and_keeps_them_readable(
    db: Database, settings: Settings, cipher: CredentialCipher
) -> None:
    # Given gateway credentials, webhook secrets and a bus key's signing secret encrypted
    # with the current key
    for _ in range(3):
        account = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
        issue_bus_key(db, settings, cipher, account.id)
        with db.transaction() as session:
            set_endpoint(
                session, cipher, account.id, "https://merchant.test/hooks", production=False
            )
    current = settings.credentials_keys.get_secret_value()
    before = plain_text(cipher, db)
    both = CredentialCipher(parse_credentials_keys(f"{NEW_KEY},{current}"))
    only_new = CredentialCipher(parse_credentials_keys(NEW_KEY))
    try:
        # When the new key is put first and the rows are rotated
        assert readable_by(both, all_rows(db))  # during the roll-out, processes read both
        output = run(["keys", "rotate", "--batch", "2"], f"{NEW_KEY},{current}").output

        # Then every row of both tables is under the new key, readable with it alone, unchanged
        assert {row.key_id for row in all_rows(db)} == {"rotated"}
        assert {row.key_id for row in all_endpoints(db)} == {"rotated"}
        assert plain_text(only_new, db) == before
        credentials, endpoints = len(before["credentials"]), len(before["endpoints"])
        signing = len(before["signing"])
        assert signing >= 3
        assert (
            f"re-encrypted {credentials} gateway credential row(s) and {endpoints} webhook "
            f"endpoint row(s) with key 'rotated'; {signing} API key command-signing secret(s)"
        ) in output
        status = json.loads(run(["keys", "status"], f"{NEW_KEY},{current}").output)
        total = credentials + endpoints + signing
        assert status == {"active": "rotated", "rows_by_key": {"rotated": total}}
    finally:
        # Leave the suite's database under the key its processes hold.
        run(["keys", "rotate"], f"{current},{NEW_KEY}")
    assert plain_text(cipher, db) == before


def test_a_row_under_a_removed_key_is_reported_not_guessed(
    db: Database, settings: Settings, cipher: CredentialCipher
) -> None:
    make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    result = CliRunner().invoke(
        main, ["keys", "rotate"], env={**os.environ, "MALIPO_CREDENTIALS_KEYS": NEW_KEY}
    )

    assert result.exit_code == 1
    assert (
        "encrypted with key 'sandbox', which MALIPO_CREDENTIALS_KEYS does not hold" in result.output
    )
    assert readable_by(cipher, all_rows(db))  # nothing was half-rotated


def test_credentials_encrypted_under_daraja_s_former_name_stay_readable_and_rotate(
    db: Database, settings: Settings, cipher: CredentialCipher
) -> None:
    # Given a row written before Daraja was renamed: its ciphertext is bound to "mpesa"
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    with db.transaction() as session:
        row = session.scalars(
            select(GatewayCredential).where(GatewayCredential.merchant_id == merchant.id)
        ).one()
        stored = {**DARAJA_CREDENTIALS, "callback_secret": merchant.callback_secret}
        row.key_id, row.ciphertext = cipher.encrypt(
            stored, context=f"gateway_credentials/{merchant.id}/mpesa"
        )
    # When it is read now that the row says "daraja", and after rotation
    with db.transaction() as session:
        row = session.get(GatewayCredential, row.id)
        assert row is not None
        assert row.gateway == "daraja"
        before = decrypt_credentials(cipher, row)
    run(["keys", "rotate"], f"{NEW_KEY},{settings.credentials_keys.get_secret_value()}")
    rotated = CredentialCipher(
        parse_credentials_keys(f"{NEW_KEY},{settings.credentials_keys.get_secret_value()}")
    )
    with db.transaction() as session:
        row = session.get(GatewayCredential, row.id)
        assert row is not None
        after = rotated.decrypt(
            row.key_id, row.ciphertext, context=f"gateway_credentials/{merchant.id}/daraja"
        )
    # Then both say the same, and the rotated row is bound to the new name
    assert before == after == stored
