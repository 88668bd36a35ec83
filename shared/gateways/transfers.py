"""Money out through a gateway: refunds and payouts, on the same rails both ways.

A **transfer** is malipo's refund of a collection or its payout to a phone. The
worker records ``sending`` before it calls the gateway and treats a call it
cannot be sure about as *outcome unknown*: it is then only ever queried (or its
result awaited), never sent again. Where a gateway takes an id of ours
(Daraja's ``OriginatorConversationID``), it is ``request_ref``, derived from the
transfer's id, so even a re-sent request is refused by the gateway as a duplicate.

Capabilities (asked for by name through :class:`~shared.gateways.base.Capability`):

* :class:`Refunds` (``REFUND``) — give a collection's money back.
* :class:`Payouts` (``PAYOUT``) — send money to a phone.
* :class:`TransferResults` — read the gateway's asynchronous result of a transfer
  (Daraja's ResultURL and QueueTimeOutURL, IntaSend's chargeback and send-money
  webhooks) from a request that reached ``/callbacks/<gateway>/<secret>[/<tail>]``.

Errors, as for collections: :class:`~shared.gateways.base.GatewayUnavailable`
means the gateway certainly did not act (safe to send later);
:class:`~shared.gateways.base.GatewayOutcomeUnknown` means it may have (query).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from shared.domain.money import Money
from shared.gateways.base import InboundCallback

# The tail of a result URL: ``/callbacks/<gateway>/<secret>/<prefix><request_ref>``.
RESULT_TAIL = "xr-"
TIMEOUT_TAIL = "xt-"


class TransferKind(StrEnum):
    REFUND = "refund"
    PAYOUT = "payout"


class TransferState(StrEnum):
    """A gateway's word on one transfer."""

    PENDING = "pending"  # accepted or in progress: the result is not known yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the gateway says it did not move the money
    NOT_FOUND = "not_found"  # the gateway has no such transfer: it was never made


@dataclass(frozen=True)
class TransferVerdict:
    state: TransferState
    result_code: str
    failure_code: str | None = None  # a catalogue code (shared.domain.errors) when failed
    message: str = ""
    receipt: str | None = None  # the gateway's transaction id of the transfer itself
    amount: Money | None = None


@dataclass(frozen=True)
class TransferRequest:
    """Everything a gateway needs to make (or look up) one transfer."""

    kind: TransferKind
    transfer_id: str  # malipo's refund or payout id (a UUID)
    # Stable for this transfer on every call (32 hex digits): Daraja's OriginatorConversationID.
    request_ref: str
    amount: Money
    phone: str  # E.164 digits: a refund's payer, a payout's recipient
    reason: str
    # Where asynchronous results go: the merchant's callback URL + RESULT_TAIL/TIMEOUT_TAIL.
    result_url: str
    timeout_url: str
    # Refunds only: the collection being given back.
    payment_gateway_ref: str | None = None  # CheckoutRequestID, invoice id, PaymentID, orderId
    payment_receipt: str | None = None  # M-Pesa receipt (Daraja's reversal TransactionID)
    payment_amount: Money | None = None
    # What of that collection earlier refunds already gave back (a synchronous gateway's
    # status lookup compares the order's refunded total with this plus ``amount``).
    payment_refunded: Money | None = None


@dataclass(frozen=True)
class TransferSubmission:
    """The gateway's answer to sending a transfer."""

    accepted: bool
    gateway_ref: str | None = None  # its id for the transfer: ConversationID, chargeback id, ...
    # A synchronous gateway's final word (Ameriabank, ArCa); None: wait for the result.
    verdict: TransferVerdict | None = None
    failure_code: str | None = None
    message: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TransferEvent:
    """A transfer result a gateway sent us (or the answer to our status query)."""

    event_key: str  # for dedupe, unique per gateway
    verdict: TransferVerdict
    masked_body: str
    request_ref: str | None = None  # ours, echoed (or from the result URL's tail)
    gateway_ref: str | None = None  # the gateway's id for the transfer


@runtime_checkable
class Refunds(Protocol):
    def refund(self, credentials: Any, request: TransferRequest) -> TransferSubmission:
        """Give back ``request.amount`` of the collection. Raises GatewayUnavailable or
        GatewayOutcomeUnknown."""
        ...

    def refund_status(
        self, credentials: Any, request: TransferRequest, gateway_ref: str | None
    ) -> TransferVerdict:
        """Where the refund stands. An asynchronous query (Daraja's Transaction Status)
        answers ``PENDING`` now and its result arrives as a :class:`TransferEvent`."""
        ...


@runtime_checkable
class Payouts(Protocol):
    def payout(self, credentials: Any, request: TransferRequest) -> TransferSubmission:
        """Send ``request.amount`` to ``request.phone``. Raises GatewayUnavailable or
        GatewayOutcomeUnknown."""
        ...

    def payout_status(
        self, credentials: Any, request: TransferRequest, gateway_ref: str | None
    ) -> TransferVerdict:
        """Where the payout stands (see :meth:`Refunds.refund_status`)."""
        ...


@runtime_checkable
class TransferResults(Protocol):
    def transfer_result(self, inbound: InboundCallback, tail: str | None) -> TransferEvent | None:
        """The transfer result this callback carries, or None when it is a collection's.

        ``tail`` is the callback URL's last segment when there is one (``xr-<ref>``,
        ``xt-<ref>``). Raises CallbackMalformed for a transfer result it cannot read.
        """
        ...
