"""The one catalogue of error and failure codes.

Every refusal the ingress gives and every failure a payment ends with carries a
stable machine code from this table, an HTTP status (for answers given
synchronously) and a human message. The README's error table is generated from
the same entries (``malipo errors``), so code and docs cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    code: str
    http_status: int
    message: str


_CATALOGUE: dict[str, ErrorCode] = {}


def _code(code: str, http_status: int, message: str) -> ErrorCode:
    entry = ErrorCode(code, http_status, message)
    _CATALOGUE[code] = entry
    return entry


# Requests the ingress refuses.
INVALID_REQUEST = _code("invalid_request", 400, "The request is malformed.")
INVALID_JSON = _code("invalid_json", 400, "The body is not a JSON object.")
MISSING_IDEMPOTENCY_KEY = _code(
    "missing_idempotency_key",
    400,
    "The Idempotency-Key header (1-255 printable characters) is required.",
)
UNAUTHORIZED = _code("unauthorized", 401, "A valid API key is required.")
FORBIDDEN = _code("forbidden", 403, "This API key may not do that.")
NOT_FOUND = _code("not_found", 404, "No such resource.")
METHOD_NOT_ALLOWED = _code("method_not_allowed", 405, "That method is not allowed here.")
PAYLOAD_TOO_LARGE = _code("payload_too_large", 413, "The body is too large.")
URI_TOO_LONG = _code("uri_too_long", 414, "The request URI is too long.")
UNSUPPORTED_MEDIA_TYPE = _code(
    "unsupported_media_type", 415, "Send Content-Type: application/json (UTF-8)."
)
HEADERS_TOO_LARGE = _code(
    "headers_too_large", 431, "The request has too many headers, or one is too large."
)
RATE_LIMITED = _code("rate_limited", 429, "Too many requests; retry after the Retry-After delay.")
INVALID_AMOUNT = _code(
    "invalid_amount", 422, "The amount must be a positive integer of minor units."
)
AMOUNT_OUT_OF_RANGE = _code(
    "amount_out_of_range", 422, "The amount is outside what the gateway accepts."
)
INVALID_CURRENCY = _code("invalid_currency", 422, "The gateway does not take this currency.")
INVALID_PHONE = _code("invalid_phone", 422, "The phone number is not a valid mobile number.")
INVALID_REFERENCE = _code("invalid_reference", 422, "The reference must be 1-64 plain characters.")
UNSUPPORTED_GATEWAY = _code("unsupported_gateway", 422, "There is no such gateway.")
CURRENCY_NOT_SUPPORTED = _code(
    "currency_not_supported", 422, "The merchant has no gateway routed for this currency."
)
CAPABILITY_NOT_SUPPORTED = _code(
    "capability_not_supported", 422, "The chosen gateway cannot do what was asked."
)
GATEWAY_NOT_CONFIGURED = _code(
    "gateway_not_configured", 422, "The merchant has no credentials for this gateway."
)
GATEWAY_DISABLED = _code("gateway_disabled", 422, "This gateway is disabled for the merchant.")
ACCOUNT_MISSING = _code(
    "account_missing", 422, "The merchant accepts payments only from customers it registered."
)
KYC_REQUIRED = _code(
    "kyc_required", 422, "The merchant requires this customer to complete KYC first."
)
IDEMPOTENCY_CONFLICT = _code(
    "idempotency_conflict", 409, "This Idempotency-Key was used with a different request."
)
DUPLICATE_PAYMENT = _code(
    "duplicate_payment", 409, "A payment for this reference is pending or already succeeded."
)
ALREADY_REDEEMED = _code(
    "already_redeemed", 409, "This payment was already used for another order."
)
PAYMENT_NOT_REDEEMABLE = _code(
    "payment_not_redeemable", 409, "Only a succeeded payment can be redeemed."
)
REDEMPTION_EXPIRED = _code("redemption_expired", 410, "The payment is too old to be redeemed.")
AMOUNT_MISMATCH = _code(
    "amount_mismatch", 422, "The payment's amount differs from the expected amount."
)
ALREADY_RESOLVED = _code("already_resolved", 409, "This reconciliation item was already resolved.")
PAYMENT_NOT_RETRYABLE = _code(
    "payment_not_retryable", 409, "Only a failed, cancelled or expired payment can be retried."
)
PAYMENT_NOT_REFUNDABLE = _code(
    "payment_not_refundable", 409, "Only a succeeded payment can be refunded."
)
REFUND_EXCEEDS_PAYMENT = _code(
    "refund_exceeds_payment", 422, "The refund is more than what is left of the payment."
)
INSUFFICIENT_BALANCE = _code(
    "insufficient_balance", 422, "The merchant's available balance is less than the amount."
)
TRANSFER_NOT_ACTIONABLE = _code(
    "transfer_not_actionable", 409, "The refund or payout is not in a state that allows this."
)
DEAD_LETTER_ALREADY_REPLAYED = _code(
    "dead_letter_already_replayed",
    409,
    "The dead letter was already replayed; only a forced replay runs it again.",
)
SELF_APPROVAL = _code(
    "self_approval", 403, "A payout must be approved by another API key than the one that asked."
)
SERVICE_UNAVAILABLE = _code(
    "service_unavailable", 503, "The payment could not be queued safely; retry later."
)
INTERNAL_ERROR = _code("internal_error", 500, "Something went wrong on our side.")

# Outcomes a payment can fail with (reported on the payment, not as HTTP answers).
INSUFFICIENT_FUNDS = _code("insufficient_funds", 402, "The customer's balance is too low.")
CANCELLED_BY_USER = _code("cancelled_by_user", 402, "The customer cancelled the prompt.")
CUSTOMER_UNREACHABLE = _code(
    "customer_unreachable", 402, "The customer's phone could not be reached."
)
WRONG_PIN = _code("wrong_pin", 402, "The customer entered a wrong PIN.")
LIMIT_EXCEEDED = _code(
    "limit_exceeded", 402, "The amount is outside the customer's transaction or balance limits."
)
RULE_LIMITED = _code(
    "rule_limited", 429, "The same amount was requested from this customer within 2 minutes."
)
TRANSACTION_EXPIRED = _code("transaction_expired", 402, "The customer did not answer in time.")
PUSH_ERROR = _code(
    "push_error", 502, "The gateway could not send the prompt; the customer may retry."
)
SUBSCRIBER_BUSY = _code(
    "subscriber_busy", 409, "The customer has another transaction in progress; retry later."
)
GATEWAY_CONFIGURATION = _code(
    "gateway_configuration",
    502,
    "The gateway refused the merchant's set-up (credentials, product).",
)
GATEWAY_REJECTED = _code("gateway_rejected", 502, "The gateway refused the request.")
GATEWAY_UNAVAILABLE = _code("gateway_unavailable", 503, "The gateway could not be reached in time.")
GATEWAY_ERROR = _code("gateway_error", 502, "The gateway reported an error it did not explain.")
EXPIRED = _code("expired", 408, "No result arrived within the payment window.")
OUTCOME_UNKNOWN = _code(
    "outcome_unknown", 408, "The gateway's answer to the push was lost; no result arrived in time."
)

# Outcomes a refund or payout can fail with.
RECIPIENT_INVALID = _code(
    "recipient_invalid", 422, "The gateway refused the recipient (unregistered or invalid)."
)
GATEWAY_FUNDS_LOW = _code(
    "gateway_funds_low", 402, "The merchant's account at the gateway cannot cover the transfer."
)
DUPLICATE_TRANSFER = _code(
    "duplicate_transfer", 409, "The gateway already has a transfer with this id."
)
TRANSFER_REFUSED = _code("transfer_refused", 502, "The gateway refused the transfer.")
REJECTED_BY_APPROVER = _code("rejected_by_approver", 403, "A second key rejected the payout.")


def lookup(code: str) -> ErrorCode:
    """The catalogue entry for ``code``; an unknown code is a programming error."""
    return _CATALOGUE[code]


def catalogue() -> list[ErrorCode]:
    """Every entry, in declaration order."""
    return list(_CATALOGUE.values())


class MalipoError(Exception):
    """A refusal with a catalogue code; the ingress maps it to HTTP in one place."""

    def __init__(
        self, error: ErrorCode, detail: str | None = None, **facts: int | str | None
    ) -> None:
        super().__init__(detail or error.message)
        self.error = error
        self.detail = detail or error.message
        # Machine-readable facts beside the code (``available`` for insufficient_balance).
        self.facts = facts

    @property
    def code(self) -> str:
        return self.error.code


class RateLimited(MalipoError):
    """A ``rate_limited`` refusal that says when to come back."""

    def __init__(self, retry_after_s: int, detail: str | None = None) -> None:
        super().__init__(RATE_LIMITED, detail)
        self.retry_after_s = retry_after_s


class TransientError(Exception):
    """Something outside malipo failed for now; the same work may succeed if retried."""


class PermanentError(Exception):
    """Retrying cannot help; the message fails at once (and is dead-lettered)."""
