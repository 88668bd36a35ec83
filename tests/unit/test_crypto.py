"""API keys, secret hashing, payment ids and credentials encrypted at rest."""

from __future__ import annotations

import os
import re
import string
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.crypto import (
    CredentialCipher,
    CredentialKeyMissing,
    CredentialTampered,
    hash_api_secret,
    new_api_key,
    payment_id_for,
    request_hash,
    split_api_key,
)
from tests.unit.properties import PROPERTY

PREFIX = re.compile(r"^mlp_[0-9a-f]{12}$")
URLSAFE = string.ascii_letters + string.digits + "-_"
CONTEXT = "merchant-1/mpesa"

hex12 = st.text(alphabet="0123456789abcdef", min_size=12, max_size=12)
url_safe_secrets = st.text(alphabet=URLSAFE, min_size=1, max_size=64)
aes_keys = st.binary(min_size=32, max_size=32)


# --- API keys -------------------------------------------------------------------------------


def test_new_keys_split_back_into_prefix_and_secret() -> None:
    seen = set()
    for _ in range(500):
        # Given a freshly issued key
        key = new_api_key()
        # When the token the merchant sends is split
        # Then the prefix and secret come back, whatever '_' or '-' the secret holds
        assert PREFIX.fullmatch(key.prefix)
        assert key.token == f"{key.prefix}_{key.secret}"
        assert split_api_key(key.token) == (key.prefix, key.secret)
        seen.add(key.token)
    assert len(seen) == 500


@settings(PROPERTY, max_examples=300)
@given(prefix_hex=hex12, secret=url_safe_secrets)
def test_any_well_formed_token_splits_at_the_prefix(prefix_hex: str, secret: str) -> None:
    # Given a token 'mlp_<12 hex>_<secret>' whose secret may contain '_' and '-'
    token = f"mlp_{prefix_hex}_{secret}"
    # When it is split
    # Then the split happens after the fixed-length prefix, not at the last underscore
    assert split_api_key(token) == (f"mlp_{prefix_hex}", secret)


@settings(PROPERTY, max_examples=500)
@given(token=st.one_of(st.text(), st.text(alphabet="mlp_0123456789abcdefABX-", max_size=30)))
def test_arbitrary_text_splits_to_none_or_a_real_prefix(token: str) -> None:
    # Given any text in the Authorization header
    # When it is split (it must never raise)
    result = split_api_key(token)
    # Then it is None, or a well-formed prefix and a non-empty secret that rebuild the token
    if result is not None:
        prefix, secret = result
        assert PREFIX.fullmatch(prefix)
        assert secret
        assert f"{prefix}_{secret}" == token


@pytest.mark.parametrize(
    "token",
    [
        "",
        "mlp",
        "mlp_",
        "mlp_0123456789ab",
        "mlp_0123456789ab_",
        "mlp_0123456789AB_secret",
        "mlp_0123456789a_secret",
        "mlp_0123456789abc_secret",
        "mlp-0123456789ab_secret",
        "MLP_0123456789ab_secret",
        "xyz_0123456789ab_secret",
        "mlp_0123456789ag_secret",
        "Bearer mlp_0123456789ab_secret",
        "mlp_0123456789ab-secret",
    ],
)
def test_garbage_tokens_split_to_none(token: str) -> None:
    assert split_api_key(token) is None


peppers = st.text(alphabet=string.printable, min_size=32, max_size=64).map(str.encode)


@settings(PROPERTY, max_examples=200)
@given(pepper=peppers, other=peppers, secret=url_safe_secrets)
def test_secret_hashes_depend_on_the_pepper(pepper: bytes, other: bytes, secret: str) -> None:
    # Given the same API secret under two different peppers (MALIPO_SECRET_KEY values)
    # When it is hashed
    # Then the stored hashes differ (a leaked table is useless without the pepper)
    digest = hash_api_secret(pepper, secret)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == hash_api_secret(pepper, secret)
    if pepper != other:
        assert digest != hash_api_secret(other, secret)


@settings(PROPERTY, max_examples=100)
@given(pepper=peppers, secret=url_safe_secrets, other=url_safe_secrets)
def test_secret_hashes_depend_on_the_secret(pepper: bytes, secret: str, other: str) -> None:
    if secret != other:
        assert hash_api_secret(pepper, secret) != hash_api_secret(pepper, other)


# --- payment ids ----------------------------------------------------------------------------


@settings(PROPERTY, max_examples=200)
@given(merchant=st.uuids(), other_merchant=st.uuids(), key=st.text(), other_key=st.text())
def test_payment_ids_are_deterministic_per_merchant_and_key(
    merchant: uuid.UUID, other_merchant: uuid.UUID, key: str, other_key: str
) -> None:
    # Given a merchant and an idempotency key
    payment_id = payment_id_for(merchant, key)
    # Then the same pair always maps to the same id (a retry finds the same payment)
    assert payment_id == payment_id_for(merchant, key)
    assert payment_id.version == 5
    # and another merchant or another key maps elsewhere
    if other_merchant != merchant:
        assert payment_id_for(other_merchant, key) != payment_id
    if other_key != key:
        assert payment_id_for(merchant, other_key) != payment_id


@settings(PROPERTY, max_examples=100)
@given(items=st.dictionaries(st.text(max_size=8), st.integers(), max_size=6), data=st.data())
def test_request_hash_ignores_key_order(items: dict[str, int], data: st.DataObject) -> None:
    shuffled = dict(data.draw(st.permutations(list(items.items()))))
    assert request_hash(shuffled) == request_hash(items)


# --- credentials at rest ----------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
payloads = st.dictionaries(st.text(max_size=15), json_values, max_size=8)


def cipher(*keys: tuple[str, bytes]) -> CredentialCipher:
    return CredentialCipher(list(keys))


@settings(PROPERTY, max_examples=200)
@given(payload=payloads, key=aes_keys, context=st.text(max_size=40))
def test_credentials_round_trip(payload: dict[str, Any], key: bytes, context: str) -> None:
    # Given any JSON-able credentials
    box = cipher(("k1", key))
    # When they are encrypted and decrypted in the same context
    key_id, blob = box.encrypt(payload, context=context)
    # Then the same credentials come back, under the active key id
    assert key_id == "k1"
    assert box.decrypt(key_id, blob, context=context) == payload


def test_the_same_credentials_encrypt_differently_each_time() -> None:
    box = cipher(("k1", os.urandom(32)))
    payload = {"passkey": "pk", "consumer_secret": "cs"}
    _, first = box.encrypt(payload, context=CONTEXT)
    _, second = box.encrypt(payload, context=CONTEXT)
    assert first != second
    assert b"pk" not in first
    assert b"consumer_secret" not in first


@settings(PROPERTY, max_examples=100)
@given(context=st.text(max_size=40), other=st.text(max_size=40))
def test_a_row_moved_to_another_context_is_tampered(context: str, other: str) -> None:
    # Given credentials sealed for one merchant/gateway
    box = cipher(("k1", os.urandom(32)))
    key_id, blob = box.encrypt({"passkey": "pk"}, context=context)
    # When they are read as another merchant's/gateway's row
    if other != context:
        # Then they do not authenticate
        with pytest.raises(CredentialTampered):
            box.decrypt(key_id, blob, context=other)


@settings(PROPERTY, max_examples=200)
@given(data=st.data())
def test_any_flipped_bit_is_tampering(data: st.DataObject) -> None:
    # Given a sealed row
    box = cipher(("k1", os.urandom(32)))
    key_id, blob = box.encrypt({"passkey": "pk", "shortcode": "174379"}, context=CONTEXT)
    # When any bit of nonce, ciphertext or tag is flipped
    position = data.draw(st.integers(0, len(blob) - 1), label="position")
    bit = data.draw(st.integers(0, 7), label="bit")
    edited = bytearray(blob)
    edited[position] ^= 1 << bit
    # Then decryption refuses it as tampered
    with pytest.raises(CredentialTampered):
        box.decrypt(key_id, bytes(edited), context=CONTEXT)


@settings(PROPERTY, max_examples=100)
@given(data=st.data())
def test_truncated_or_extended_rows_are_tampering(data: st.DataObject) -> None:
    box = cipher(("k1", os.urandom(32)))
    key_id, blob = box.encrypt({"passkey": "pk"}, context=CONTEXT)
    edited = data.draw(
        st.one_of(
            st.integers(8, len(blob) - 1).map(lambda n: blob[:n]),
            st.binary(min_size=1, max_size=16).map(lambda extra: blob + extra),
        )
    )
    with pytest.raises(CredentialTampered):
        box.decrypt(key_id, edited, context=CONTEXT)


@pytest.mark.parametrize("length", [0, 1, 7])
def test_a_row_truncated_below_the_nonce_is_tampering(length: int) -> None:
    box = cipher(("k1", os.urandom(32)))
    key_id, blob = box.encrypt({"passkey": "pk"}, context=CONTEXT)
    with pytest.raises(CredentialTampered):
        box.decrypt(key_id, blob[:length], context=CONTEXT)


def test_an_unknown_key_id_is_a_missing_key() -> None:
    box = cipher(("k1", os.urandom(32)))
    _, blob = box.encrypt({"passkey": "pk"}, context=CONTEXT)
    with pytest.raises(CredentialKeyMissing):
        box.decrypt("k0", blob, context=CONTEXT)


def test_a_different_key_under_the_same_id_is_tampering() -> None:
    _, blob = cipher(("k1", os.urandom(32))).encrypt({"passkey": "pk"}, context=CONTEXT)
    with pytest.raises(CredentialTampered):
        cipher(("k1", os.urandom(32))).decrypt("k1", blob, context=CONTEXT)


def test_rotation_keeps_old_rows_readable() -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    payload = {"consumer_key": "ck", "passkey": "pk"}
    # Given a row written while only the old key existed
    old_id, old_blob = cipher(("old", old_key)).encrypt(payload, context=CONTEXT)
    # When the process is restarted with [new, old]
    rotated = cipher(("new", new_key), ("old", old_key))
    # Then the old row still decrypts
    assert rotated.decrypt(old_id, old_blob, context=CONTEXT) == payload
    # and new rows are written with the new key, which the old-only process cannot read
    new_id, new_blob = rotated.encrypt(payload, context=CONTEXT)
    assert (old_id, new_id) == ("old", "new")
    assert rotated.active_key_id == "new"
    with pytest.raises(CredentialKeyMissing):
        cipher(("old", old_key)).decrypt(new_id, new_blob, context=CONTEXT)


def test_a_cipher_needs_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        CredentialCipher([])
