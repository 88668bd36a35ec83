"""Shape checks for merchant commands: clear catalogue codes, never a guess."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import falcon

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.registry import DEFAULT_GATEWAY, GatewayRegistry

PAYMENT_FIELDS = frozenset(
    {"amount", "currency", "phone", "reference", "description", "gateway", "customer_email"}
)
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+"
)
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.:/#-]{0,63}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def idempotency_key(req: falcon.Request) -> str:
    key = req.get_header("Idempotency-Key")
    if key is None or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise MalipoError(errors.MISSING_IDEMPOTENCY_KEY)
    return key


def read_json_object(req: falcon.Request, max_bytes: int, max_depth: int = 10) -> dict[str, Any]:
    """The body as a UTF-8 JSON object within ``max_bytes`` and ``max_depth`` levels of nesting;
    refusals carry catalogue codes."""
    media_type, _, parameters = (req.content_type or "").partition(";")
    if media_type.strip().lower() != "application/json" or not _utf8_charset(parameters):
        raise MalipoError(errors.UNSUPPORTED_MEDIA_TYPE)
    if req.content_length is not None and req.content_length > max_bytes:
        raise MalipoError(errors.PAYLOAD_TOO_LARGE, f"the body must be at most {max_bytes} bytes")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise MalipoError(errors.PAYLOAD_TOO_LARGE, f"the body must be at most {max_bytes} bytes")
    try:
        # Decoded as UTF-8 first: json.loads would otherwise guess UTF-16 or UTF-32.
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise MalipoError(errors.INVALID_JSON) from None
    if not isinstance(document, dict):
        raise MalipoError(errors.INVALID_JSON)
    if nesting_depth(document) > max_depth:
        raise MalipoError(errors.INVALID_JSON, f"the body nests deeper than {max_depth} levels")
    return document


def _utf8_charset(parameters: str) -> bool:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def nesting_depth(document: Any) -> int:
    """How many containers deep a parsed JSON value goes (a scalar is 0), without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: list[Any] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def payment_command(document: dict[str, Any], gateways: GatewayRegistry) -> dict[str, Any]:
    """The normalised payment request (phone canonical, gateway named) or a refusal."""
    unknown = sorted(set(document) - PAYMENT_FIELDS)
    if unknown:
        raise MalipoError(errors.INVALID_REQUEST, f"unknown field(s): {field_names(unknown)}")
    for name in ("amount", "currency", "phone", "reference"):
        if name not in document:
            raise MalipoError(errors.INVALID_REQUEST, f"{name} is required")

    gateway_name = document.get("gateway", DEFAULT_GATEWAY)
    if not isinstance(gateway_name, str):
        raise MalipoError(errors.UNSUPPORTED_GATEWAY)
    adapter = gateways.get(gateway_name)

    currency = document["currency"]
    if not isinstance(currency, str) or currency.upper() != adapter.currency:
        raise MalipoError(errors.INVALID_CURRENCY, f"{gateway_name} takes {adapter.currency} only")
    amount = Money.from_minor(document["amount"], adapter.currency)
    phone = adapter.check_request(amount, document["phone"])

    reference = document["reference"]
    if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
        raise MalipoError(errors.INVALID_REFERENCE)
    description = document.get("description")
    if description is not None and (
        not isinstance(description, str)
        or not 1 <= len(description) <= 100
        or not description.isprintable()
    ):
        raise MalipoError(errors.INVALID_REQUEST, "description must be 1-100 printable characters")
    email = document.get("customer_email")
    if email is not None and (
        not isinstance(email, str) or len(email) > 254 or not _EMAIL.fullmatch(email)
    ):
        raise MalipoError(errors.INVALID_REQUEST, "customer_email must be an e-mail address")
    return {
        "amount": amount.amount_minor,
        "currency": amount.currency,
        "phone": phone,
        "reference": reference,
        "description": description,
        "gateway": adapter.name,
        "customer_email": email,
    }


def field_names(names: list[str], limit: int = 5) -> str:
    """Names from the caller, quoted and escaped for a message (never raw text echoed back)."""
    shown = ", ".join(json.dumps(name[:40]) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def time_param(req: falcon.Request, name: str = "since") -> datetime | None:
    """An ISO-8601 time with a zone from the query string, or None when absent."""
    raw = req.get_param(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise MalipoError(errors.INVALID_REQUEST, f"{name} must be an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise MalipoError(errors.INVALID_REQUEST, f"{name} needs a time zone (e.g. Z)")
    return moment
