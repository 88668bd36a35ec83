"""STK ResultCodes and the ResultDesc texts Daraja sends with them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

ResultCode = int | str

SUCCESS: Final = 0
STILL_PROCESSING: Final = 4999

DESCRIPTIONS: Final[Mapping[ResultCode, str]] = {
    0: "The service request is processed successfully.",
    1: "The balance is insufficient for the transaction.",
    2: "Declined due to limit rule: less than the minimum transaction amount.",
    3: "Declined due to limit rule: greater than the maximum transaction amount.",
    4: "Declined due to limit rule: would exceed daily transfer limit.",
    8: "Declined due to limit rule: would exceed the maximum balance.",
    17: "Rule limited.",
    26: "System busy. The service request is rejected.",
    1001: (
        "Unable to lock subscriber, a transaction is already in process for the current subscriber"
    ),
    1019: "Transaction has expired",
    1025: "An error occurred while sending a push request",
    1032: "Request cancelled by user",
    1036: "SMSC ACK timeout.",
    1037: "DS timeout user cannot be reached",
    2001: "The initiator information is invalid.",
    2028: "The request is not permitted according to product assignment.",
    4999: "The transaction is still under processing",
    8006: "The security credential is locked",
    9999: "An error occurred while sending a push request.",
    "SFC_IC0003": "The operator does not exist.",
}


def describe(code: ResultCode) -> str:
    """The ResultDesc for ``code``; a generic text for codes Daraja never documented."""
    return DESCRIPTIONS.get(code, f"The service request failed with result code {code}.")


def normalize(code: ResultCode) -> ResultCode:
    """Digit strings become ints (``"1032"`` → 1032) so callbacks carry numbers.

    Non-numeric codes such as ``"SFC_IC0003"`` stay strings, as Daraja sends them.
    """
    if isinstance(code, str) and code.isascii() and code.isdigit():
        return int(code)
    return code
