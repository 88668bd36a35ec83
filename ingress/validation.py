"""Shape checks for merchant commands: clear catalogue codes, never a guess."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import falcon

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.domain.phone import normalise_phone
from shared.gateways import catalogue
from shared.gateways.base import COLLECTION_FLOWS, Capability
from shared.gateways.description import GatewayDescription
from shared.gateways.registry import GatewayRegistry

# What a hosted page may need of the payer and where to send them afterwards.
CHECKOUT_FIELDS = ("customer_first_name", "customer_last_name", "city")
RETURN_URL_FIELDS = ("success_url", "failure_url")
PAYMENT_FIELDS = frozenset(
    {
        "amount",
        "currency",
        "phone",
        "reference",
        "description",
        "gateway",
        "flow",
        "customer_email",
        *CHECKOUT_FIELDS,
        *RETURN_URL_FIELDS,
    }
)
FLOWS = {flow.value: flow for flow in COLLECTION_FLOWS}
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
    """The normalised payment request (phone canonical), or a refusal.

    ``gateway`` and ``flow`` stay None when the merchant named none: the route chooses
    (:func:`fit_gateway`), and the request's fingerprint is of what the merchant sent.
    """
    unknown = sorted(set(document) - PAYMENT_FIELDS)
    if unknown:
        raise MalipoError(errors.INVALID_REQUEST, f"unknown field(s): {field_names(unknown)}")
    for name in ("amount", "currency", "phone", "reference"):
        if name not in document:
            raise MalipoError(errors.INVALID_REQUEST, f"{name} is required")

    currency = document["currency"]
    if not isinstance(currency, str) or currency.upper() not in catalogue.currencies():
        raise MalipoError(errors.INVALID_CURRENCY, "no gateway takes this currency")
    currency = currency.upper()
    description = None
    if document.get("gateway") is not None:
        if not isinstance(document["gateway"], str):
            raise MalipoError(errors.UNSUPPORTED_GATEWAY)
        description = gateways.describe(document["gateway"])
        if currency not in description.currencies:
            takes = ", ".join(description.currencies)
            raise MalipoError(errors.INVALID_CURRENCY, f"{description.name} takes {takes} only")
    amount = Money.from_minor(document["amount"], currency)
    regions = (
        description.phone_regions
        if description
        else tuple(
            dict.fromkeys(r for d in catalogue.for_currency(currency) for r in d.phone_regions)
        )
    )
    phone = normalise_phone(document["phone"], regions)
    flow = document.get("flow")
    if flow is not None and flow not in FLOWS:
        raise MalipoError(errors.INVALID_REQUEST, "flow must be 'push' or 'hosted'")
    command = {
        "amount": amount.amount_minor,
        "currency": amount.currency,
        "phone": phone,
        "reference": _reference(document["reference"]),
        "description": _text(document, "description"),
        "gateway": description.name if description else None,
        "flow": flow,
        "customer_email": _email(document.get("customer_email")),
    }
    # What only some payments carry is left out when absent (so messages stay small).
    for name in CHECKOUT_FIELDS:
        if (value := _text(document, name)) is not None:
            command[name] = value
    for name in RETURN_URL_FIELDS:
        if (value := _url(document, name)) is not None:
            command[name] = value
    if description is not None:
        fit_gateway(gateways, description, command)
    return command


def fit_gateway(
    gateways: GatewayRegistry, description: GatewayDescription, command: dict[str, Any]
) -> dict[str, Any]:
    """The command as ``description``'s gateway would carry it (gateway and flow named),
    or the refusal that gateway gives: amount rules, a flow it lacks, missing return URLs."""
    flow = FLOWS[command["flow"]] if command["flow"] else description.default_flow
    if flow not in description.flows:
        raise MalipoError(
            errors.CAPABILITY_NOT_SUPPORTED, f"{description.name} cannot collect by {flow.value}"
        )
    if flow == Capability.HOSTED and not all(command.get(name) for name in RETURN_URL_FIELDS):
        raise MalipoError(errors.INVALID_REQUEST, "a hosted page needs success_url and failure_url")
    gateways.get(description.name).check_amount(Money(command["amount"], command["currency"]))
    return {**command, "gateway": description.name, "flow": flow.value}


def _reference(reference: object) -> str:
    if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
        raise MalipoError(errors.INVALID_REFERENCE)
    return reference


def _text(document: dict[str, Any], name: str) -> str | None:
    value = document.get(name)
    if value is not None and (
        not isinstance(value, str) or not 1 <= len(value) <= 100 or not value.isprintable()
    ):
        raise MalipoError(errors.INVALID_REQUEST, f"{name} must be 1-100 printable characters")
    return value


def _email(email: object) -> str | None:
    if email is not None and (
        not isinstance(email, str) or len(email) > 254 or not _EMAIL.fullmatch(email)
    ):
        raise MalipoError(errors.INVALID_REQUEST, "customer_email must be an e-mail address")
    return email


def _url(document: dict[str, Any], name: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) and len(value) <= 2000 else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise MalipoError(errors.INVALID_REQUEST, f"{name} must be an absolute http(s) URL")
    return str(value)


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


def text_param(req: falcon.Request, name: str, max_length: int = 200) -> str | None:
    """A query parameter that must be printable text (no NUL, no control characters)."""
    value = req.get_param(name)
    if value is not None and (len(value) > max_length or not value.isprintable()):
        raise MalipoError(
            errors.INVALID_REQUEST,
            f"{name} must be printable text of at most {max_length} characters",
        )
    return value
