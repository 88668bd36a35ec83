"""IntaSend invoice states and failure codes in malipo's terms.

IntaSend wraps M-Pesa: a ``FAILED`` invoice's ``failed_code`` is the M-Pesa
ResultCode of the STK push (``"1032"`` cancelled, ``"1"`` insufficient funds, …)
and ``failed_reason`` its ResultDesc. The reference confirms the states, not the
list of codes IntaSend passes through (unverified): a known code decides, else
the reason text, else the failure is ``gateway_error``. Codes may arrive as
numbers or strings; both are read as strings.
"""

from __future__ import annotations

from typing import Final

from shared.domain import errors
from shared.gateways.base import Outcome
from shared.gateways.mpesa_results import RESULT_CODES, ResultMeaning, failure_of

PENDING: Final = "PENDING"
PROCESSING: Final = "PROCESSING"
COMPLETE: Final = "COMPLETE"
FAILED: Final = "FAILED"
STATES: Final = frozenset({PENDING, PROCESSING, COMPLETE, FAILED})
IN_FLIGHT: Final = frozenset({PENDING, PROCESSING})


# A FAILED invoice's failed_code is M-Pesa's ResultCode; one type of meaning for both.
Meaning = ResultMeaning
SUCCEEDED: Final = Meaning(Outcome.SUCCEEDED, None)
STILL_PENDING: Final = Meaning(Outcome.PENDING, None)
UNEXPLAINED: Final = Meaning(Outcome.FAILED, errors.GATEWAY_ERROR.code)

# When the code is missing or unlisted: words of M-Pesa's ResultDescs, first match wins
# ("DS timeout user cannot be reached" is unreachable, not expired).
REASON_WORDS: Final[tuple[tuple[str, Meaning], ...]] = (
    ("cancel", RESULT_CODES["1032"]),
    ("insufficient", RESULT_CODES["1"]),
    ("balance", RESULT_CODES["1"]),
    ("cannot be reached", RESULT_CODES["1037"]),
    ("unreachable", RESULT_CODES["1037"]),
    ("timeout", RESULT_CODES["1037"]),
    ("expired", RESULT_CODES["1019"]),
    ("pin", RESULT_CODES["2001"]),
    ("initiator information is invalid", RESULT_CODES["2001"]),
    ("limit", RESULT_CODES["2"]),
)


def failure_meaning(failed_code: object, failed_reason: object) -> Meaning:
    """What a FAILED invoice means: by its code, else its reason text, else gateway_error."""
    listed = failure_of("" if failed_code is None else failed_code)
    if listed is not None:
        return listed
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
