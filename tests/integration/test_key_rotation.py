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
from shared.db.models import GatewayCredential
from shared.db.session import Database
from shared.merchants import decrypt_credentials
from shared.settings import Settings, parse_credentials_keys
from tests.conftest import DARAJA_CREDENTIALS, make_merchant

NEW_KEY = "rotated:" + base64.b64encode(b"a-brand-new-32-byte-key-for-test").decode()


def all_rows(db: Database) -> list[GatewayCredential]:
    with db.transaction() as session:
        return list(session.scalars(select(GatewayCredential)))


def readable_by(cipher: CredentialCipher, rows: list[GatewayCredential]) -> bool:
    return all(decrypt_credentials(cipher, row)["consumer_key"] for row in rows)


def run(args: list[str], keys: str) -> Any:
    result = CliRunner().invoke(main, args, env={**os.environ, "MALIPO_CREDENTIALS_KEYS": keys})
    assert result.exit_code == 0, result.output
    return result


def test_rotation_re_encrypts_every_row_and_keeps_them_readable(
    db: Database, settings: Settings, cipher: CredentialCipher
) -> None:
    # Given credentials encrypted with the current key
    for _ in range(3):
        make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    current = settings.credentials_keys.get_secret_value()
    before = {row.id: decrypt_credentials(cipher, row) for row in all_rows(db)}
    both = CredentialCipher(parse_credentials_keys(f"{NEW_KEY},{current}"))
    only_new = CredentialCipher(parse_credentials_keys(NEW_KEY))
    try:
        # When the new key is put first and the rows are rotated
        assert readable_by(both, all_rows(db))  # during the roll-out, processes read both
        output = run(["keys", "rotate", "--batch", "2"], f"{NEW_KEY},{current}").output

        # Then every row is under the new key, readable with the new key alone, unchanged
        rows = all_rows(db)
        assert {row.key_id for row in rows} == {"rotated"}
        assert {row.id: decrypt_credentials(only_new, row) for row in rows} == before
        assert f"re-encrypted {len(before)} row(s)" in output
        status = json.loads(run(["keys", "status"], f"{NEW_KEY},{current}").output)
        assert status == {"active": "rotated", "rows_by_key": {"rotated": len(before)}}
    finally:
        # Leave the suite's database under the key its processes hold.
        run(["keys", "rotate"], f"{current},{NEW_KEY}")
    assert readable_by(cipher, all_rows(db))


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
