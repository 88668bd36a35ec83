"""The payment state machine.

``created → submitted → succeeded | failed | cancelled | expired``, forward only.
A late failure never overwrites a success. A success that arrives after the
payment expired (locally or by the gateway's word) is honoured — the customer
paid — and flagged for review. A success after a failure or cancellation
contradicts the gateway's earlier word: it is flagged, not applied.

A customer's retry starts a new cycle with a new push. A word about an earlier
cycle's push describes a push the payment no longer waits for: a failure of it
changes nothing, and a success of it is honoured (the customer paid that push)
and flagged for review, whatever the current cycle's push has come to.
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


def decide(
    current: PaymentStatus, target: PaymentStatus, *, earlier_cycle: bool = False
) -> Decision:
    """What to do when something says a payment in ``current`` is now ``target``.

    ``earlier_cycle``: the word is about a push of a cycle before the current one.
    """
    if earlier_cycle:
        return _decide_earlier_cycle(current, target)
    if current == target:
        return Decision(Verdict.SAME, target)
    if target in _FORWARD.get(current, frozenset()):
        return Decision(Verdict.APPLY, target)
    if target == PaymentStatus.SUCCEEDED and current == PaymentStatus.EXPIRED:
        return Decision(Verdict.LATE_SUCCESS, target)
    if target == PaymentStatus.SUCCEEDED and current in FINAL_STATES:
        return Decision(Verdict.CONFLICT, target)
    return Decision(Verdict.STALE, target)


def _decide_earlier_cycle(current: PaymentStatus, target: PaymentStatus) -> Decision:
    if target != PaymentStatus.SUCCEEDED:
        return Decision(Verdict.STALE, target)  # that push is over; the current one decides
    if current == PaymentStatus.SUCCEEDED:
        return Decision(Verdict.SAME, target)  # paid already (twice, if by another push)
    if current in FINAL_STATES:
        return Decision(Verdict.LATE_SUCCESS, target)  # the customer paid the earlier push
    return Decision(Verdict.APPLY, target)  # paid while the new push is still out


class TransferStatus(StrEnum):
    """Where a refund or payout stands (see ``shared.db.models.Transfer``)."""

    AWAITING_APPROVAL = "awaiting_approval"
    PENDING = "pending"
    SENDING = "sending"
    SUBMITTED = "submitted"
    UNKNOWN = "unknown"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in FINAL_TRANSFER_STATES


FINAL_TRANSFER_STATES = frozenset(
    {TransferStatus.SUCCEEDED, TransferStatus.FAILED, TransferStatus.REJECTED}
)
# Transfers a worker still has to send, or to find out about.
OPEN_TRANSFER_STATES = frozenset(
    {
        TransferStatus.PENDING,
        TransferStatus.SENDING,
        TransferStatus.SUBMITTED,
        TransferStatus.UNKNOWN,
    }
)
_DONE = frozenset({TransferStatus.SUCCEEDED, TransferStatus.FAILED})
_TRANSFER_FORWARD: dict[TransferStatus, frozenset[TransferStatus]] = {
    TransferStatus.AWAITING_APPROVAL: frozenset({TransferStatus.PENDING, TransferStatus.REJECTED}),
    # Succeeded too: a result or status answer about an earlier send that did reach the
    # gateway can still arrive after a "no such transfer" put it back to pending.
    TransferStatus.PENDING: frozenset(
        {TransferStatus.SENDING, TransferStatus.REQUIRES_ACTION} | _DONE
    ),
    # Back to pending only when the gateway certainly did not act on the call.
    TransferStatus.SENDING: frozenset(
        {TransferStatus.PENDING, TransferStatus.SUBMITTED, TransferStatus.UNKNOWN} | _DONE
    ),
    TransferStatus.SUBMITTED: frozenset({TransferStatus.UNKNOWN} | _DONE),
    # Back to pending only when the gateway says it has no such transfer (never made).
    TransferStatus.UNKNOWN: frozenset({TransferStatus.PENDING, TransferStatus.SUBMITTED} | _DONE),
    TransferStatus.REQUIRES_ACTION: _DONE,
}


def transfer_may_move(current: TransferStatus, target: TransferStatus) -> bool:
    """Whether a transfer may go from ``current`` to ``target`` (forward only; final stays)."""
    return target in _TRANSFER_FORWARD.get(current, frozenset())
