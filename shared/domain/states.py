"""The payment state machine.

``created → submitted → succeeded | failed | cancelled | expired``, forward only.
A late failure never overwrites a success. A success that arrives after the
payment expired (locally or by the gateway's word) is honoured — the customer
paid — and flagged for review. A success after a failure or cancellation
contradicts the gateway's earlier word: it is flagged, not applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PaymentStatus(StrEnum):
    CREATED = "created"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED}
)
# A reference with a payment in one of these states cannot start another payment.
LIVE_STATES = frozenset({PaymentStatus.CREATED, PaymentStatus.SUBMITTED, PaymentStatus.SUCCEEDED})

_FORWARD: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.CREATED: frozenset({PaymentStatus.SUBMITTED} | FINAL_STATES),
    PaymentStatus.SUBMITTED: FINAL_STATES,
}


class Verdict(StrEnum):
    APPLY = "apply"  # move to the target state
    LATE_SUCCESS = "late_success"  # move to succeeded and flag for review
    SAME = "same"  # already there: nothing to do
    STALE = "stale"  # an older or weaker word than what we hold: ignore
    CONFLICT = "conflict"  # contradicts a final word: flag, do not apply


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    target: PaymentStatus

    @property
    def moves(self) -> bool:
        return self.verdict in (Verdict.APPLY, Verdict.LATE_SUCCESS)


# A customer may try again (a new push, same payment) after these; never after a success.
RETRYABLE_STATES = frozenset({PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED})


def can_retry(current: PaymentStatus) -> bool:
    """Whether a customer's retry may start a new cycle (``→ created``) from ``current``.

    Within a cycle the machine only moves forward; a retry is the one way back,
    and only from a failure, a cancellation or an expiry.
    """
    return current in RETRYABLE_STATES


def decide(current: PaymentStatus, target: PaymentStatus) -> Decision:
    """What to do when something says a payment in ``current`` is now ``target``."""
    if current == target:
        return Decision(Verdict.SAME, target)
    if target in _FORWARD.get(current, frozenset()):
        return Decision(Verdict.APPLY, target)
    if target == PaymentStatus.SUCCEEDED and current == PaymentStatus.EXPIRED:
        return Decision(Verdict.LATE_SUCCESS, target)
    if target == PaymentStatus.SUCCEEDED and current in FINAL_STATES:
        return Decision(Verdict.CONFLICT, target)
    return Decision(Verdict.STALE, target)
