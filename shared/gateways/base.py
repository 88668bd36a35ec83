"""The gateway seam: plain dataclasses in and out, and small capability protocols.

A gateway package (``shared/gateways/<name>/``) holds one
:class:`~shared.gateways.description.GatewayDescription` and an adapter that
implements the capabilities the description lists, nothing more: the core asks
"can this gateway collect by a hosted page?" instead of testing its name.

Errors come out in three kinds, because they call for different actions:

* :class:`GatewayUnavailable` — the gateway certainly did not act on the call
  (could not connect, or it answered with an explicit "busy" error): safe to retry.
* :class:`GatewayOutcomeUnknown` — the call may have been acted on (timeout after
  sending, connection lost mid-answer): never re-send; query or wait.
* A refusal is not an exception: :class:`InitiateResult` says ``accepted=False``
  with a catalogue failure code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl

from shared.domain.errors import ErrorCode, TransientError
from shared.domain.money import Money


class GatewayUnavailable(TransientError):
    """The gateway did not act on the call; it may be retried after a backoff."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GatewayOutcomeUnknown(Exception):
    """The call may or may not have been acted on; re-sending could charge twice."""


class CallbackMalformed(Exception):
    """A callback that cannot be read as this gateway's callback."""


class Outcome(StrEnum):
    """What a gateway says about one transaction, in our state names."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Capability(StrEnum):
    """What a gateway can do; a description lists the ones its adapter implements."""

    PUSH = "push"  # collect by prompting the customer's phone
    HOSTED = "hosted"  # collect on the gateway's page (redirect, form or SDK)
    STATUS = "status"  # ask where a transaction stands
    CALLBACKS = "callbacks"  # read the gateway's callbacks
    CUSTOMER_REFERENCE = "customer_reference"  # a reference the customer can quote back
    REFUND = "refund"
    PAYOUT = "payout"
    HEALTH = "health"
    TRANSACTIONS = "transactions"  # list the gateway's own transactions of a window


COLLECTION_FLOWS = (Capability.PUSH, Capability.HOSTED)


@dataclass(frozen=True)
class CustomerDetails:
    """What the merchant told us about the payer, for gateways that want it."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    city: str | None = None


@dataclass(frozen=True)
class ReturnUrls:
    """Where a hosted page sends the customer afterwards."""

    success: str
    failure: str


@dataclass(frozen=True)
class PaymentRequest:
    payment_id: str
    attempt_ref: str
    amount: Money
    phone: str
    reference: str
    description: str | None
    callback_url: str
    customer: CustomerDetails = field(default_factory=CustomerDetails)
    return_urls: ReturnUrls | None = None


@dataclass(frozen=True)
class NextAction:
    """What the merchant's front end does next for a hosted-page payment."""

    type: Literal["redirect", "form_post", "sdk"]
    url: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"type": self.type}
        if self.url is not None:
            shown["url"] = self.url
        if self.type == "form_post":
            shown["fields"] = dict(self.fields)
        if self.type == "sdk":
            shown["parameters"] = dict(self.parameters)
        return shown


@dataclass(frozen=True)
class InitiateResult:
    accepted: bool
    gateway_ref: str | None = None
    secondary_ref: str | None = None
    failure_code: str | None = None
    message: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    next_action: NextAction | None = None

    @classmethod
    def refused(
        cls, error: ErrorCode, message: str, raw: dict[str, Any] | None = None
    ) -> InitiateResult:
        """A business refusal (not a transport failure): the payment fails with ``error``."""
        return cls(accepted=False, failure_code=error.code, message=message, raw=raw or {})


@dataclass(frozen=True)
class GatewayVerdict:
    """A gateway's word on a transaction, from a callback or a status query."""

    outcome: Outcome
    result_code: str
    failure_code: str | None = None
    message: str = ""
    amount: Money | None = None
    receipt: str | None = None
    phone: str | None = None
    # What the gateway kept of the amount (IntaSend's ``charges``), when it says.
    fee: Money | None = None


@dataclass(frozen=True)
class GatewayTransaction:
    """One line of a gateway's own list of transactions (a statement, Pull Transactions).

    What reconciliation compares the ledger with. Any of the three references may be
    missing, as the source allows: ``receipt`` is the gateway's id for the money (the
    M-Pesa receipt), ``gateway_ref`` the id our attempt carries (IntaSend's invoice id),
    ``account_ref`` what we sent as the bill or account reference.
    """

    receipt: str | None
    gateway_ref: str | None
    account_ref: str | None
    amount: Money
    outcome: Outcome
    completed_at: datetime
    phone: str | None = None  # as the gateway shows it (often masked)
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusResult:
    gateway_ref: str
    verdict: GatewayVerdict


@dataclass(frozen=True)
class CallbackEvent:
    """A parsed callback: the gateway's event key (for dedupe), its transaction id and word."""

    event_key: str
    gateway_ref: str
    secondary_ref: str | None
    verdict: GatewayVerdict
    masked_body: str


@dataclass(frozen=True)
class InboundCallback:
    """The whole request a gateway sent, as the ingress saw it (header names lower-case)."""

    method: str
    query_string: str
    body: bytes
    headers: Mapping[str, str]
    remote_addr: str | None
    path_secret: str

    def query(self) -> dict[str, str]:
        """The query string's parameters (the first value of each name)."""
        params: dict[str, str] = {}
        for name, value in parse_qsl(self.query_string, keep_blank_values=True):
            params.setdefault(name, value)
        return params

    def json_body(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    def form(self) -> dict[str, str]:
        """The body as an HTML form (``application/x-www-form-urlencoded``)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        params: dict[str, str] = {}
        for name, value in parse_qsl(text, keep_blank_values=True):
            params.setdefault(name, value)
        return params


@dataclass(frozen=True)
class Precheck:
    """A gateway asking, before it takes the customer's money, whether a bill is good.

    Idram's ``EDP_PRECHECK=YES``: answered "yes" only when the bill exists, is still
    live, and the amount and the merchant's account match. Nothing is enqueued.
    """

    gateway_ref: str
    amount: Money
    # The merchant account the gateway names, checked against the ``account`` verifier.
    account: str | None = None


@dataclass(frozen=True)
class CallbackReply:
    """The whole answer a gateway expects once its callback is safely queued."""

    status: int = 200
    content_type: str = "application/json"
    body: bytes = b""

    @classmethod
    def json(cls, document: Any, status: int = 200) -> CallbackReply:
        return cls(status, "application/json", json.dumps(document).encode())

    @classmethod
    def text(cls, text: str, status: int = 200) -> CallbackReply:
        return cls(status, "text/plain; charset=utf-8", text.encode())


# -- capabilities ---------------------------------------------------------------------------


class GatewayAdapter(Protocol):
    """What every adapter has: its name, and typed credentials from the stored ones.

    Instances are per process and thread-safe.
    """

    name: str

    def credentials(self, stored: Mapping[str, Any]) -> Any:
        """Validate decrypted stored credentials into the adapter's typed form."""
        ...

    def check_amount(self, amount: Money) -> None:
        """Refuse (MalipoError) an amount the gateway would refuse."""
        ...


@runtime_checkable
class PushCollection(Protocol):
    def push(self, credentials: Any, request: PaymentRequest) -> InitiateResult:
        """Prompt the customer's phone. Raises GatewayUnavailable or GatewayOutcomeUnknown."""
        ...


@runtime_checkable
class HostedCollection(Protocol):
    def start_hosted(self, credentials: Any, request: PaymentRequest) -> InitiateResult:
        """Register or sign the order; the result carries the payment's next action."""
        ...


@runtime_checkable
class StatusQuery(Protocol):
    def query_status(self, credentials: Any, gateway_ref: str) -> StatusResult:
        """Where a transaction stands; ``Outcome.PENDING`` means "not known yet"."""
        ...


@runtime_checkable
class TransactionList(Protocol):
    def list_transactions(
        self, credentials: Any, start: datetime, end: datetime
    ) -> Iterator[GatewayTransaction]:
        """Every transaction the gateway completed in ``[start, end)``, paging as it must.

        Raises GatewayUnavailable when the list cannot be had now (reconciliation then
        marks what it could not check ``pending_verification``).
        """
        ...

    def listed_account_ref(self, reference: str, payment_id: object) -> str | None:
        """What the list shows as the bill or account reference of our payment, if any."""
        ...


@runtime_checkable
class CallbackReader(Protocol):
    def authenticate_callback(
        self, verifiers: Mapping[str, str], inbound: InboundCallback
    ) -> str | None:
        """The gateway's own proof beyond the path secret: None, or why it is refused.

        ``verifiers`` are the hashes :meth:`GatewayDescription.callback_verifiers`
        derived from the merchant's credentials; compare in constant time.
        """
        ...

    def parse_callback(self, inbound: InboundCallback) -> CallbackEvent:
        """Read a callback. Raises CallbackMalformed."""
        ...

    def acknowledgement(self, inbound: InboundCallback) -> CallbackReply:
        """The reply the gateway expects once its callback is safely queued."""
        ...


@runtime_checkable
class PrecheckReader(Protocol):
    """A callback reader whose gateway asks before paying (see :class:`Precheck`)."""

    def precheck(self, inbound: InboundCallback) -> Precheck | None:
        """The question, when this request is a precheck; None for any other callback."""
        ...

    def precheck_reply(self, bill_is_good: bool) -> CallbackReply:
        """The whole answer to a precheck."""
        ...


@runtime_checkable
class SignedCallbacks(Protocol):
    """A reader whose gateway signs callbacks with a merchant secret (Idram, Telcell).

    The ingress holds no credential keys, so the signature is checked by the worker
    that applies the callback, with the merchant's decrypted credentials, before
    anything is applied; a refusal is recorded for operators.
    """

    def verify_callback(self, credentials: Any, inbound: InboundCallback) -> str | None:
        """None when the signature is good, else why it is refused (compare in constant time)."""
        ...
