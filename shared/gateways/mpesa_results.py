"""M-Pesa's STK ResultCodes in malipo's terms (the table of the Daraja reference).

Every gateway that wraps M-Pesa's STK push reports these codes: Daraja in its
callbacks and queries, IntaSend as a failed invoice's ``failed_code``. Match on
the code only: the descriptions differ between channels. Codes arrive as
numbers or strings; both are read as strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain import errors
from shared.gateways.base import Outcome


@dataclass(frozen=True)
class ResultMeaning:
    outcome: Outcome
    failure_code: str | None


_SUCCESS = ResultMeaning(Outcome.SUCCEEDED, None)
_PENDING = ResultMeaning(Outcome.PENDING, None)


def _failed(code: errors.ErrorCode) -> ResultMeaning:
    return ResultMeaning(Outcome.FAILED, code.code)


RESULT_CODES: dict[str, ResultMeaning] = {
    "0": _SUCCESS,
    "1": _failed(errors.INSUFFICIENT_FUNDS),
    "2": _failed(errors.LIMIT_EXCEEDED),
    "3": _failed(errors.LIMIT_EXCEEDED),
    "4": _failed(errors.LIMIT_EXCEEDED),
    "8": _failed(errors.LIMIT_EXCEEDED),
    "17": _failed(errors.RULE_LIMITED),
    "26": _failed(errors.PUSH_ERROR),
    "1001": _failed(errors.SUBSCRIBER_BUSY),
    "1019": ResultMeaning(Outcome.EXPIRED, errors.TRANSACTION_EXPIRED.code),
    "1025": _failed(errors.PUSH_ERROR),
    "1032": ResultMeaning(Outcome.CANCELLED, errors.CANCELLED_BY_USER.code),
    "1036": _failed(errors.PUSH_ERROR),
    "1037": ResultMeaning(Outcome.EXPIRED, errors.CUSTOMER_UNREACHABLE.code),
    "2001": _failed(errors.WRONG_PIN),
    "2028": _failed(errors.GATEWAY_CONFIGURATION),
    "4999": _PENDING,
    "8006": _failed(errors.GATEWAY_CONFIGURATION),
    "9999": _failed(errors.PUSH_ERROR),
    "SFC_IC0003": _failed(errors.GATEWAY_CONFIGURATION),
}


def meaning_of(result_code: object) -> ResultMeaning:
    """What a ResultCode means; an unlisted code is a failure with ``gateway_error``."""
    code = str(result_code).strip()
    return RESULT_CODES.get(code, _failed(errors.GATEWAY_ERROR))


def failure_of(result_code: object) -> ResultMeaning | None:
    """The meaning of a listed code that ends a payment unpaid, else None."""
    meaning = RESULT_CODES.get(str(result_code).strip())
    if meaning is None or meaning.outcome in (Outcome.SUCCEEDED, Outcome.PENDING):
        return None
    return meaning
