"""Idram's calls to the RESULT_URL: the precheck, the confirmation, and what proves them.

Two form posts arrive at the one callback URL the merchant typed into Idram's
cabinet (no attempt reference in its path):

* the precheck, ``EDP_PRECHECK=YES`` with the bill, the merchant's account and the
  amount, asked before Idram takes the customer's money; it is answered at once
  (plain ``OK`` for "yes", anything else for "no") and nothing is enqueued;
* the confirmation, after the payment, signed with ``EDP_CHECKSUM`` (MD5 over the
  fields and the merchant's secret key, see :mod:`shared.gateways.idram.wire`).

Idram reports payments only: a customer who gives up sends nothing, and there is no
status API, so the signed confirmation is the only word. The ingress checks that a
callback names the merchant's own Idram ID (the ``account`` verifier, a hash kept
beside the encrypted credentials); the worker checks the checksum with the secret
key before anything is applied. Replays are told apart by ``EDP_TRANS_ID``, Idram's
unique id of the payment, which is inside the checksum.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.domain.phone import mask_phone_numbers
from shared.gateways.base import (
    CallbackEvent,
    CallbackMalformed,
    GatewayVerdict,
    InboundCallback,
    Outcome,
    Precheck,
)
from shared.gateways.description import sha256_verifier
from shared.gateways.idram.credentials import IdramCredentials
from shared.gateways.idram.wire import (
    CHECKSUM,
    CHECKSUM_FIELDS,
    PRECHECK_FIELDS,
    PRECHECK_FLAG,
    checksum,
)

ACCOUNT_VERIFIER = "account"
MAX_FIELD_LENGTH = 100
RESULT_CODE = "confirmed"
# Idram's amounts: digits, a dot before any fraction (no signs, exponents or commas).
_DECIMAL = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")
# Armenian numbers written nationally (0XX XXXXXX), which the shared masker leaves whole.
_AM_NATIONAL = re.compile(r"(?<![0-9])0[1-9](?:[ -]?[0-9]){7}(?![0-9])")

# -- the ingress's proof: the merchant's own Idram ID ------------------------------------------


def account_verifiers(stored: Mapping[str, Any]) -> dict[str, str]:
    """What the ingress keeps to check a merchant's callbacks: sha256 of its Idram ID."""
    account = str(stored.get("rec_account") or "").strip()
    return {ACCOUNT_VERIFIER: sha256_verifier(account)} if account else {}


def check_account(verifiers: Mapping[str, str], inbound: InboundCallback) -> str | None:
    """None when ``EDP_REC_ACCOUNT`` is the merchant's Idram ID, else why not.

    A merchant without a stored verifier is refused too. The hash is compared even
    when the field is missing, so that every refusal takes as long.
    """
    expected = verifiers.get(ACCOUNT_VERIFIER, "")
    presented = form_fields(inbound).get("EDP_REC_ACCOUNT", "").strip()
    matches = hmac.compare_digest(sha256_verifier(presented), expected.lower() or "0" * 64)
    if not presented:
        return "account_missing"
    return None if matches and expected else "account_mismatch"


# -- the worker's proof: the checksum ---------------------------------------------------------


def verify_checksum(credentials: IdramCredentials, inbound: InboundCallback) -> str | None:
    """None when ``EDP_CHECKSUM`` is right for the merchant's secret key, else why not."""
    fields = form_fields(inbound)
    presented = fields.get(CHECKSUM, "").strip().upper()
    if not presented:
        return "checksum_missing"
    if any(name not in fields for name in CHECKSUM_FIELDS):
        return "checksum_fields_missing"
    expected = checksum(fields, credentials.secret_key)
    checksum_ok = hmac.compare_digest(expected.encode(), presented.encode())
    account = fields["EDP_REC_ACCOUNT"].strip().encode()
    account_ok = hmac.compare_digest(account, credentials.rec_account.encode())
    if not checksum_ok:
        return "checksum_mismatch"
    return None if account_ok else "account_mismatch"


# -- reading ----------------------------------------------------------------------------------


def form_fields(inbound: InboundCallback) -> dict[str, str]:
    """The posted form's fields; query parameters fill in names the body does not carry."""
    return {**inbound.query(), **inbound.form()}


def is_precheck(fields: Mapping[str, str]) -> bool:
    return fields.get(PRECHECK_FLAG, "").strip().upper() == "YES"


def read_precheck(inbound: InboundCallback) -> Precheck | None:
    """Idram's question before it takes the money; None for a request that is no precheck."""
    fields = form_fields(inbound)
    if not is_precheck(fields):
        return None
    values = {name: _text(fields, name) for name in PRECHECK_FIELDS}
    return Precheck(
        gateway_ref=values["EDP_BILL_NO"],
        amount=_amount(values["EDP_AMOUNT"]),
        account=values["EDP_REC_ACCOUNT"],
    )


def read_confirmation(inbound: InboundCallback) -> CallbackEvent:
    """The payment a confirmation reports. Raises CallbackMalformed."""
    fields = form_fields(inbound)
    if PRECHECK_FLAG in fields:
        raise CallbackMalformed("a precheck is not a result")
    values = {name: _text(fields, name) for name in (*CHECKSUM_FIELDS, CHECKSUM)}
    trans_id = values["EDP_TRANS_ID"]
    verdict = GatewayVerdict(
        outcome=Outcome.SUCCEEDED,
        result_code=RESULT_CODE,
        message=f"Idram payment {trans_id} of {values['EDP_TRANS_DATE']}",
        amount=_amount(values["EDP_AMOUNT"]),
        receipt=trans_id,
    )
    return CallbackEvent(
        event_key=f"idram:{trans_id}",
        gateway_ref=values["EDP_BILL_NO"],
        secondary_ref=None,
        verdict=verdict,
        masked_body=masked_body(fields),
    )


def _text(fields: Mapping[str, str], name: str) -> str:
    text = fields.get(name, "").strip()
    if not text:
        raise CallbackMalformed(f"{name} is missing")
    if len(text) > MAX_FIELD_LENGTH:
        raise CallbackMalformed(f"{name} is too long")
    return text


def _amount(text: str) -> Money:
    if not _DECIMAL.fullmatch(text):
        raise CallbackMalformed("EDP_AMOUNT is not an amount")
    try:
        amount = Money.parse_major(text, "AMD")
    except MalipoError:
        raise CallbackMalformed("EDP_AMOUNT is not an amount") from None
    if amount.amount_minor <= 0:
        raise CallbackMalformed("EDP_AMOUNT is not positive")
    return amount


# -- masking ----------------------------------------------------------------------------------


def mask_tail(value: str) -> str:
    """Keep the last four characters: ``*****2345``."""
    if len(value) <= 4:
        return "*" * len(value)
    return "*" * (len(value) - 4) + value[-4:]


def mask_text(text: str) -> str:
    """Phone numbers in free text: the shared masker, and Armenian national forms."""
    return _AM_NATIONAL.sub(lambda m: mask_tail(m.group(0)), mask_phone_numbers(text))


# Fields whose shape is known and carries no personal data: kept as they came. The
# shared masker would read a nine-digit Idram ID starting with 1 as a Kenyan number.
_KEPT = frozenset(
    {"EDP_BILL_NO", "EDP_REC_ACCOUNT", "EDP_AMOUNT", "EDP_TRANS_ID", "EDP_TRANS_DATE"}
)


def masked_body(fields: Mapping[str, str]) -> str:
    """What is stored of a confirmation: its fields without the checksum, the payer masked."""
    shown: dict[str, str] = {}
    for name, value in fields.items():
        if name == CHECKSUM:
            continue
        if name == "EDP_PAYER_ACCOUNT":
            shown[name] = mask_tail(value.strip())
        elif name in _KEPT:
            shown[name] = value
        else:
            shown[name] = mask_text(value)
    return json.dumps(shown, ensure_ascii=False, sort_keys=True)
