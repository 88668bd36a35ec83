"""IntaSend invoice states and failure codes in malipo's terms.

IntaSend wraps M-Pesa: a ``FAILED`` invoice's ``failed_code`` is the M-Pesa
ResultCode of the STK push (``"1032"`` cancelled, ``"1"`` insufficient funds, …)
and ``failed_reason`` its ResultDesc. The reference confirms the states, not the
list of codes IntaSend passes through (unverified): a known code decides, else
the reason text, else the failure is ``gateway_error``. Codes may arrive as
numbers or strings; both are read as strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shared.domain import errors
from shared.gateways.base import Outcome

PENDING: Final = "PENDING"
PROCESSING: Final = "PROCESSING"
COMPLETE: Final = "COMPLETE"
FAILED: Final = "FAILED"
STATES: Final = frozenset({PENDING, PROCESSING, COMPLETE, FAILED})
IN_FLIGHT: Final = frozenset({PENDING, PROCESSING})


@dataclass(frozen=True)
class Meaning:
    outcome: Outcome
    failure_code: str | None


def _failed(code: errors.ErrorCode, outcome: Outcome = Outcome.FAILED) -> Meaning:
    return Meaning(outcome, code.code)


SUCCEEDED: Final = Meaning(Outcome.SUCCEEDED, None)
STILL_PENDING: Final = Meaning(Outcome.PENDING, None)
UNEXPLAINED: Final = _failed(errors.GATEWAY_ERROR)

# M-Pesa ResultCodes as IntaSend's failed_code (the Daraja reference's table).
FAILED_CODES: Final[dict[str, Meaning]] = {
    "1": _failed(errors.INSUFFICIENT_FUNDS),
    "2": _failed(errors.LIMIT_EXCEEDED),
    "3": _failed(errors.LIMIT_EXCEEDED),
    "4": _failed(errors.LIMIT_EXCEEDED),
    "8": _failed(errors.LIMIT_EXCEEDED),
    "17": _failed(errors.RULE_LIMITED),
    "26": _failed(errors.PUSH_ERROR),
    "1001": _failed(errors.SUBSCRIBER_BUSY),
    "1019": _failed(errors.TRANSACTION_EXPIRED, Outcome.EXPIRED),
    "1025": _failed(errors.PUSH_ERROR),
    "1032": _failed(errors.CANCELLED_BY_USER, Outcome.CANCELLED),
    "1036": _failed(errors.PUSH_ERROR),
    "1037": _failed(errors.CUSTOMER_UNREACHABLE, Outcome.EXPIRED),
    "2001": _failed(errors.WRONG_PIN),
    "9999": _failed(errors.PUSH_ERROR),
}

# When the code is missing or unlisted: words of M-Pesa's ResultDescs, first match wins
# ("DS timeout user cannot be reached" is unreachable, not expired).
REASON_WORDS: Final[tuple[tuple[str, Meaning], ...]] = (
    ("cancel", FAILED_CODES["1032"]),
    ("insufficient", FAILED_CODES["1"]),
    ("balance", FAILED_CODES["1"]),
    ("cannot be reached", FAILED_CODES["1037"]),
    ("unreachable", FAILED_CODES["1037"]),
    ("timeout", FAILED_CODES["1037"]),
    ("expired", FAILED_CODES["1019"]),
    ("pin", FAILED_CODES["2001"]),
    ("initiator information is invalid", FAILED_CODES["2001"]),
    ("limit", FAILED_CODES["2"]),
)


def failure_meaning(failed_code: object, failed_reason: object) -> Meaning:
    """What a FAILED invoice means: by its code, else its reason text, else gateway_error."""
    code = "" if failed_code is None else str(failed_code).strip()
    if code in FAILED_CODES:
        return FAILED_CODES[code]
    reason = str(failed_reason or "").lower()
    for words, meaning in REASON_WORDS:
        if words in reason:
            return meaning
    return UNEXPLAINED


def meaning_of(state: str, failed_code: object = None, failed_reason: object = None) -> Meaning:
    """The meaning of an invoice ``state`` (one of STATES; anything else is a ValueError)."""
    if state in IN_FLIGHT:
        return STILL_PENDING
    if state == COMPLETE:
        return SUCCEEDED
    if state == FAILED:
        return failure_meaning(failed_code, failed_reason)
    raise ValueError(f"not an IntaSend invoice state: {state[:20]!r}")


def result_code(state: str, failed_code: object = None) -> str:
    """What malipo records as the gateway's result code: the state, and a failure's code."""
    code = "" if failed_code is None else str(failed_code).strip()
    return f"{state}:{code}"[:40] if state == FAILED and code else state
