"""Telcell's result: one form post per closed invoice, signed with the shop key.

Telcell posts to the RESULT_URL typed into its cabinet (malipo's
``/callbacks/telcell/<secret>``, no attempt reference). The result names no shop,
so the ingress has nothing but the path secret to check; the worker checks the
``checksum`` with the merchant's shop key before anything is applied. Replays are
told apart by ``payment_id``, which is inside the checksum; Telcell has no status
API, so the signed result is the only word.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.domain.phone import mask_phone_numbers
from shared.gateways.base import CallbackEvent, CallbackMalformed, GatewayVerdict, InboundCallback
from shared.gateways.telcell import codes
from shared.gateways.telcell.credentials import TelcellCredentials
from shared.gateways.telcell.wire import CURRENCY, RESULT_CHECKSUM_FIELDS, result_checksum, unb64

CHECKSUM = "checksum"
MAX_FIELD_LENGTH = 200
# How a result may name the dram: the sign Telcell's links use, or its ISO codes.
AMD_NAMES = frozenset({CURRENCY, "AMD", "051", "51"})
_REQUIRED = ("issuer_id", "status", "invoice", "currency", "sum")
# Fields whose shape is known and carries no personal data: kept as they came.
_KEPT = frozenset({"issuer_id", "status", "invoice", "payment_id", "currency", "sum", "time"})
_PHONE_FIELDS = re.compile(r"(?i)phone|msisdn|buyer|mobile|wallet")
# Amounts: digits, a dot before any fraction (no signs, exponents or commas).
_DECIMAL = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")
_AM_NATIONAL = re.compile(r"(?<![0-9])0[1-9](?:[ -]?[0-9]){7}(?![0-9])")


def form_fields(inbound: InboundCallback) -> dict[str, str]:
    """The posted form's fields; query parameters fill in names the body does not carry."""
    return {**inbound.query(), **inbound.form()}


def verify_checksum(credentials: TelcellCredentials, inbound: InboundCallback) -> str | None:
    """None when ``checksum`` is right for the merchant's shop key, else why not."""
    fields = form_fields(inbound)
    presented = fields.get(CHECKSUM, "").strip().lower()
    if not presented:
        return "checksum_missing"
    # A rejection may come without a payment id (unverified): it is hashed as empty.
    signed = {name: fields.get(name, "") for name in RESULT_CHECKSUM_FIELDS}
    expected = result_checksum(credentials.shop_key, signed)
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        return "checksum_mismatch"
    return None


def read_result(inbound: InboundCallback) -> CallbackEvent:
    """The invoice's end a result reports. Raises CallbackMalformed."""
    fields = form_fields(inbound)
    values = {name: _text(fields, name) for name in _REQUIRED}
    try:
        attempt_ref = unb64(values["issuer_id"]).strip()
    except ValueError:
        raise CallbackMalformed("issuer_id is not base64 of our reference") from None
    if not attempt_ref or len(attempt_ref) > MAX_FIELD_LENGTH:
        raise CallbackMalformed("issuer_id carries no reference")
    if values["currency"].upper() not in AMD_NAMES:
        raise CallbackMalformed(f"currency {values['currency'][:10]!r} is not the dram")
    status = values["status"].upper()
    payment_id = fields.get("payment_id", "").strip()[:MAX_FIELD_LENGTH]
    meaning = codes.status_meaning(status)
    verdict = GatewayVerdict(
        outcome=meaning.outcome,
        result_code=status,
        failure_code=meaning.failure_code,
        message=f"Telcell invoice {values['invoice']} {status}",
        amount=_amount(values["sum"]),
        receipt=payment_id or None,
    )
    # Without a payment id (a rejection may lack one), the invoice and its end are the key.
    event_key = f"telcell:{payment_id}" if payment_id else f"telcell:{values['invoice']}:{status}"
    return CallbackEvent(
        event_key=event_key,
        gateway_ref=attempt_ref,
        secondary_ref=values["invoice"],
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
        raise CallbackMalformed("sum is not an amount")
    try:
        amount = Money.parse_major(text, "AMD")
    except MalipoError:
        raise CallbackMalformed("sum is not an amount") from None
    if amount.amount_minor <= 0:
        raise CallbackMalformed("sum is not positive")
    return amount


def mask_tail(value: str) -> str:
    """Keep the last four characters: ``*******3456``."""
    if len(value) <= 4:
        return "*" * len(value)
    return "*" * (len(value) - 4) + value[-4:]


def mask_text(text: str) -> str:
    """Phone numbers in free text: the shared masker, and Armenian national forms."""
    return _AM_NATIONAL.sub(lambda m: mask_tail(m.group(0)), mask_phone_numbers(text))


def masked_body(fields: Mapping[str, str]) -> str:
    """What is stored of a result: its fields without the checksum, phone numbers masked."""
    shown: dict[str, str] = {}
    for name, value in fields.items():
        if name == CHECKSUM:
            continue
        if name in _KEPT:
            shown[name] = value
        elif _PHONE_FIELDS.search(name):
            shown[name] = mask_tail(value.strip())
        else:
            shown[name] = mask_text(value)
    return json.dumps(shown, ensure_ascii=False, sort_keys=True)
