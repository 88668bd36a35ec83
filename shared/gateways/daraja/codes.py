"""Daraja ResultCodes in malipo's terms (table in the Daraja reference).

Match on the code only: ResultDesc texts differ between callbacks and queries.
Codes arrive as numbers in callbacks and as strings in query answers; both are
read as strings here.
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


# Error envelopes ({"errorCode", "errorMessage"}) on synchronous calls.
INVALID_TOKEN = "404.001.03"  # noqa: S105 - an error code
INVALID_TOKEN_B2C = "401.002.01"  # noqa: S105 - an error code
BAD_REQUEST = "400.002.02"
GENERIC_1001 = "500.001.1001"  # wrong credentials, subscriber locked, or "being processed"
SPIKE_ARREST = "500.003.02"
QUOTA_VIOLATION = "500.003.03"
INTERNAL_ERROR = "500.003.1001"
BUSY_CODES = frozenset({SPIKE_ARREST, QUOTA_VIOLATION, INTERNAL_ERROR})
