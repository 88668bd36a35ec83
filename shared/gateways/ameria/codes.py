"""Ameria's response codes in malipo's terms (its document's table 1).

Two vocabularies:

* InitPayment's integer ``ResponseCode``: ``1`` is success. The document lists
  no refusal codes for InitPayment itself; the ones below are table 1's API
  errors, as InitPayment is expected to use them (unverified), and any other
  code is a plain refusal (``gateway_rejected``) with Ameria's message.
* RefundPayment's string ``ResponseCode``: ``"00"`` done; ``"20"`` wrong login; a
  system error (7, 500, 550, 560) may have acted and is an unknown outcome; any
  other code is a refusal (``transfer_refused``) with Ameria's message (unverified:
  the document lists no refund-specific codes).
* GetPaymentDetails' string ``ResponseCode``: ``"00"`` approved; a declined
  order's code is the engine's action code behind a ``"0"`` (``"0116"`` not
  enough money, ``"0-2007"`` page timed out), read by ``shared.gateways.bpc``;
  two-digit codes are API errors (``"20"`` wrong login, ``"06"`` unknown order).
"""

from __future__ import annotations

from typing import Final

from shared.domain import errors
from shared.domain.errors import ErrorCode
from shared.gateways.bpc import action_code

INIT_SUCCESS: Final = 1
APPROVED: Final = "00"
WRONG_LOGIN: Final = "20"
UNKNOWN_ORDER: Final = "06"

# Table 1's API errors, by code as text (InitPayment sends them as integers).
INIT_REFUSALS: Final[dict[str, ErrorCode]] = {
    "20": errors.GATEWAY_CONFIGURATION,  # Incorrect Username and Password
    "3": errors.INVALID_CURRENCY,  # Incorrect Currency
    "50": errors.AMOUNT_OUT_OF_RANGE,  # Payment sum error
    "4": errors.GATEWAY_REJECTED,  # Required parameter missed
    "5": errors.GATEWAY_REJECTED,  # Incorrect Parameters
    "510": errors.GATEWAY_REJECTED,  # Incorrect parameters
    "30": errors.GATEWAY_REJECTED,  # Incorrect value of the Opaque field
    "8204": errors.GATEWAY_REJECTED,  # Duplicate order (the OrderID is registered)
    "7": errors.GATEWAY_ERROR,  # System Error
    "500": errors.GATEWAY_ERROR,  # Unknown error
    "550": errors.GATEWAY_ERROR,  # System Error
    "560": errors.GATEWAY_ERROR,  # Operation failed
}


def init_refusal(code: object) -> ErrorCode:
    """The catalogue code of an InitPayment refusal (any code but 1)."""
    text = str(code).strip()
    number = action_code(text)
    key = str(number) if number is not None else text
    return INIT_REFUSALS.get(key, errors.GATEWAY_REJECTED)


# RefundPayment's ResponseCodes that say the bank failed, not that it refused: it may have
# acted (unverified), so such an answer is an unknown outcome, settled by the refunded total.
REFUND_SYSTEM_ERRORS: Final = frozenset({"7", "07", "500", "550", "560"})


def refund_refusal(code: str | None) -> ErrorCode:
    """The catalogue code of a RefundPayment refusal (any ResponseCode but "00")."""
    if code == WRONG_LOGIN:
        return errors.GATEWAY_CONFIGURATION
    return errors.TRANSFER_REFUSED


def is_init_success(code: object) -> bool:
    """``ResponseCode`` 1 (an integer in the document; "1" as text is taken too)."""
    if isinstance(code, bool):
        return False
    return code == INIT_SUCCESS or (isinstance(code, str) and code.strip() == "1")


def decline_action_code(response_code: str | None) -> int | None:
    """The engine's action code inside a declined order's ResponseCode: ``"0116"`` → 116.

    Only codes of more than two characters are processing codes; the two-digit
    ones are API errors and carry none.
    """
    if response_code is None:
        return None
    text = response_code.strip()
    if len(text) <= 2 or not text.startswith("0"):
        return None
    return action_code(text[1:])
