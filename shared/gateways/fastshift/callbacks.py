"""FastShift's webhook: ``status`` and ``order_number``, unsigned, as JSON or as a form.

The document says only that the webhook "passes" ``status`` and
``order_number``; integrators read it as a JSON body or as a form
(``application/x-www-form-urlencoded``), and the browser's return to
``callback_url`` carries the same two names in its query string. All three
places are read here (they must agree where more than one carries a field).

FastShift signs nothing and sends no secret: beyond malipo's path secret there
is nothing to authenticate, so a webhook is only a trigger. The description's
``confirm_before_credit`` makes malipo ask ``order/status`` before any credit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from shared.domain.phone import mask_phone_numbers
from shared.gateways.base import CallbackEvent, CallbackMalformed, GatewayVerdict, InboundCallback
from shared.gateways.fastshift import codes
from shared.gateways.fastshift.wire import MAX_ID_LENGTH, order_of

MAX_STATUS_LENGTH: Final = 40

# Field names that can hold a phone number (FastShift's ``username`` is the payer's phone).
_PHONE_FIELDS: Final = re.compile(r"(?i)phone|msisdn|username|mobile|telephone|fastshift_id")


def parse_fastshift_callback(inbound: InboundCallback) -> CallbackEvent:
    """The event a webhook describes. Raises CallbackMalformed."""
    query = inbound.query()
    body = _body_fields(inbound)
    fields = _merged(query, _flattened(body))
    order_number = _text(fields.get("order_number"), "order_number", MAX_ID_LENGTH)
    status = codes.normalised(_text(fields.get("status"), "status", MAX_STATUS_LENGTH))
    meaning = codes.meaning(status)
    verdict = GatewayVerdict(
        outcome=meaning.outcome,
        result_code=status,
        failure_code=meaning.failure_code,
        message=f"FastShift webhook status {status}",
        # The webhook names no amount: order/status, asked before credit, is the amount's word.
        amount=None,
    )
    return CallbackEvent(
        event_key=f"fastshift:{order_number}:{status}",
        gateway_ref=order_number,
        secondary_ref=None,
        verdict=verdict,
        masked_body=_masked_body(query, body, inbound),
    )


def _body_fields(inbound: InboundCallback) -> dict[str, Any]:
    """The body as fields: a JSON object, else a form, else nothing."""
    if not inbound.body.strip():
        return {}
    document = inbound.json_body()
    if document is not None:
        if not isinstance(document, dict):
            raise CallbackMalformed("the JSON body is not an object")
        return document
    form = inbound.form()
    if form:
        return dict(form)
    raise CallbackMalformed("the body is neither JSON nor a form")


def _flattened(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """A body shaped like a status answer (``{"data": {"order": {…}}}``) read as its order.

    Unverified that FastShift ever sends it so; the flat two fields are what it documents.
    """
    order = order_of(body)
    if "order_number" in body or not order:
        return body
    return {name: order[name] for name in ("status", "order_number") if name in order}


def _merged(query: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, Any]:
    """Query and body fields together; the two must not disagree on a field both carry."""
    for name in ("status", "order_number"):
        if name in query and name in body and str(body[name]).strip() != query[name].strip():
            raise CallbackMalformed(f"{name} differs between the query string and the body")
    return {**query, **body}


def _text(value: Any, name: str, limit: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CallbackMalformed(f"{name} is missing or not text")
    text = str(value).strip()
    if not text or len(text) > limit:
        raise CallbackMalformed(f"{name} is empty or too long")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise CallbackMalformed(f"{name} contains control characters")
    return text


# -- masking --------------------------------------------------------------------------------


def mask_value(value: str) -> str:
    """Keep the first three and the last two characters: ``374*****45``."""
    text = value.strip()
    if len(text) <= 5:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]


def _masked(name: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _masked(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(name, v) for v in value]
    if isinstance(value, (str, int)) and not isinstance(value, bool) and _PHONE_FIELDS.search(name):
        return mask_value(str(value))
    if isinstance(value, str):
        # Armenian numbers in international form (+374…) are among the shared masker's.
        return mask_phone_numbers(value)
    return value


def _masked_body(
    query: Mapping[str, str], body: Mapping[str, Any], inbound: InboundCallback
) -> str:
    """What is stored of the webhook: its query and body, anything phone-like masked."""
    document = {
        "method": inbound.method,
        "query": _masked("", dict(query)),
        "body": _masked("", dict(body)),
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True)
