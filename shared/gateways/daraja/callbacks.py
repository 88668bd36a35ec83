"""Reading STK callbacks: items by name, codes as strings, phones masked for storage."""

from __future__ import annotations

import json
from typing import Any

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.domain.phone import mask_phone_numbers
from shared.gateways.base import CallbackEvent, CallbackMalformed, GatewayVerdict
from shared.gateways.daraja.codes import meaning_of

MAX_ID_LENGTH = 100


def _text(value: Any, name: str) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise CallbackMalformed(f"{name} is missing or not text")
    text = str(value).strip()
    if not text or len(text) > MAX_ID_LENGTH:
        raise CallbackMalformed(f"{name} is empty or too long")
    return text


def metadata_items(stk_callback: dict[str, Any]) -> dict[str, Any]:
    """``CallbackMetadata.Item`` as {Name: Value}; items without a Value are kept as None."""
    metadata = stk_callback.get("CallbackMetadata") or {}
    items = metadata.get("Item") if isinstance(metadata, dict) else None
    if items is None:
        return {}
    if not isinstance(items, list):
        raise CallbackMalformed("CallbackMetadata.Item is not a list")
    named: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("Name"), str):
            named[item["Name"]] = item.get("Value")
    return named


def parse_stk_callback(body: bytes) -> CallbackEvent:
    """The event a Daraja STK callback describes. Raises CallbackMalformed."""
    try:
        document = json.loads(body)
        stk = document["Body"]["stkCallback"]
    except (ValueError, KeyError, TypeError, RecursionError):
        # RecursionError: hostile nesting depth; refused like any other unreadable body.
        raise CallbackMalformed("not a Daraja STK callback") from None
    if not isinstance(stk, dict):
        raise CallbackMalformed("stkCallback is not an object")
    checkout_id = _text(stk.get("CheckoutRequestID"), "CheckoutRequestID")
    merchant_request_id = stk.get("MerchantRequestID")
    result_code = _text(stk.get("ResultCode"), "ResultCode")
    meaning = meaning_of(result_code)
    items = metadata_items(stk)

    amount = None
    if items.get("Amount") is not None:
        try:
            amount = Money.parse_major(items["Amount"], "KES")
        except MalipoError:
            raise CallbackMalformed("Amount is not an amount") from None
    receipt = items.get("MpesaReceiptNumber")
    phone = items.get("PhoneNumber")
    verdict = GatewayVerdict(
        outcome=meaning.outcome,
        result_code=result_code,
        failure_code=meaning.failure_code,
        message=str(stk.get("ResultDesc") or "")[:300],
        amount=amount,
        receipt=_text(receipt, "MpesaReceiptNumber") if receipt is not None else None,
        phone=str(phone) if phone is not None else None,
    )
    return CallbackEvent(
        event_key=f"stk:{checkout_id}:{result_code}",
        gateway_ref=checkout_id,
        secondary_ref=str(merchant_request_id) if merchant_request_id is not None else None,
        verdict=verdict,
        masked_body=mask_phone_numbers(body.decode("utf-8", errors="replace")),
    )
