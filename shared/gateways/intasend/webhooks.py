"""IntaSend's collection webhooks: the challenge check and the event they describe.

IntaSend signs nothing and sends no timestamp (reference): the only proof is
the merchant-chosen ``challenge`` echoed in every payload, compared here in
constant time with its stored SHA-256. A webhook is a trigger; with
``confirm_before_credit`` the status query decides before money moves.
A collection payload is the flat invoice plus ``challenge``; chargeback
(``chargeback_id``, a nested ``invoice``) and send-money (``tracking_id``)
payloads are transfer results (``shared.gateways.intasend.transfers``), refused
here as malformed collections.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Final

from shared.domain.phone import mask_phone_numbers
from shared.gateways.base import CallbackEvent, CallbackMalformed, InboundCallback
from shared.gateways.intasend.transformers import (
    InvoiceUnreadable,
    invoice_id_of,
    invoice_verdict,
    state_of,
)

CHALLENGE_VERIFIER: Final = "challenge_sha256"
CHALLENGE_MISSING: Final = "challenge_missing"
CHALLENGE_INVALID: Final = "challenge_invalid"
REDACTED: Final = "[redacted]"
# Compared against when a merchant has no verifier, so that every refusal takes as long.
_NO_VERIFIER: Final = "0" * 64


def json_document(body: bytes) -> dict[str, Any] | None:
    """A webhook body's JSON object; None for anything else."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def challenge_refusal(verifiers: Mapping[str, str], inbound: InboundCallback) -> str | None:
    """None when the body's ``challenge`` hashes to the stored verifier, else why not."""
    document = json_document(inbound.body)
    challenge = document.get("challenge") if document is not None else None
    if not isinstance(challenge, str) or not challenge:
        return CHALLENGE_MISSING
    presented = hashlib.sha256(challenge.encode()).hexdigest()
    expected = verifiers.get(CHALLENGE_VERIFIER) or _NO_VERIFIER
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        return CHALLENGE_INVALID
    return None


def masked_body(document: Mapping[str, Any]) -> str:
    """The payload to keep: the challenge replaced, phone numbers masked."""
    kept = dict(document)
    if "challenge" in kept:
        kept["challenge"] = REDACTED
    return mask_phone_numbers(json.dumps(kept, ensure_ascii=False, sort_keys=True))


def parse_collection_webhook(body: bytes) -> CallbackEvent:
    """The event a collection webhook describes. Raises CallbackMalformed.

    Every state change is its own event (``invoice:<id>:<state>``): a repeated
    delivery shares its key, and a PROCESSING after COMPLETE is a PENDING word
    that the state machine ignores.
    """
    document = json_document(body)
    if document is None:
        raise CallbackMalformed("not a JSON object")
    if "chargeback_id" in document:
        raise CallbackMalformed("a chargeback webhook, not a collection")
    if "tracking_id" in document:
        raise CallbackMalformed("a send-money webhook, not a collection")
    try:
        invoice_id = invoice_id_of(document)
        state = state_of(document)
        verdict = invoice_verdict(document)
    except InvoiceUnreadable as exc:
        raise CallbackMalformed(str(exc)) from None
    api_ref = document.get("api_ref")
    return CallbackEvent(
        event_key=f"invoice:{invoice_id}:{state}",
        gateway_ref=invoice_id,
        secondary_ref=str(api_ref)[:100] if isinstance(api_ref, str) and api_ref else None,
        verdict=verdict,
        masked_body=masked_body(document),
    )
