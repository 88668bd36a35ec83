"""Daraja's codes: the STK ResultCodes (shared with every M-Pesa wrapper, in
``shared/gateways/mpesa_results.py``) and the error envelopes of synchronous calls."""

from __future__ import annotations

from shared.gateways.mpesa_results import RESULT_CODES, ResultMeaning, meaning_of

__all__ = ["RESULT_CODES", "ResultMeaning", "meaning_of"]


# Error envelopes ({"errorCode", "errorMessage"}) on synchronous calls.
INVALID_TOKEN = "404.001.03"  # noqa: S105 - an error code
INVALID_TOKEN_B2C = "401.002.01"  # noqa: S105 - an error code
BAD_REQUEST = "400.002.02"
GENERIC_1001 = "500.001.1001"  # wrong credentials, subscriber locked, or "being processed"
SPIKE_ARREST = "500.003.02"
QUOTA_VIOLATION = "500.003.03"
INTERNAL_ERROR = "500.003.1001"
BUSY_CODES = frozenset({SPIKE_ARREST, QUOTA_VIOLATION, INTERNAL_ERROR})
