"""InTouch's callbacks: HTTP Basic proof, the two shapes, and bodies masked for storage.

InTouch signs nothing. Its documented protection is HTTP Basic on the merchant's
endpoint, so the proof is the merchant's callback credentials, compared with the
stored hash in constant time; the path secret is checked by the ingress before.
A callback is a trigger: successes are confirmed with check_status before credit
(``confirm_before_credit``).

Two shapes arrive:

* TouchPay (hosted flow): a GET whose query string carries ``payment_mode,
  paid_sum, paid_amount, payment_token, payment_status, command_number,
  payment_validation_date``, sometimes with the same fields as a JSON or form body;
* GU (direct collection): a JSON POST ``{service_id, gu_transaction_id, status,
  partner_transaction_id, call_back_url, commission, message}`` (unverified).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.domain.phone import mask_phone_numbers
from shared.gateways.base import CallbackEvent, CallbackMalformed, GatewayVerdict, InboundCallback
from shared.gateways.description import sha256_verifier
from shared.gateways.intouch import codes

BASIC_VERIFIER = "basic_sha256"
MAX_ID_LENGTH = 100
TOUCHPAY_FIELDS = (
    "payment_mode",
    "paid_sum",
    "paid_amount",
    "payment_token",
    "payment_status",
    "command_number",
    "payment_validation_date",
)

# -- authentication ----------------------------------------------------------------------------


def basic_verifiers(stored: Mapping[str, Any]) -> dict[str, str]:
    """What the ingress keeps to check a merchant's callbacks: sha256 of "user:pass"."""
    username, password = stored.get("callback_username"), stored.get("callback_password")
    if not username or not password:
        return {}
    return {BASIC_VERIFIER: sha256_verifier(f"{username}:{password}")}


def check_basic(verifiers: Mapping[str, str], authorization: str | None) -> str | None:
    """None when the Authorization header holds the merchant's Basic credentials, else why not.

    A merchant without a stored verifier is refused too: InTouch's callbacks carry
    nothing else that proves where they come from.
    """
    expected = verifiers.get(BASIC_VERIFIER, "")
    if not authorization or not authorization.strip():
        return "basic_auth_missing"
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return "basic_auth_missing"
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    # Hash and compare even what cannot be decoded, so that every refusal takes as long.
    presented = sha256_verifier(decoded)
    matches = hmac.compare_digest(presented, expected.lower() or "0" * 64)
    return None if matches and expected and ":" in decoded else "basic_auth_invalid"


# -- parsing ------------------------------------------------------------------------------------


def parse_intouch_callback(inbound: InboundCallback) -> CallbackEvent:
    """The event a TouchPay or GU callback describes. Raises CallbackMalformed."""
    query = inbound.query()
    body = _body_fields(inbound)
    fields = _merged(query, body)
    masked = _masked_body(query, body, inbound)
    if "command_number" in fields or "payment_status" in fields:
        return _touchpay_event(fields, masked)
    if "partner_transaction_id" in fields:
        return _gu_event(fields, masked)
    raise CallbackMalformed("neither a TouchPay nor a GU callback")


def _touchpay_event(fields: Mapping[str, Any], masked: str) -> CallbackEvent:
    command_number = _text(fields.get("command_number"), "command_number")
    status = _text(fields.get("payment_status"), "payment_status")
    token = fields.get("payment_token")
    payment_token = _text(token, "payment_token") if token not in (None, "") else None
    for name in ("paid_amount", "paid_sum"):
        _check_amount(fields.get(name), name)
    meaning = codes.touchpay_meaning(status)
    verdict = GatewayVerdict(
        outcome=meaning.outcome,
        result_code=status,
        failure_code=meaning.failure_code,
        message=f"TouchPay payment_status {status}",
        # The callback names no currency (XOF and XAF agencies send the same shape), and a
        # guessed one would flag every payment of the other zone as an amount mismatch:
        # check_status, which confirms every success before credit, is the amount's word.
        amount=None,
        receipt=payment_token,
    )
    return CallbackEvent(
        event_key=f"touchpay:{command_number}:{status}",
        gateway_ref=command_number,
        secondary_ref=payment_token,
        verdict=verdict,
        masked_body=masked,
    )


def _gu_event(fields: Mapping[str, Any], masked: str) -> CallbackEvent:
    order_number = _text(fields.get("partner_transaction_id"), "partner_transaction_id")
    status = _text(fields.get("status"), "status").upper()
    gu_id = fields.get("gu_transaction_id")
    gu_transaction_id = _text(gu_id, "gu_transaction_id") if gu_id not in (None, "") else None
    meaning = codes.gu_callback_meaning(status)
    verdict = GatewayVerdict(
        outcome=meaning.outcome,
        result_code=status,
        failure_code=meaning.failure_code,
        message=str(fields.get("message") or "")[:300],
        receipt=gu_transaction_id,
    )
    return CallbackEvent(
        event_key=f"gu:{order_number}:{status}",
        gateway_ref=order_number,
        secondary_ref=gu_transaction_id,
        verdict=verdict,
        masked_body=masked,
    )


def _body_fields(inbound: InboundCallback) -> dict[str, Any]:
    """The body as fields: a JSON object, else a form, else nothing (a bare GET)."""
    if not inbound.body.strip():
        return {}
    document = inbound.json_body()
    if document is not None:
        if not isinstance(document, dict):
            raise CallbackMalformed("the JSON body is not an object")
        return document
    content_type = inbound.headers.get("content-type", "")
    form = inbound.form()
    if form and ("form" in content_type or "=" in inbound.body.decode("utf-8", "replace")):
        return dict(form)
    raise CallbackMalformed("the body is neither JSON nor a form")


def _merged(query: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, Any]:
    """Query and body fields together; the two must not disagree on a field both carry."""
    for name in set(query) & set(body):
        if str(body[name]).strip() != query[name].strip():
            raise CallbackMalformed(f"{name} differs between the query string and the body")
    return {**query, **body}


def _text(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CallbackMalformed(f"{name} is missing or not text")
    text = str(value).strip()
    if not text or len(text) > MAX_ID_LENGTH:
        raise CallbackMalformed(f"{name} is empty or too long")
    return text


def _check_amount(value: Any, name: str) -> None:
    if value in (None, ""):
        return
    try:
        Money.parse_major(value, "XOF")  # the number only: XOF and XAF read alike
    except MalipoError:
        raise CallbackMalformed(f"{name} is not an amount") from None


# -- masking --------------------------------------------------------------------------------

# Field names that hold a phone number in InTouch's documents (ours and GU's).
_PHONE_FIELDS = re.compile(r"(?i)phone|msisdn|recipientnumber|destinataire|mobile|telephone")
# Numbers of the countries InTouch serves, written internationally: +221 77 123 45 67, 00225…
_WEST_CENTRAL_AFRICAN = re.compile(
    r"(?<![0-9])(?:\+|00)?(?:221|223|225|226|227|228|229|237|241|242)(?:[ -]?[0-9]){8,10}(?![0-9])"
)


def mask_phone(value: str) -> str:
    """Keep the first three and last two digits of a number: ``221*******67``."""
    digits = value.strip()
    if len(digits) <= 5:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 5) + digits[-2:]


def mask_text(text: str) -> str:
    """Mask phone numbers in free text: Kenyan ones (shared), and the CFA zones' (here).

    ``shared.domain.phone.mask_phone_numbers`` only knows Kenyan numbers; the CFA
    zones' international forms are masked here until the shared masker knows them.
    """
    return _WEST_CENTRAL_AFRICAN.sub(lambda m: mask_phone(m.group(0)), mask_phone_numbers(text))


def _masked_value(name: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _masked_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked_value(name, v) for v in value]
    if isinstance(value, (str, int)) and not isinstance(value, bool) and _PHONE_FIELDS.search(name):
        return mask_phone(str(value))
    if isinstance(value, str):
        return mask_text(value)
    return value


def _masked_body(
    query: Mapping[str, str], body: Mapping[str, Any], inbound: InboundCallback
) -> str:
    """What is stored of the callback: its query and body, phone numbers masked."""
    document = {
        "method": inbound.method,
        "query": _masked_value("", dict(query)),
        "body": _masked_value("", dict(body)),
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True)
