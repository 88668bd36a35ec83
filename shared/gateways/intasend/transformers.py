"""IntaSend's wire format, and its mapping to the gateway seam's dataclasses.

Request and response shapes are the reference's (IntaSend's Python SDK and API
docs). Unverified there, and so kept lenient here: whether ``amount`` may be a
decimal string (it is sent as one, ``Money.format()``), the ``narrative``
length (cut to :data:`NARRATIVE_MAX`), and whether a 201 rather than a 200
answers an accepted push (both are taken).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.domain.errors import MalipoError
from shared.domain.money import EXPONENTS, Money
from shared.gateways.base import GatewayVerdict, PaymentRequest
from shared.gateways.intasend import codes

METHOD: Final = "M-PESA"
NARRATIVE_MAX: Final = 100
MAX_ID_LENGTH: Final = 100
PUBLIC_KEY_HEADER: Final = "INTASEND_PUBLIC_API_KEY"
# Keys look like ISPubKey_test_<uuid> / ISSecretKey_live_<uuid>; only the prefix is checked.
_PUBLISHABLE = re.compile(r"ISPubKey_[A-Za-z0-9_\-]{1,200}")
_SECRET = re.compile(r"ISSecretKey_[A-Za-z0-9_\-]{1,200}")
_WALLET = re.compile(r"[A-Za-z0-9_\-]{1,64}")


class InvoiceUnreadable(ValueError):
    """An invoice object that is not IntaSend's shape."""


@dataclass(frozen=True)
class IntaSendCredentials:
    """A merchant's IntaSend API keys, dashboard webhook challenge and optional wallet."""

    publishable_key: str
    secret_key: str
    challenge: str
    wallet_id: str | None = None
    # Whether the account requires send-money batches to be approved (then approved at once).
    payout_approval: bool = False

    def __post_init__(self) -> None:
        if not _PUBLISHABLE.fullmatch(self.publishable_key):
            raise ValueError("publishable_key must look like ISPubKey_<live|test>_<id>")
        if not _SECRET.fullmatch(self.secret_key):
            raise ValueError("secret_key must look like ISSecretKey_<live|test>_<id>")
        if (
            not self.challenge
            or len(self.challenge) > 255
            or self.challenge != self.challenge.strip()
        ):
            raise ValueError("challenge must be 1-255 characters without surrounding spaces")
        if self.wallet_id is not None and not _WALLET.fullmatch(self.wallet_id):
            raise ValueError("wallet_id must be 1-64 letters, digits, '-' or '_'")

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> IntaSendCredentials:
        """Stored credentials; other keys (the callback secret) are ignored."""
        try:
            wallet = stored.get("wallet_id")
            approval = str(stored.get("payout_approval") or "no").strip().lower()
            if approval not in ("yes", "no"):
                raise ValueError("payout_approval must be 'yes' or 'no'")
            return cls(
                publishable_key=str(stored["publishable_key"]).strip(),
                secret_key=str(stored["secret_key"]).strip(),
                challenge=str(stored["challenge"]),
                wallet_id=str(wallet).strip() if wallet else None,
                payout_approval=approval == "yes",
            )
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]} is required") from None

    def api_headers(self) -> dict[str, str]:
        """The headers of an authenticated call (Bearer secret and the public key header)."""
        return {
            "Authorization": f"Bearer {self.secret_key}",
            PUBLIC_KEY_HEADER: self.publishable_key,
        }


def stk_push_body(credentials: IntaSendCredentials, request: PaymentRequest) -> dict[str, Any]:
    """``POST payment/mpesa-stk-push/``: ``api_ref`` is the attempt, to find it again."""
    body: dict[str, Any] = {
        "currency": request.amount.currency,
        "method": METHOD,
        "amount": request.amount.format(),
        "phone_number": request.phone,
        "api_ref": request.attempt_ref,
        "narrative": (request.description or request.reference or "Payment")[:NARRATIVE_MAX],
    }
    customer = request.customer
    name = " ".join(part for part in (customer.first_name, customer.last_name) if part)
    if name:
        body["name"] = name
    if customer.email:
        body["email"] = customer.email
    if credentials.wallet_id:
        body["wallet_id"] = credentials.wallet_id
    return body


def status_body(credentials: IntaSendCredentials, invoice_id: str) -> dict[str, str]:
    """``POST payment/status/``, a "no-auth" call: the public key in the body."""
    return {"invoice_id": invoice_id, "public_key": credentials.publishable_key}


def error_text(document: Mapping[str, Any]) -> str:
    """The words of either shape: ``{detail}`` or ``{type, errors: [{code, detail, attr}]}``."""
    found = document.get("errors")
    if isinstance(found, list) and found:
        parts = []
        for item in found[:5]:
            if not isinstance(item, Mapping):
                continue
            where = f" ({item['attr']})" if item.get("attr") else ""
            parts.append(f"{item.get('code') or 'error'}: {item.get('detail') or ''}{where}")
        if parts:
            return "; ".join(parts)[:300]
    detail = document.get("detail")
    return str(detail)[:300] if detail else ""


def invoice_id_of(invoice: Mapping[str, Any]) -> str:
    value = invoice.get("invoice_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvoiceUnreadable("invoice_id is missing or not text")
    text = str(value).strip()
    if not text or len(text) > MAX_ID_LENGTH:
        raise InvoiceUnreadable("invoice_id is empty or too long")
    return text


def state_of(invoice: Mapping[str, Any]) -> str:
    state = invoice.get("state")
    if not isinstance(state, str) or state.strip().upper() not in codes.STATES:
        raise InvoiceUnreadable(f"state is not an IntaSend state: {str(state)[:20]!r}")
    return state.strip().upper()


def amount_of(value: object, currency: str) -> Money | None:
    """An amount as a decimal string or a number (IntaSend sends both); None when absent."""
    if value is None or value == "":
        return None
    try:
        money = Money.parse_major(value, currency)
    except MalipoError:
        raise InvoiceUnreadable(f"not an amount: {str(value)[:20]!r}") from None
    if money.amount_minor < 0:
        raise InvoiceUnreadable("a negative amount")
    return money


def invoice_verdict(invoice: Mapping[str, Any]) -> GatewayVerdict:
    """What an invoice object says. Raises InvoiceUnreadable."""
    state = state_of(invoice)
    currency = str(invoice.get("currency") or "KES").strip().upper()
    failed_code, failed_reason = invoice.get("failed_code"), invoice.get("failed_reason")
    meaning = codes.meaning_of(state, failed_code, failed_reason)
    if currency not in EXPONENTS:
        raise InvoiceUnreadable(f"currency {currency[:8]!r} is not one malipo knows")
    amount = amount_of(invoice.get("value"), currency)
    fee = amount_of(invoice.get("charges"), currency)
    receipt = invoice.get("mpesa_reference")
    account = invoice.get("account")
    return GatewayVerdict(
        outcome=meaning.outcome,
        result_code=codes.result_code(state, failed_code),
        failure_code=meaning.failure_code,
        message=str(failed_reason or "")[:300] if state == codes.FAILED else state,
        amount=amount,
        receipt=str(receipt).strip()[:MAX_ID_LENGTH] if receipt else None,
        phone=str(account) if isinstance(account, (str, int)) and str(account).isdigit() else None,
        fee=fee if fee is not None and fee.amount_minor > 0 else None,
    )
