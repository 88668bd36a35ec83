"""InTouch's status words and codes in malipo's terms.

Three vocabularies, all read as strings:

* check_status ``code`` (unverified): 200 SUCCESSFUL, 201 PENDING, 203 "the same
  check within 10 minutes" (no news: ask again later), 300 FAILED;
* GU status words (push answers, GU callbacks, check_status ``status``):
  INITIATED, PENDING, SUCCESSFUL, FAILED;
* TouchPay's ``payment_status``: "200" is a payment; every other value is
  unverified and read as a failure, as InTouch's integrators do.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain import errors
from shared.gateways.base import Outcome


@dataclass(frozen=True)
class StatusMeaning:
    outcome: Outcome
    failure_code: str | None = None


SUCCEEDED = StatusMeaning(Outcome.SUCCEEDED)
PENDING = StatusMeaning(Outcome.PENDING)
# InTouch gives no reason with a failure: the catalogue's "gateway refused it" is all we know.
FAILED = StatusMeaning(Outcome.FAILED, errors.GATEWAY_REJECTED.code)

CHECK_STATUS_CODES: dict[str, StatusMeaning] = {
    "200": SUCCEEDED,
    "201": PENDING,
    "203": PENDING,  # duplicate check within 10 minutes: no answer yet, ask again
    "300": FAILED,
}

GU_STATUSES: dict[str, StatusMeaning] = {
    "INITIATED": PENDING,
    "PENDING": PENDING,
    "SUCCESSFUL": SUCCEEDED,
    "SUCCESS": SUCCEEDED,
    "FAILED": FAILED,
}

# Push answers: the transaction exists at InTouch and will end in a callback.
PUSH_ACCEPTED = frozenset({"INITIATED", "PENDING", "SUCCESSFUL"})
PUSH_REFUSED = frozenset({"FAILED"})

TOUCHPAY_SUCCESS = "200"


def check_status_meaning(code: str | None, status: str | None) -> StatusMeaning | None:
    """What a check_status answer means: its code first, its status word else; None if neither."""
    if code is not None and code in CHECK_STATUS_CODES:
        return CHECK_STATUS_CODES[code]
    if status is not None:
        return GU_STATUSES.get(status.upper())
    return None


def gu_callback_meaning(status: str) -> StatusMeaning:
    """A GU callback's status; an unknown word is PENDING, so the status API decides."""
    return GU_STATUSES.get(status.strip().upper(), PENDING)


def touchpay_meaning(payment_status: str) -> StatusMeaning:
    """TouchPay's ``payment_status``: "200" succeeded; anything else (unverified) failed."""
    return SUCCEEDED if payment_status.strip() == TOUCHPAY_SUCCESS else FAILED


def is_not_found(http_status: int, code: str | None, status: str | None) -> bool:
    """check_status for an order InTouch has never seen (said by HTTP status, code or word)."""
    return http_status == 404 or code == "404" or (status or "").upper() == "NOT_FOUND"
