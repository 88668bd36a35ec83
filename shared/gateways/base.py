"""The gateway seam: a small adapter interface with plain dataclasses in and out.

An adapter knows one gateway's wire format and nothing of the ledger. Errors
come out in three kinds, because they call for different actions:

* :class:`GatewayUnavailable` — the gateway certainly did not act on the call
  (could not connect, or it answered with an explicit "busy" error): safe to retry.
* :class:`GatewayOutcomeUnknown` — the call may have been acted on (timeout after
  sending, connection lost mid-answer): never re-send a push; query or wait.
* A refusal is not an exception: :class:`InitiateResult` says ``accepted=False``
  with a catalogue failure code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from shared.domain.errors import TransientError
from shared.domain.money import Money


class GatewayUnavailable(TransientError):
    """The gateway did not act on the call; it may be retried after a backoff."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GatewayOutcomeUnknown(Exception):
    """The call may or may not have been acted on; re-sending could charge twice."""


class CallbackMalformed(Exception):
    """A callback body that cannot be read as this gateway's callback."""


class Outcome(StrEnum):
    """What a gateway says about one transaction, in our state names."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True)
class PaymentRequest:
    payment_id: str
    attempt_ref: str
    amount: Money
    phone: str
    reference: str
    description: str | None
    callback_url: str


@dataclass(frozen=True)
class InitiateResult:
    accepted: bool
    gateway_ref: str | None = None
    secondary_ref: str | None = None
    failure_code: str | None = None
    message: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


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
    """What reached the ingress, as the ingress saw it."""

    body: bytes
    headers: dict[str, str]
    remote_addr: str | None
    path_secret: str


class GatewayAdapter(Protocol):
    """One gateway's client. Instances are per process and thread-safe."""

    name: str

    currency: str

    def check_request(self, amount: Money, phone: str) -> str:
        """Refuse what the gateway would refuse (MalipoError); return the normalised phone."""
        ...

    def credentials(self, stored: dict[str, Any]) -> Any:
        """Validate decrypted stored credentials into the adapter's typed form."""
        ...

    def initiate(self, credentials: Any, request: PaymentRequest) -> InitiateResult:
        """Ask the gateway to collect. Raises GatewayUnavailable or GatewayOutcomeUnknown."""
        ...

    def query_status(self, credentials: Any, gateway_ref: str) -> StatusResult:
        """Ask where a transaction stands. ``Outcome.PENDING`` means "not yet known"."""
        ...

    def parse_callback(self, body: bytes, headers: dict[str, str]) -> CallbackEvent:
        """Read a callback body. Raises CallbackMalformed."""
        ...

    def authenticate_callback(self, expected_secret_hash: str, inbound: InboundCallback) -> bool:
        """True when the callback carries this merchant's proof (checked in constant time)."""
        ...

    def acknowledgement(self) -> dict[str, Any]:
        """The body the gateway expects once its callback is safely queued."""
        ...
